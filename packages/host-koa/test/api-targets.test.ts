import type { QualityReport, TaskView } from '@avatargen/core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Client } from './support/client.js';
import { PASSWORD, type Site, startSite, waitForStatus } from './support/harness.js';

let site: Site;
let api: Client; // the owner's token
let other: Client; // another user's token
let browser: Client; // the owner's session

interface ApiPersona {
  id: number;
  firstName: string;
  lastName: string;
  baseImage: { url: string; thumbnailUrl: string } | null;
  images: Array<{ index: number; url: string; thumbnailUrl: string }>;
}

const REQUEST = { description: 'Tram drivers in Lisbon', language: 'pt', count: 10, imagesPerPersona: 4 };

beforeAll(async () => {
  site = await startSite();
  const owner = await site.gen.users.create({ email: 'owner@example.com', password: PASSWORD });
  const stranger = await site.gen.users.create({ email: 'stranger@example.com', password: PASSWORD });
  api = new Client(site.url, { authorization: `Bearer ${(await site.gen.users.createToken(owner.id, 'tests')).token}` });
  other = new Client(site.url, { authorization: `Bearer ${(await site.gen.users.createToken(stranger.id, 'tests')).token}` });
  browser = new Client(site.url);
  expect((await browser.login('owner@example.com', PASSWORD)).status).toBe(303);
  await browser.get('/dashboard');
});
afterAll(() => site?.close());

async function submit(body: Record<string, unknown>): Promise<TaskView> {
  const created = await api.request('POST', '/api/v1/tasks', { json: body });
  expect(created.status, created.text).toBe(201);
  return created.json() as TaskView;
}

async function personasOf(id: string): Promise<ApiPersona[]> {
  const reply = await api.get(`/api/v1/tasks/${id}/personas?perPage=100`);
  expect(reply.status).toBe(200);
  return (reply.json() as { personas: ApiPersona[] }).personas;
}

/** What must not change when another persona or picture is made again. */
const fingerprint = (p: ApiPersona) => ({
  id: p.id,
  name: `${p.firstName} ${p.lastName}`,
  base: p.baseImage?.url,
  images: p.images.map((i) => [i.index, i.url, i.thumbnailUrl]),
});

describe('targets over the API', () => {
  it('takes targets as text, stores them normalised and returns them on GET', async () => {
    const task = await submit({
      ...REQUEST,
      targets: {
        genders: 'f 7, m 3',
        ages: '18-29 40%, 30-49 60%',
        ethnicities: 'Portuguese 70%, Brazilian 30%',
        locations: 'Lisbon; Porto, Portugal',
      },
    });
    const expected = {
      genders: [
        { gender: 'f', share: 7 },
        { gender: 'm', share: 3 },
      ],
      ages: [
        { min: 18, max: 29, share: 40 },
        { min: 30, max: 49, share: 60 },
      ],
      ethnicities: [
        { name: 'Portuguese', share: 70 },
        { name: 'Brazilian', share: 30 },
      ],
      locations: [
        { name: 'Lisbon', share: 1 },
        { name: 'Porto, Portugal', share: 1 },
      ],
    };
    expect(task.targets).toEqual(expected);
    expect(((await api.get(`/api/v1/tasks/${task.id}`)).json() as TaskView).targets).toEqual(expected);
    await site.gen.tasks.cancel(task.id);
  });

  it('takes the structured form (gender words included), and no targets is null', async () => {
    const task = await submit({
      ...REQUEST,
      targets: { genders: [{ gender: 'female', share: 1 }], ages: [{ min: 65, max: 120, share: '1' }], locations: '' },
    });
    expect(((await api.get(`/api/v1/tasks/${task.id}`)).json() as TaskView).targets).toEqual({
      genders: [{ gender: 'f', share: 1 }],
      ages: [{ min: 65, max: 120, share: 1 }],
    });
    const plain = await submit(REQUEST);
    expect(((await api.get(`/api/v1/tasks/${plain.id}`)).json() as TaskView).targets).toBeNull();
    await site.gen.tasks.cancel(task.id);
    await site.gen.tasks.cancel(plain.id);
  });

  it('refuses bad targets with a message per dimension (422), and makes no task', async () => {
    const before = (await site.gen.tasks.list({})).total;
    const bad = await api.request('POST', '/api/v1/tasks', {
      json: {
        ...REQUEST,
        targets: { genders: 'female 60%, male 30%', ages: '18-30, 30-49', ethnicities: [{ name: '', share: 1 }] },
      },
    });
    expect(bad.status).toBe(422);
    expect((bad.json() as { fields: Record<string, string> }).fields).toEqual({
      'targets.genders': 'The gender shares add up to 90%, not 100%.',
      'targets.ages': 'Age bands must not overlap (18-29, 30-49, not 18-30, 30-49).',
      'targets.ethnicities': 'Must not be empty.',
    });
    const word = await api.request('POST', '/api/v1/tasks', { json: { ...REQUEST, targets: { genders: 'robots' } } });
    expect(word.status).toBe(422);
    expect(word.json()).toMatchObject({
      fields: { 'targets.genders': '"robots" is not a gender: write female or male (or f, m), or a split such as 50/50.' },
    });
    const unknown = await api.request('POST', '/api/v1/tasks', { json: { ...REQUEST, targets: { heights: 'tall' } } });
    expect(unknown.status).toBe(422);
    expect(unknown.json()).toMatchObject({ fields: { 'targets.heights': 'Unknown target; use genders, ages, ethnicities, locations.' } });
    const reversed = await api.request('POST', '/api/v1/tasks', {
      json: { ...REQUEST, targets: { ages: [{ min: 40, max: 20, share: 1 }] } },
    });
    expect(reversed.json()).toMatchObject({ fields: { 'targets.ages': 'An age band starts at or below its end (25-40, not 40-25).' } });
    const notObject = await api.request('POST', '/api/v1/tasks', { json: { ...REQUEST, targets: 'women' } });
    expect(notObject.json()).toMatchObject({ fields: { targets: expect.stringContaining('Must be an object') } });
    // the other fields are still checked beside the targets
    const both = await api.request('POST', '/api/v1/tasks', { json: { ...REQUEST, count: 3, targets: { genders: 'robots' } } });
    expect(Object.keys((both.json() as { fields: Record<string, string> }).fields).sort()).toEqual(['count', 'targets.genders']);
    expect((await site.gen.tasks.list({})).total).toBe(before);
  });
});

describe('a completed task with targets', () => {
  let id: string;
  beforeAll(async () => {
    id = (
      await submit({
        ...REQUEST,
        targets: {
          genders: 'f 7, m 3',
          ages: '20-39 50%, 40-59 50%',
          ethnicities: 'Portuguese 6, Cape Verdean 4',
          locations: 'Lisbon; Porto',
        },
      })
    ).id;
    await waitForStatus(site.gen, id, ['completed']);
  });

  it('reports requested (exact) next to achieved in the quality report', async () => {
    const reply = await api.get(`/api/v1/tasks/${id}/quality`);
    expect(reply.status).toBe(200);
    const report = reply.json() as QualityReport;
    // provider-local meets every quota: nothing was asked again, and achieved is what was asked
    expect(report.offTargetPersonas).toBe(0);
    expect(report.targets?.personas).toBe(10);
    const dimensions = report.targets?.dimensions ?? [];
    expect(dimensions.map((d) => d.dimension)).toEqual(['genders', 'ages', 'ethnicities', 'locations']);
    for (const d of dimensions) {
      expect(d.other).toBe(0);
      for (const row of d.rows) expect(row.achieved, `${d.dimension} ${row.label}`).toBe(row.requested);
    }
    expect(dimensions[3]?.rows.map((r) => [r.label, r.requested])).toEqual([
      ['Lisbon', 5],
      ['Porto', 5],
    ]);
    expect(dimensions[0]?.rows.map((r) => [r.label, r.requested])).toEqual([
      ['female', 7],
      ['male', 3],
    ]);
    expect(dimensions[1]?.rows.map((r) => [r.label, r.requested])).toEqual([
      ['20-39', 5],
      ['40-59', 5],
    ]);
    // every stored persona is counted once per dimension: in a row or in `other`
    for (const d of dimensions) expect(d.rows.reduce((sum, r) => sum + r.achieved, 0) + d.other).toBe(10);
    // a task without targets reports null
    const plain = await submit({ ...REQUEST });
    expect(((await api.get(`/api/v1/tasks/${plain.id}/quality`)).json() as QualityReport).targets).toBeNull();
    await site.gen.tasks.cancel(plain.id);
  });

  it('regenerates one persona: a new one takes its place, every other persona is kept as it was', async () => {
    const before = await personasOf(id);
    expect(before).toHaveLength(10);
    const gone = before[3] as ApiPersona;
    const reply = await api.request('POST', `/api/v1/tasks/${id}/personas/${gone.id}/regenerate`);
    expect(reply.status, reply.text).toBe(200);
    // back in the queue (the worker may have taken it up already)
    expect(['pending', 'generating-data', 'generating-images']).toContain((reply.json() as TaskView).status);
    // not ended now: a second change waits
    const busy = await api.request('POST', `/api/v1/tasks/${id}/personas/${(before[0] as ApiPersona).id}/regenerate`);
    expect(busy.status).toBe(409);
    expect(busy.json()).toMatchObject({ error: 'Wait until the task has ended to regenerate a persona.' });
    const ended = await waitForStatus(site.gen, id, ['completed']);
    expect(ended.progress).toMatchObject({ personasStored: 10, imagesStored: 40 });
    const after = await personasOf(id);
    expect(after).toHaveLength(10);
    expect(after.map((p) => p.id)).not.toContain(gone.id);
    const kept = before.filter((p) => p.id !== gone.id).map(fingerprint);
    expect(after.filter((p) => kept.some((k) => k.id === p.id)).map(fingerprint)).toEqual(kept);
    const added = after.find((p) => !before.some((b) => b.id === p.id)) as ApiPersona;
    expect(added.images.map((i) => i.index)).toEqual([0, 1, 2, 3]);
    expect(added.baseImage).not.toBeNull();
    // the old persona's pictures are gone from storage
    expect((await api.get(gone.images[0]?.url as string)).status).toBe(404);
    expect((await api.get(added.images[0]?.url as string)).status).toBe(200);
  });

  it('regenerates one picture: that picture gets a new key, the rest stay', async () => {
    const before = await personasOf(id);
    const persona = before[5] as ApiPersona;
    const reply = await api.request('POST', `/api/v1/tasks/${id}/personas/${persona.id}/images/2/regenerate`);
    expect(reply.status, reply.text).toBe(200);
    // back in the queue (the worker may have taken it up already)
    expect(['pending', 'generating-data', 'generating-images']).toContain((reply.json() as TaskView).status);
    const busy = await api.request('POST', `/api/v1/tasks/${id}/personas/${persona.id}/images/1/regenerate`);
    expect(busy.status).toBe(409);
    await waitForStatus(site.gen, id, ['completed']);
    const after = await personasOf(id);
    const changed = after.find((p) => p.id === persona.id) as ApiPersona;
    expect(changed.images.map((i) => i.index)).toEqual([0, 1, 2, 3]);
    expect(changed.images[2]?.url).not.toBe(persona.images[2]?.url);
    expect((await api.get(changed.images[2]?.url as string)).status).toBe(200);
    expect((await api.get(persona.images[2]?.url as string)).status).toBe(404);
    const untouched = (p: ApiPersona) => ({ ...fingerprint(p), images: fingerprint(p).images.filter(([index]) => index !== 2) });
    expect(untouched(changed)).toEqual(untouched(persona));
    expect(after.filter((p) => p.id !== persona.id).map(fingerprint)).toEqual(before.filter((p) => p.id !== persona.id).map(fingerprint));
  });

  it('answers 400 for a malformed id, 404 for a persona or picture not in the task or another user’s task', async () => {
    const before = (await personasOf(id)).map(fingerprint);
    const pid = before[0]?.id as number;
    const malformed = await api.request('POST', `/api/v1/tasks/${id}/personas/abc/regenerate`);
    expect(malformed.status).toBe(400);
    expect(malformed.json()).toMatchObject({
      error: 'The persona id must be a whole number from 0 to 2147483647.',
      fields: { personaId: expect.any(String) },
    });
    for (const path of [
      `personas/${pid}/images/-1/regenerate`,
      `personas/${pid}/images/1.5/regenerate`,
      `personas/99999999999/images/0/regenerate`,
    ]) {
      expect((await api.request('POST', `/api/v1/tasks/${id}/${path}`)).status, path).toBe(400);
    }
    expect((await api.request('POST', `/api/v1/tasks/${id}/personas/${pid}/images/x/regenerate`)).json()).toMatchObject({
      error: 'The picture index (0-based) must be a whole number from 0 to 2147483647.',
    });
    expect((await api.request('POST', `/api/v1/tasks/${id}/personas/2147483647/regenerate`)).status).toBe(404);
    expect((await api.request('POST', `/api/v1/tasks/${id}/personas/${pid}/images/4/regenerate`)).status).toBe(404);
    expect((await api.request('POST', `/api/v1/tasks/nope/personas/${pid}/regenerate`)).status).toBe(404);
    // a persona of another task of the same user is not in this one
    const second = await submit({ ...REQUEST });
    await waitForStatus(site.gen, second.id, ['completed']);
    expect((await api.request('POST', `/api/v1/tasks/${second.id}/personas/${pid}/regenerate`)).status).toBe(404);
    expect((await api.request('POST', `/api/v1/tasks/${second.id}/personas/${pid}/images/0/regenerate`)).status).toBe(404);
    // another user's task is not there at all
    expect((await other.request('POST', `/api/v1/tasks/${id}/personas/${pid}/regenerate`)).status).toBe(404);
    expect((await other.request('POST', `/api/v1/tasks/${id}/personas/${pid}/images/0/regenerate`)).status).toBe(404);
    // the session needs the CSRF token, like every other change
    expect((await browser.request('POST', `/api/v1/tasks/${id}/personas/${pid}/regenerate`, { csrf: false })).status).toBe(403);
    expect((await browser.request('POST', `/api/v1/tasks/${id}/personas/${pid}/images/0/regenerate`, { csrf: false })).status).toBe(403);
    // nothing above changed the task
    expect(((await api.get(`/api/v1/tasks/${id}`)).json() as TaskView).status).toBe('completed');
    expect((await personasOf(id)).map(fingerprint)).toEqual(before);
  });

  it('refuses to regenerate while a task runs (409)', async () => {
    const [persona] = await personasOf(id);
    const running = await submit({ ...REQUEST });
    const persona409 = await api.request('POST', `/api/v1/tasks/${running.id}/personas/${(persona as ApiPersona).id}/regenerate`);
    expect(persona409.status).toBe(409);
    const picture409 = await api.request('POST', `/api/v1/tasks/${running.id}/personas/${(persona as ApiPersona).id}/images/0/regenerate`);
    expect(picture409.status).toBe(409);
    expect(picture409.json()).toMatchObject({ error: 'Wait until the task has ended to regenerate a picture.' });
    await site.gen.tasks.cancel(running.id);
  });
});
