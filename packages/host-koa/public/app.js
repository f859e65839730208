// Avatar Data Generator: the little behaviour the pages need. No inline script anywhere (CSP).
// Every page works without it: this only saves a round trip or a reload.
(() => {
  // Forms that destroy or stop something ask first. A form with data-confirm-field is also asked
  // by the server when that field is missing (no script): once confirmed here, the field is added.
  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
    if (!window.confirm(form.dataset.confirm)) {
      event.preventDefault();
      return;
    }
    const field = form.dataset.confirmField;
    if (field && !form.elements.namedItem(field)) {
      const input = document.createElement('input');
      input.type = 'hidden';
      input.name = field;
      input.value = 'yes';
      form.append(input);
    }
  });

  // Enter in a search field (the language list) picks a suggestion; it must not send the form.
  document.addEventListener('keydown', (event) => {
    const target = event.target;
    if (event.key === 'Enter' && !event.isComposing && target instanceof HTMLInputElement && target.hasAttribute('data-no-enter-submit')) {
      event.preventDefault();
    }
  });

  // Full-size view of a gallery picture in a dialog: caption, previous/next (buttons and arrow
  // keys), Escape closes. Without script the link opens the picture itself.
  const viewer = document.getElementById('viewer');
  const viewerImg = document.getElementById('viewer-img');
  const caption = document.getElementById('viewer-caption');
  if (viewer && viewerImg && typeof viewer.showModal === 'function') {
    let links = [];
    let at = 0;
    const showAt = (index) => {
      if (links.length === 0) return;
      at = (index + links.length) % links.length;
      const link = links[at];
      const img = link.querySelector('img');
      viewerImg.src = link.dataset.full || link.href;
      viewerImg.alt = img ? img.alt : '';
      if (caption) caption.textContent = link.dataset.caption || viewerImg.alt;
    };
    document.addEventListener('click', (event) => {
      const link = event.target instanceof Element ? event.target.closest('a.thumb') : null;
      if (!link) return;
      event.preventDefault();
      // the pictures of the page, in order, as they are now (the live page adds some)
      links = [...document.querySelectorAll('a.thumb')];
      showAt(Math.max(0, links.indexOf(link)));
      viewer.showModal();
    });
    document.getElementById('viewer-prev')?.addEventListener('click', () => showAt(at - 1));
    document.getElementById('viewer-next')?.addEventListener('click', () => showAt(at + 1));
    viewer.addEventListener('keydown', (event) => {
      if (event.key === 'ArrowLeft') showAt(at - 1);
      else if (event.key === 'ArrowRight') showAt(at + 1);
    });
    viewer.addEventListener('close', () => {
      viewerImg.removeAttribute('src');
      // back to the picture the viewer ended on
      links[at]?.focus();
    });
    viewer.addEventListener('click', (event) => {
      if (event.target === viewer) viewer.close();
    });
  }

  // Live progress of a dataset over server-sent events; the demographics and the personas are
  // read again (the server's own HTML) whenever the counts move.
  const panel = document.getElementById('progress-panel');
  const FINAL = ['completed', 'partial', 'failed', 'cancelled'];
  if (panel?.dataset.events && !FINAL.includes(panel.dataset.status) && 'EventSource' in window) {
    const bar = document.getElementById('task-progress');
    const text = document.getElementById('progress-text');
    const status = document.getElementById('task-status');
    const live = document.getElementById('progress-live');
    const source = new EventSource(panel.dataset.events);
    let lastAnnounced = -1;
    let shownCounts = '';
    let loading = false;
    let wanted = '';
    const refreshPersonas = async (counts) => {
      wanted = counts;
      if (loading || !panel.dataset.live) return;
      loading = true;
      try {
        while (wanted !== shownCounts) {
          const asked = wanted;
          const response = await fetch(panel.dataset.live, { credentials: 'same-origin', headers: { Accept: 'text/html' } });
          if (!response.ok) break;
          const fresh = new DOMParser().parseFromString(await response.text(), 'text/html');
          const sections = ['demographics', 'personas'].map((id) => [document.getElementById(id), fresh.getElementById(id)]);
          // someone reading or tabbing through the personas keeps their place: swapped at the next change after
          if (sections.some(([now]) => now?.contains(document.activeElement))) break;
          for (const [now, next] of sections) if (now && next) now.replaceWith(document.importNode(next, true));
          shownCounts = asked;
          // at most one read a second, however fast a big dataset moves
          if (wanted !== shownCounts) await new Promise((resolve) => setTimeout(resolve, 1000));
        }
      } catch {
        // the next change tries again
      } finally {
        loading = false;
      }
    };
    const show = (data) => {
      const p = data.progress;
      bar.value = p.percent;
      text.textContent = `${p.percent}% · ${p.personasStored}/${p.personasTotal} personas · ${p.imagesStored}/${p.imagesTotal} images`;
      status.textContent = data.label;
      status.className = `status status-${data.status}`;
      panel.dataset.status = data.status;
      const decile = Math.floor(p.percent / 10);
      if (decile !== lastAnnounced) {
        lastAnnounced = decile;
        live.textContent = `${p.percent}% done: ${data.label}`;
      }
      const counts = `${p.personasStored}/${p.imagesStored}`;
      if (counts !== wanted) void refreshPersonas(counts);
    };
    // what the server rendered is already on the page
    shownCounts = wanted = panel.dataset.counts || '';
    source.addEventListener('progress', (event) => show(JSON.parse(event.data)));
    source.addEventListener('done', (event) => {
      show(JSON.parse(event.data));
      source.close();
      // The actions, the dataset card and the final figures are rendered by the server: load them now.
      setTimeout(() => window.location.reload(), 400);
    });
    source.addEventListener('gone', () => {
      source.close();
      window.location.assign('/datasets');
    });
  }
})();
