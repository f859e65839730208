import type { PersonaView, TaskView } from '@avatargen/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from './support/client.js';
import { PASSWORD, type Site, startSite, waitForStatus } from './support/harness.js';

/**
 * The website's demographic targets, quality report and regenerate actions: the generate form's
 * targets, the dataset page's requested-vs-achieved view and quality section, and regenerating a
 * persona or a picture from the pages. The worker runs only while a dataset is being made, so a
 * dataset sent back to the queue stays pending until a test lets it run.
 */
const OWNER = 'owner@example.com';
const OTHER = 'other@example.com';
let site: Site;
let ownerId: number;
let done: TaskView;

let nextIp = 1;
async function loggedIn(email = OWNER): Promise<Client> {
  const c = new Client(site.url, { 'x-forwarded-for': `10.3.0.${nextIp++}` });
  expect((await c.login(email, PASSWORD)).status).toBe(303);
  await c.get('/dashboard'); // the session's CSRF token
  return c;
}

/** Runs the worker until the task has ended, then stops it again. */
async function runToEnd(id: string): Promise<TaskView> {
  await site.gen.worker.start();
  try {
    return await waitForStatus(site.gen, id, ['completed', 'partial', 'failed']);
  } finally {
    await site.gen.worker.stop();
  }
}

async function allPersonas(id: string): Promise<PersonaView[]> {
  const personas: PersonaView[] = [];
  for await (const p of site.gen.personas.all(id)) personas.push(p);
  return personas;
}

/** A regenerate form posted as a browser without script sends it, and as the confirm step does. */
const FORMS: Array<Record<string, string>> = [{}, { confirm: 'yes' }];

/** What must not change when one thing is regenerated: each persona's id, name and picture keys. */
const fingerprint = (p: PersonaView) => ({
  id: p.id,
  name: `${p.firstName} ${p.lastName}`,
  base: p.baseImage?.key ?? null,
  images: p.images.map((i) => i.key),
});

beforeAll(async () => {
  site = await startSite({ worker: false, host: { trustProxy: true, throttle: { perIp: 50, perAccountIp: 3, windowMs: 60_000 } } });
  ownerId = (await site.gen.users.create({ email: OWNER, password: PASSWORD })).id;
  await site.gen.users.create({ email: OTHER, password: PASSWORD });
  const submitted = await site.gen.tasks.submit(
    {
      description: 'Tram drivers in Lisbon',
      language: 'pt',
      count: 10,
      imagesPerPersona: 4,
      targets: { genders: '50/50', ages: '25-40 70%, 41-60 30%', locations: 'Lisbon' },
    },
    { userId: ownerId },
  );
  done = await runToEnd(submitted.id);
  expect(done.status).toBe('completed');
});
afterAll(() => site?.close());

describe('the generate form’s demographic targets', () => {
  it('offers the four fields, labelled and explained, in a closed section', async () => {
    const { text } = await (await loggedIn()).get('/generate');
    expect(text).toContain('<details class="field targets">');
    expect(text).toContain('<summary>Demographic targets (optional)</summary>');
    for (const name of ['genders', 'ages', 'ethnicities', 'locations']) {
      expect(text).toContain(`<label for="targets_${name}">`);
      expect(text).toContain(`aria-describedby="targets_${name}-help"`);
      expect(text).toMatch(new RegExp(`<p class="help" id="targets_${name}-help">[^<]*\\d`));
    }
  });

  it('sends the targets with the dataset', async () => {
    const c = await loggedIn();
    await c.get('/generate');
    const reply = await c.post('/generate', {
      description: 'Fado singers',
      language: 'pt',
      count: '10',
      imagesPerPersona: '4',
      targets_genders: '50/50',
      targets_ages: '25-40',
      targets_ethnicities: '',
      targets_locations: 'Lisbon, Portugal; Porto, Portugal',
    });
    expect(reply.status).toBe(303);
    const id = /\/datasets\/(\w+)$/.exec(reply.location ?? '')?.[1] as string;
    const task = await site.gen.tasks.get(id);
    expect(task.targets).toEqual({
      genders: [
        { gender: 'f', share: 50 },
        { gender: 'm', share: 50 },
      ],
      ages: [{ min: 25, max: 40, share: 1 }],
      locations: [
        { name: 'Lisbon, Portugal', share: 1 },
        { name: 'Porto, Portugal', share: 1 },
      ],
    });
    await site.gen.tasks.delete(id);
  });

  it('a form without targets makes a dataset without any', async () => {
    const c = await loggedIn();
    await c.get('/generate');
    const reply = await c.post('/generate', {
      description: 'Bakers',
      language: 'pt',
      count: '10',
      imagesPerPersona: '4',
      targets_ages: ' ',
    });
    expect(reply.status).toBe(303);
    const id = /\/datasets\/(\w+)$/.exec(reply.location ?? '')?.[1] as string;
    expect((await site.gen.tasks.get(id)).targets).toBeNull();
    await site.gen.tasks.delete(id);
  });

  it('shows wrong targets beside their fields, the section open and every value kept', async () => {
    const c = await loggedIn();
    await c.get('/generate');
    const before = (await site.gen.tasks.list({})).total;
    const reply = await c.post('/generate', {
      description: 'Fishmongers',
      language: 'pt',
      count: '10',
      imagesPerPersona: '4',
      targets_genders: 'female 60%, male 30%',
      targets_ages: '40-25',
      targets_ethnicities: 'Portuguese 70%, Brazilian',
      targets_locations: 'Setúbal',
    });
    expect(reply.status).toBe(422);
    expect(reply.text).toContain('<details class="field targets" open>');
    expect(reply.text).toContain('<p class="error" id="targets_genders-error">The gender shares add up to 90%, not 100%.</p>');
    expect(reply.text).toContain('<p class="error" id="targets_ages-error">An age band starts at or below its end (25-40, not 40-25).</p>');
    expect(reply.text).toContain(
      '<p class="error" id="targets_ethnicities-error">Give a share to every ethnicity, or to none (equal shares).</p>',
    );
    expect(reply.text).not.toContain('id="targets_locations-error"');
    expect(reply.text).toContain('aria-describedby="targets_genders-help targets_genders-error" aria-invalid=true');
    expect(reply.text).toContain('value="female 60%, male 30%"');
    expect(reply.text).toContain('value="40-25"');
    expect(reply.text).toContain('value="Portuguese 70%, Brazilian"');
    expect(reply.text).toContain('value="Setúbal"');
    expect(reply.text).toContain('>Fishmongers</textarea>');
    expect((await site.gen.tasks.list({})).total).toBe(before);
  });
});

describe('the dataset page', () => {
  it('shows requested vs achieved per target, with bars and the figures in words, and the off-target count', async () => {
    const report = await site.gen.quality.report(done.id);
    const targets = report.targets;
    expect(targets?.dimensions.map((d) => d.dimension)).toEqual(['genders', 'ages', 'locations']);
    const { status, text } = await (await loggedIn()).get(`/datasets/${done.id}`);
    expect(status).toBe(200);
    expect(text).toContain('<h2 id="targets-title">Requested vs achieved</h2>');
    expect(text).toContain(`<span class="mono" id="targets-off">${report.offTargetPersonas}</span>`);
    for (const d of targets?.dimensions ?? []) {
      const list = new RegExp(`<ul class="target-rows" data-dimension="${d.dimension}">([\\s\\S]*?)</ul>`).exec(text)?.[1] ?? '';
      for (const row of d.rows) {
        expect(list).toContain(`<span class="target-label">${row.label}</span>`);
        expect(list).toContain(`${row.requested} requested, ${row.achieved} achieved`);
      }
      expect(list.match(/<li class="target-row/g)).toHaveLength(d.rows.length + (d.other > 0 ? 1 : 0));
      expect(list.match(/<svg class="bars"/g)).toHaveLength(d.rows.length + (d.other > 0 ? 1 : 0));
      if (d.other > 0) expect(list).toContain(`${d.other} outside the targets`);
    }
    // 10 personas, half of each gender asked for: each bar is half of the dataset
    const genders = /data-dimension="genders">([\s\S]*?)<\/ul>/.exec(text)?.[1] ?? '';
    expect(genders.match(/<rect class="bar-requested" width="50" height="4">/g)).toHaveLength(2);
  });

  it('shows the quality report’s counts, and no problems when it found none', async () => {
    const report = await site.gen.quality.report(done.id);
    const { text } = await (await loggedIn()).get(`/datasets/${done.id}`);
    expect(text).toContain('<h2 id="quality-title">Quality report</h2>');
    expect(text).toContain(`<dd class="mono" id="quality-texts">${report.texts.nearDuplicates.length}</dd>`);
    expect(text).toContain(`<dd class="mono" id="quality-names">${report.names.duplicates.length}</dd>`);
    expect(text).toContain(`<dd class="mono" id="quality-across">${report.pictures.acrossPersonas.length}</dd>`);
    expect(text).toContain(`<dd class="mono" id="quality-within">${report.pictures.withinPersona.length}</dd>`);
    expect(text).toContain(`<dd class="mono" id="quality-rejected">${report.rejectedPersonas}</dd>`);
    expect(text).toContain(`<dd class="mono" id="quality-off-target">${report.offTargetPersonas}</dd>`);
    expect(text.includes('No problems found.')).toBe(report.flaggedPersonas.length === 0);
    // every flagged persona has its Regenerate button, and no other does
    expect(text.match(/<button type="submit" class="ghost small">Regenerate persona<\/button>/g)?.length ?? 0).toBe(
      report.flaggedPersonas.length,
    );
  });

  it('names each finding with links to the personas, and offers to regenerate a flagged persona', async () => {
    // two personas sharing a full name, as a provider that repeats itself would make them
    // (the report names a group by its lowest id, and lists the ids in ascending order)
    const [first, second] = (await allPersonas(done.id)).slice(0, 2).sort((x, y) => x.id - y.id);
    if (!first || !second) throw new Error('no personas');
    await site.gen.orm.em
      .fork()
      .execute('update personas set first_name = ?, last_name = ? where id = ?', [first.firstName, first.lastName, second.id]);
    // Rows changed behind the service's back: the report kept at the task's end no longer describes
    // them, so it is dropped (as reopening the task does) and made again on the next view.
    const dropKept = () => site.gen.orm.em.fork().execute('update generation_tasks set quality_report = null where id = ?', [done.id]);
    await dropKept();
    try {
      const report = await site.gen.quality.report(done.id);
      expect(report.names.duplicates).toContainEqual({
        fullName: `${first.firstName} ${first.lastName}`,
        personaIds: [first.id, second.id],
      });
      const { text } = await (await loggedIn()).get(`/datasets/${done.id}`);
      expect(text).not.toContain('No problems found.');
      expect(text).toContain(`<dd class="mono" id="quality-names">${report.names.duplicates.length}</dd>`);
      const url = (id: number) => `/datasets/${done.id}/personas/${id}`;
      expect(text).toContain(
        `<li><b>${first.firstName} ${first.lastName}</b>: <a href="${url(first.id)}">#${first.id}</a>, <a href="${url(second.id)}">#${second.id}</a></li>`,
      );
      for (const id of [first.id, second.id]) expect(text).toContain(`action="${url(id)}/regenerate"`);
      // each similar picture pair shows both thumbnails, each linking to its persona
      for (const pair of [...report.pictures.acrossPersonas, ...report.pictures.withinPersona].slice(0, 20)) {
        expect(text).toContain(`<a href="${url(pair.a.personaId)}" class="pair-side"><img class="pair-img" src="/thumbs/tasks/`);
        expect(text).toContain(`<a href="${url(pair.b.personaId)}" class="pair-side"><img class="pair-img" src="/thumbs/tasks/`);
      }
    } finally {
      await site.gen.orm.em
        .fork()
        .execute('update personas set first_name = ?, last_name = ? where id = ?', [second.firstName, second.lastName, second.id]);
      await dropKept();
    }
  });

  it('while a dataset runs: its targets as asked, and the report promised for the end', async () => {
    const task = await site.gen.tasks.submit(
      { description: 'Waiting dataset', language: 'pt', count: 10, imagesPerPersona: 4, targets: { genders: 'women' } },
      { userId: ownerId },
    );
    try {
      const { text } = await (await loggedIn()).get(`/datasets/${task.id}`);
      expect(text).toContain('<h2 id="targets-title">Requested vs achieved</h2>');
      expect(text).toContain('<dt>Genders</dt><dd class="mono small">female 1</dd>');
      expect(text).toContain('The report is made when the task ends.');
      expect(text).not.toContain('id="quality-texts"');
      expect(text).not.toContain('Regenerate persona');
    } finally {
      await site.gen.tasks.delete(task.id);
    }
  });

  it('a dataset without targets has no requested-vs-achieved section', async () => {
    const task = await site.gen.tasks.submit(
      { description: 'No targets', language: 'pt', count: 10, imagesPerPersona: 4 },
      { userId: ownerId },
    );
    try {
      const { text } = await (await loggedIn()).get(`/datasets/${task.id}`);
      expect(text).not.toContain('id="targets-title"');
      expect(text).toContain('id="quality-title"');
    } finally {
      await site.gen.tasks.delete(task.id);
    }
  });
});

describe('regenerating from the pages', () => {
  it('the persona page of an ended dataset offers to regenerate the persona and each picture', async () => {
    const [persona] = await allPersonas(done.id);
    if (!persona) throw new Error('no personas');
    const base = `/datasets/${done.id}/personas/${persona.id}`;
    const { text } = await (await loggedIn()).get(base);
    expect(text).toContain(`action="${base}/regenerate"`);
    for (const image of persona.images) {
      expect(text).toContain(`action="${base}/images/${image.index}/regenerate"`);
      expect(text).toContain(`aria-label="Regenerate picture ${image.index + 1}">Regenerate</button>`);
    }
    expect(text.match(/data-confirm-field="confirm"/g)).toHaveLength(persona.images.length + 1);
  });

  it('regenerate persona needs the CSRF token, asks first without the script, then replaces that persona only', async () => {
    const before = await allPersonas(done.id);
    const target = before[3] as PersonaView;
    const path = `/datasets/${done.id}/personas/${target.id}/regenerate`;
    const c = await loggedIn();
    await c.get(`/datasets/${done.id}/personas/${target.id}`);
    expect((await c.post(path, { confirm: 'yes' }, { csrf: false })).status).toBe(403);

    const ask = await c.post(path);
    expect(ask.status).toBe(200);
    expect(ask.text).toContain(`<h1 id="confirm-title">Regenerate ${target.firstName} ${target.lastName}?</h1>`);
    expect(ask.text).toContain(`<form method="post" action="${path}" class="inline">`);
    expect(ask.text).toContain('<input type="hidden" name="confirm" value="yes">');
    expect((await site.gen.tasks.get(done.id)).status).toBe('completed');

    const reply = await c.post(path, { confirm: 'yes' });
    expect(reply.status).toBe(303);
    expect(reply.location).toBe(`/datasets/${done.id}`);
    const page = await c.get(`/datasets/${done.id}`);
    expect(page.text).toContain(`<p class="notice flash" role="status" id="flash">Persona #${target.id} is being made again`);
    expect(page.text).toContain('The report is made when the task ends.');
    expect((await c.get(`/datasets/${done.id}`)).text).not.toContain('id="flash"'); // shown once

    const ended = await runToEnd(done.id);
    expect(ended.status).toBe('completed');
    const after = await allPersonas(done.id);
    expect(after).toHaveLength(before.length);
    expect(after.some((p) => p.id === target.id)).toBe(false);
    const kept = before.filter((p) => p.id !== target.id).map(fingerprint);
    expect(after.filter((p) => p.id !== target.id && before.some((b) => b.id === p.id)).map(fingerprint)).toEqual(kept);
    const fresh = after.filter((p) => !before.some((b) => b.id === p.id));
    expect(fresh).toHaveLength(1);
    expect(fresh[0]?.images).toHaveLength(4);
    expect(fresh[0]?.baseImage).not.toBeNull();
    done = ended;
  });

  it('regenerate picture replaces that picture only', async () => {
    const before = await allPersonas(done.id);
    const target = before[1] as PersonaView;
    const path = `/datasets/${done.id}/personas/${target.id}/images/2/regenerate`;
    const c = await loggedIn();
    await c.get(`/datasets/${done.id}/personas/${target.id}`);
    expect((await c.post(path, { confirm: 'yes' }, { csrf: false })).status).toBe(403);
    const ask = await c.post(path);
    expect(ask.status).toBe(200);
    expect(ask.text).toContain(`Regenerate picture 3 of ${target.firstName} ${target.lastName}?`);

    const reply = await c.post(path, { confirm: 'yes' });
    expect(reply.status).toBe(303);
    expect(reply.location).toBe(`/datasets/${done.id}`);
    expect((await c.get(`/datasets/${done.id}`)).text).toContain(`Picture 3 of persona #${target.id} is being made again`);
    // the dataset is pending again (the worker is stopped): nothing more is regenerated until it ends
    expect((await c.post(path, { confirm: 'yes' })).status).toBe(409);

    const ended = await runToEnd(done.id);
    expect(ended.status).toBe('completed');
    const after = await allPersonas(done.id);
    expect(after.filter((p) => p.id !== target.id).map(fingerprint)).toEqual(before.filter((p) => p.id !== target.id).map(fingerprint));
    const again = after.find((p) => p.id === target.id) as PersonaView;
    const keys = (p: PersonaView) => p.images.map((i) => [i.index, i.key]);
    expect(again.images.map((i) => i.index)).toEqual([0, 1, 2, 3]);
    expect(keys(again).filter(([i]) => i !== 2)).toEqual(keys(target).filter(([i]) => i !== 2));
    expect(again.images[2]?.key).not.toBe(target.images[2]?.key);
    expect(again.baseImage?.key).toBe(target.baseImage?.key);
    done = ended;
  });

  it('a running dataset cannot regenerate anything, and offers no button', async () => {
    const [persona] = await allPersonas(done.id);
    if (!persona) throw new Error('no personas');
    const c = await loggedIn();
    const base = `/datasets/${done.id}/personas/${persona.id}`;
    await c.get(base);
    expect((await c.post(`${base}/regenerate`, { confirm: 'yes' })).status).toBe(303);
    // the dataset is pending again (the worker is stopped): no more regenerating until it ends
    const page = await c.get(base);
    expect(page.status).toBe(404); // that persona is gone, being made again
    const [other] = (await allPersonas(done.id)).filter((p) => p.id !== persona.id);
    const otherPage = await c.get(`/datasets/${done.id}/personas/${other?.id}`);
    expect(otherPage.status).toBe(200);
    expect(otherPage.text).not.toContain('/regenerate"');
    for (const [path, form] of [
      [`/datasets/${done.id}/personas/${other?.id}/regenerate`, {}],
      [`/datasets/${done.id}/personas/${other?.id}/regenerate`, { confirm: 'yes' }],
      [`/datasets/${done.id}/personas/${other?.id}/images/0/regenerate`, { confirm: 'yes' }],
    ] as const) {
      expect((await c.post(path, form)).status, path).toBe(409);
    }
    done = await runToEnd(done.id);
    expect(done.status).toBe('completed');
  });

  it('another user’s dataset, a missing persona or picture, and a persona of another dataset: the same 404', async () => {
    const [persona] = await allPersonas(done.id);
    if (!persona) throw new Error('no personas');
    const other = await loggedIn(OTHER);
    const base = `/datasets/${done.id}/personas/${persona.id}`;
    expect((await other.get(base)).status).toBe(404);
    for (const path of [`${base}/regenerate`, `${base}/images/0/regenerate`]) {
      for (const form of FORMS) expect((await other.post(path, form)).status, path).toBe(404);
    }
    const owner = await loggedIn();
    await owner.get(`/datasets/${done.id}`);
    for (const path of [
      `/datasets/${done.id}/personas/999999/regenerate`,
      `/datasets/${done.id}/personas/0/regenerate`,
      `/datasets/${done.id}/personas/abc/regenerate`,
      `${base}/images/9/regenerate`,
      `${base}/images/x/regenerate`,
      `/datasets/nosuchtask/personas/${persona.id}/regenerate`,
    ]) {
      for (const form of FORMS) expect((await owner.post(path, form)).status, path).toBe(404);
    }
    // a persona of another of the owner's datasets is not at this address
    const second = await site.gen.tasks.submit(
      { description: 'Second', language: 'pt', count: 10, imagesPerPersona: 4 },
      { userId: ownerId },
    );
    await site.gen.tasks.cancel(second.id); // ended, so only the persona's address is wrong
    try {
      for (const form of FORMS) {
        expect((await owner.post(`/datasets/${second.id}/personas/${persona.id}/regenerate`, form)).status).toBe(404);
        expect((await owner.post(`/datasets/${second.id}/personas/${persona.id}/images/0/regenerate`, form)).status).toBe(404);
      }
      expect((await site.gen.tasks.get(second.id)).status).toBe('cancelled');
    } finally {
      await site.gen.tasks.delete(second.id);
    }
    expect((await site.gen.tasks.get(done.id)).status).toBe('completed');
    expect((await allPersonas(done.id)).some((p) => p.id === persona.id)).toBe(true);
  });
});
