// Avatar Data Generator: the little behaviour the pages need. No inline script anywhere (CSP).
(() => {

  // Forms that destroy something ask first.
  document.addEventListener('submit', (event) => {
    const form = event.target;
    if (form instanceof HTMLFormElement && form.dataset.confirm && !window.confirm(form.dataset.confirm)) {
      event.preventDefault();
    }
  });

  // Full-size view of a gallery image in a dialog (Escape closes it; without JS the link opens the image).
  const viewer = document.getElementById('viewer');
  const viewerImg = document.getElementById('viewer-img');
  if (viewer && viewerImg && typeof viewer.showModal === 'function') {
    document.addEventListener('click', (event) => {
      const link = event.target instanceof Element ? event.target.closest('a.thumb') : null;
      if (!link) return;
      event.preventDefault();
      const img = link.querySelector('img');
      viewerImg.src = link.dataset.full || link.href;
      viewerImg.alt = img ? img.alt : '';
      viewer.showModal();
    });
    viewer.addEventListener('close', () => {
      viewerImg.removeAttribute('src');
    });
    viewer.addEventListener('click', (event) => {
      if (event.target === viewer) viewer.close();
    });
  }

  // Live progress of a task over server-sent events.
  const panel = document.getElementById('progress-panel');
  const FINAL = ['completed', 'partial', 'failed', 'cancelled'];
  if (panel?.dataset.events && !FINAL.includes(panel.dataset.status) && 'EventSource' in window) {
    const bar = document.getElementById('task-progress');
    const text = document.getElementById('progress-text');
    const status = document.getElementById('task-status');
    const live = document.getElementById('progress-live');
    const source = new EventSource(panel.dataset.events);
    let lastAnnounced = -1;
    const show = (data) => {
      const p = data.progress;
      bar.value = p.percent;
      text.textContent = `${p.percent}% · ${p.personasStored}/${p.personasTotal} personas · ${p.imagesStored}/${p.imagesTotal} images`;
      status.textContent = data.status;
      status.className = `status status-${data.status}`;
      panel.dataset.status = data.status;
      const decile = Math.floor(p.percent / 10);
      if (decile !== lastAnnounced) {
        lastAnnounced = decile;
        live.textContent = `${p.percent}% done, ${data.status}`;
      }
    };
    source.addEventListener('progress', (event) => show(JSON.parse(event.data)));
    source.addEventListener('done', (event) => {
      show(JSON.parse(event.data));
      source.close();
      // The personas and the gallery are rendered by the server: load them now.
      setTimeout(() => window.location.reload(), 400);
    });
    source.addEventListener('gone', () => {
      source.close();
      window.location.assign('/datasets');
    });
  }
})();
