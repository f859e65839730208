import {
  type AvatarGen,
  canTransition,
  ConflictError,
  COUNT_MAX,
  COUNT_MIN,
  DESCRIPTION_MAX,
  IMAGE_BACKGROUNDS,
  formatCost,
  formatProviderLimits,
  IMAGE_OUTPUT_FORMATS,
  IMAGE_QUALITIES,
  IMAGE_SIZES,
  IMAGES_PER_PERSONA,
  isFinal,
  listLanguages,
  NEW_PASSWORD_MIN,
  PASSWORD_MAX_BYTES,
  PORTS,
  type PortName,
  type QualityReport,
  type Scope,
  SETTING_KEYS,
  STATUS_LABELS,
  statusLabel,
  TARGET_DIMENSIONS,
  TASK_STATUSES,
  targetsAsText,
  type TaskStatus,
  type TaskView,
  NotFoundError,
  ValidationError,
} from '@avatargen/core';
import { Router } from '@koa/router';
import type { Eta } from 'eta';
import type { Next } from 'koa';
import type { AuthCache } from '../auth-cache.js';
import type { DatasetCache } from '../dataset-cache.js';
import { HttpError } from '../errors.js';
import { render as renderView } from '../render.js';
import { type LoginThrottle, newCsrfToken, safeNext } from '../security.js';
import type { SseHub } from '../sse.js';
import { bodyOf, type HostContext, type SessionData, scopeOf, sessionOf } from '../state.js';
import { thumbnailUrl } from '../urls.js';
import { intParam } from './api.js';
import { sendExport } from './exports.js';

const TOGGLES = [
  'randomize_face_base',
  'randomize_face_gender_lock',
  'crop_white_borders',
  'randomize_image_style',
  'provenance_marks',
] as const;
const PAGE_SIZE = 25;
/** The Images API output options: the settings page's site defaults, the generate form's per-task choice. */
const OUTPUT_CHOICES = {
  quality: { setting: 'image_quality', label: 'Quality (quality)', values: IMAGE_QUALITIES },
  size: { setting: 'image_size', label: 'Size (size)', values: IMAGE_SIZES },
  format: { setting: 'image_output_format', label: 'Format (output_format)', values: IMAGE_OUTPUT_FORMATS },
  background: { setting: 'image_background', label: 'Background (background)', values: IMAGE_BACKGROUNDS },
} as const;
/** The generate form's fields for a task's own output options, by their name in `imageOutput`. */
const OUTPUT_FIELDS = ['quality', 'size', 'format', 'compression', 'background'] as const;

/** The form's `output_<name>` fields as the request's `imageOutput` (an empty one: the site's setting). */
function imageOutputFromForm(body: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(OUTPUT_FIELDS.map((name) => [name, body[`output_${name}`]]).filter(([, v]) => v !== undefined && v !== ''));
}

/** The form's `targets_<dimension>` text fields as the request's `targets`; none filled in: no targets. */
function targetsFromForm(body: Record<string, unknown>): Record<string, unknown> | undefined {
  const entries = TARGET_DIMENSIONS.map((d) => [d, body[`targets_${d}`]] as const).filter(
    ([, v]) => typeof v === 'string' && v.trim() !== '',
  );
  return entries.length > 0 ? Object.fromEntries(entries) : undefined;
}

/** Pairs (and flagged personas) of each kind listed on the dataset page; the counts always say how many in all. */
const QUALITY_SHOWN = 20;

/** A persona named by the quality report: its name, and its pictures' thumbnails by `base` or index. */
interface QualityPersona {
  name: string;
  thumbs: Record<string, string>;
}

/**
 * The quality report of an ended dataset, with the personas its listed findings name (read one by
 * one: only those shown, so a dataset with many findings costs no more than QUALITY_SHOWN of each).
 */
async function qualityView(gen: AvatarGen, task: TaskView, scope: Scope) {
  // The report kept when the task ended (the card reads the same one): not made again per view.
  const report: QualityReport = await gen.quality.kept(task.id, scope);
  const shown = {
    texts: report.texts.nearDuplicates.slice(0, QUALITY_SHOWN),
    names: report.names.duplicates.slice(0, QUALITY_SHOWN),
    across: report.pictures.acrossPersonas.slice(0, QUALITY_SHOWN),
    within: report.pictures.withinPersona.slice(0, QUALITY_SHOWN),
    flagged: report.flaggedPersonas.slice(0, QUALITY_SHOWN),
  };
  const ids = new Set<number>(shown.flagged);
  for (const pair of [...shown.texts, ...shown.across, ...shown.within]) ids.add(pair.a.personaId).add(pair.b.personaId);
  for (const group of shown.names) for (const id of group.personaIds) ids.add(id);
  const personas: Record<number, QualityPersona> = {};
  await Promise.all(
    [...ids].map(async (id) => {
      try {
        const p = await gen.personas.get(id, scope);
        if (p.taskId !== task.id) return;
        const thumbs: Record<string, string> = {};
        if (p.baseImage) thumbs.base = thumbnailUrl(p.baseImage.key);
        for (const image of p.images) thumbs[String(image.index)] = thumbnailUrl(image.key);
        personas[id] = { name: `${p.firstName} ${p.lastName}`, thumbs };
      } catch (error) {
        // regenerated between the report and this read: listed without a name
        if (!(error instanceof NotFoundError)) throw error;
      }
    }),
  );
  return { report, shown, personas };
}

/** A persona id from the address, or the 404 of any unknown page. */
function personaIdParam(raw: unknown): number {
  if (typeof raw !== 'string' || !/^[1-9]\d{0,9}$/.test(raw) || Number(raw) > 2_147_483_647) throw new HttpError(404, 'Not found.');
  return Number(raw);
}

/** A one-time message for the next page this session sees ("Dataset deleted."). */
function setFlash(ctx: HostContext, text: string): void {
  const session = sessionOf(ctx);
  if (session) session.flash = text;
}

/** Every page gets the status wording and the session's flash message, which is shown once. */
function render(ctx: HostContext, eta: Eta, view: string, data: Record<string, unknown> = {}, status = 200): void {
  const session = sessionOf(ctx) as (SessionData & { flash?: unknown }) | null;
  const flash = typeof session?.flash === 'string' ? session.flash : undefined;
  if (session && flash !== undefined) delete session.flash;
  renderView(ctx, eta, view, { label: statusLabel, flash, ...data }, status);
}

/** The server-rendered website. */
export function pagesRouter(
  gen: AvatarGen,
  eta: Eta,
  throttle: LoginThrottle,
  sse: SseHub,
  datasets: DatasetCache,
  /** Told when a token is revoked here, so it stops working in this process at once. */
  auth: AuthCache,
  /** Lifetime of a logged-in session (the anonymous one before it is shorter). */
  sessionMaxAgeMs: number,
): Router {
  const router = new Router();
  const c = (ctx: unknown) => ctx as HostContext;
  const languages = listLanguages();

  const loggedIn = async (ctx: HostContext, next: Next) => {
    if (ctx.state.user) return next();
    if (ctx.method === 'GET') {
      ctx.redirect(`/login?next=${encodeURIComponent(ctx.originalUrl)}`);
      return;
    }
    throw new HttpError(401, 'Your session has ended. Log in again.');
  };
  const seeOther = (ctx: HostContext, url: string) => {
    ctx.status = 303;
    ctx.redirect(url);
  };

  router.get('/', (ctx) => ctx.redirect(c(ctx).state.user ? '/dashboard' : '/login'));

  // ---------------------------------------------------------------- login / logout
  const loginPage = (ctx: HostContext, data: { error?: string; email?: string; next?: string }, status = 200) =>
    render(ctx, eta, 'login', { error: data.error, email: data.email ?? '', next: safeNext(data.next ?? ctx.query.next, '') }, status);

  router.get('/login', (ctx) => {
    if (c(ctx).state.user) return ctx.redirect(safeNext(ctx.query.next));
    loginPage(c(ctx), {});
  });

  router.post('/login', async (ctx) => {
    const hc = c(ctx);
    const body = bodyOf(ctx);
    const email = typeof body.email === 'string' ? body.email.trim() : '';
    const password = typeof body.password === 'string' ? body.password : '';
    const next = typeof body.next === 'string' ? body.next : '';
    if (!email || !password) return loginPage(hc, { error: 'Enter your email and password.', email, next }, 422);
    if (email.length > 254 || /[\u0000-\u001f\u007f]/.test(email)) {
      return loginPage(hc, { error: 'That is not an email address.', email: '', next }, 422);
    }
    if (Buffer.byteLength(password, 'utf8') > PASSWORD_MAX_BYTES) {
      return loginPage(hc, { error: `Passwords are at most ${PASSWORD_MAX_BYTES} bytes long.`, email, next }, 422);
    }
    // counted before bcrypt runs, so a burst of attempts cannot all pass the limit at once
    const wait = await throttle.attempt(ctx.ip, email);
    if (wait > 0) {
      const minutes = Math.ceil(wait / 60_000);
      ctx.set('Retry-After', String(Math.ceil(wait / 1000)));
      hc.state.log.warn({ ip: ctx.ip }, 'login throttled');
      return loginPage(
        hc,
        { error: `Too many failed attempts. Try again in ${minutes} minute${minutes > 1 ? 's' : ''}.`, email, next },
        429,
      );
    }
    const user = await gen.users.authenticate(email, password);
    if (!user) {
      hc.state.log.info({ ip: ctx.ip }, 'login failed');
      return loginPage(hc, { error: 'The email or the password is wrong.', email, next }, 401);
    }
    await throttle.succeeded(ctx.ip, email);
    // New session id at login (no fixation): the old server-side session is destroyed.
    const session = sessionOf(ctx);
    if (!session) throw new Error('no session');
    const data = (ctx.session as unknown as { toJSON(): Record<string, unknown> }).toJSON();
    for (const key of Object.keys(data)) delete (session as Record<string, unknown>)[key];
    session.userId = user.id;
    session.csrf = newCsrfToken();
    (ctx.session as unknown as { maxAge: number }).maxAge = sessionMaxAgeMs;
    await (ctx.session as unknown as { regenerate(): Promise<void> }).regenerate();
    hc.state.log.info({ userId: user.id }, 'logged in');
    seeOther(hc, safeNext(next));
  });

  router.post('/logout', async (ctx) => {
    ctx.session = null; // destroys the server-side session and clears the cookie
    seeOther(c(ctx), '/login');
  });

  // Everything below needs a logged-in user.
  router.use(['/dashboard', '/generate', '/history', '/datasets', '/exports', '/settings'], (ctx, next) => loggedIn(c(ctx), next));

  // ---------------------------------------------------------------- dashboard
  router.get('/dashboard', async (ctx) => {
    const scope = scopeOf(c(ctx));
    const [stats, recent] = await Promise.all([gen.tasks.stats(scope), gen.tasks.list({ ...scope, limit: 8 })]);
    const peak = Math.max(1, ...stats.days.map((d) => Math.max(d.tasks, d.personas, d.images)));
    render(c(ctx), eta, 'dashboard', { stats, recent: recent.tasks, peak });
  });

  // ---------------------------------------------------------------- generate
  const generatePage = async (ctx: HostContext, values: Record<string, unknown>, errors: Record<string, string> = {}, status = 200) =>
    render(
      ctx,
      eta,
      'generate',
      {
        values,
        errors,
        languages,
        counts: { min: COUNT_MIN, max: COUNT_MAX },
        imageChoices: IMAGES_PER_PERSONA,
        descriptionMax: DESCRIPTION_MAX,
        outputChoices: OUTPUT_CHOICES,
        site: await gen.settings.get(),
      },
      status,
    );
  router.get('/generate', (ctx) => generatePage(c(ctx), { language: 'English', count: 10, imagesPerPersona: 4, description: '' }));
  router.post('/generate', async (ctx) => {
    const { _csrf, ...input } = bodyOf(ctx);
    const fields = Object.fromEntries(Object.entries(input).filter(([k]) => !k.startsWith('targets_')));
    try {
      const task = await gen.tasks.submit(
        { ...fields, imageOutput: imageOutputFromForm(input), targets: targetsFromForm(input) },
        scopeOf(c(ctx)),
      );
      seeOther(c(ctx), `/datasets/${task.id}`);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      // `imageOutput.quality` is the form's `output_quality`, `targets.ages` its `targets_ages`
      const errors = Object.fromEntries(
        Object.entries(error.fields).map(([k, m]) => [k.replace(/^imageOutput\./, 'output_').replace(/^targets\./, 'targets_'), m]),
      );
      await generatePage(c(ctx), input, errors, 422);
    }
  });

  // ---------------------------------------------------------------- history / datasets
  const listPage = async (ctx: HostContext, view: 'history' | 'datasets' | 'exports') => {
    const page = intParam(ctx.query.page, 'page', 1, 1, 1_000_000);
    const statusQuery = typeof ctx.query.status === 'string' && ctx.query.status !== '' ? ctx.query.status : undefined;
    if (statusQuery && !(TASK_STATUSES as readonly string[]).includes(statusQuery))
      throw new ValidationError({ status: 'Unknown status.' });
    const status = (view === 'exports' ? undefined : statusQuery) as TaskStatus | undefined;
    const { tasks, total } = await gen.tasks.list({ ...scopeOf(ctx), status, limit: PAGE_SIZE, offset: (page - 1) * PAGE_SIZE });
    render(ctx, eta, view, {
      tasks,
      total,
      page,
      pages: Math.max(1, Math.ceil(total / PAGE_SIZE)),
      status: status ?? '',
      // the filter shows the words, the address keeps the status names
      statuses: TASK_STATUSES.map((value) => ({ value, label: STATUS_LABELS[value] })),
      filtered: status !== undefined,
      base: `/${view}`,
    });
  };
  router.get('/history', (ctx) => listPage(c(ctx), 'history'));
  router.get('/datasets', (ctx) => listPage(c(ctx), 'datasets'));
  router.get('/exports', (ctx) => listPage(c(ctx), 'exports'));

  router.get('/datasets/:id', async (ctx) => {
    const scope = scopeOf(c(ctx));
    const id = ctx.params.id as string;
    const pageNo = intParam(ctx.query.page, 'page', 1, 1, 1_000_000);
    const { task, demographics, personas } = await datasets.detail(id, pageNo, scope);
    const ethnicityTotal = demographics.ethnicity.reduce((sum, e) => sum + e.count, 0);
    // The estimate at the site's prices; none set says so rather than showing 0.
    const cost = (await gen.settings.get()).prices.length > 0 ? formatCost(task.cost) : null;
    const card = await gen.exports.card(id, scope);
    // the report kept when the dataset ended (reopening it drops that); a running one has none yet
    const quality = isFinal(task.status) ? await qualityView(gen, task, scope) : null;
    render(c(ctx), eta, 'dataset', {
      task,
      demographics,
      ethnicityTotal,
      personas,
      thumb: thumbnailUrl,
      cost,
      card,
      quality,
      targetsText: targetsAsText(task.targets),
    });
  });

  router.get('/datasets/:id/events', async (ctx) => {
    await sse.open(c(ctx), ctx.params.id as string, scopeOf(c(ctx)));
  });

  // The demographics and the page of personas alone, for the live dataset page to swap in while
  // the task runs (the same templates as the full page, so both always agree).
  router.get('/datasets/:id/live', async (ctx) => {
    const pageNo = intParam(ctx.query.page, 'page', 1, 1, 1_000_000);
    const { task, demographics, personas } = await datasets.detail(ctx.params.id as string, pageNo, scopeOf(c(ctx)));
    const ethnicityTotal = demographics.ethnicity.reduce((sum, e) => sum + e.count, 0);
    // not the page wrapper: a fragment must not use up the session's flash message
    renderView(c(ctx), eta, 'dataset-live', { label: statusLabel, task, demographics, ethnicityTotal, personas, thumb: thumbnailUrl });
  });

  // One persona: every picture at full size, its prompts and each picture's style parameters.
  router.get('/datasets/:id/personas/:personaId', async (ctx) => {
    const id = ctx.params.id as string;
    const personaId = personaIdParam(ctx.params.personaId);
    const { task, persona } = await personaOf(c(ctx), id, personaId);
    render(c(ctx), eta, 'persona', { task, persona, ended: isFinal(task.status) });
  });

  const personaOf = async (ctx: HostContext, id: string, personaId: number) => {
    const scope = scopeOf(ctx);
    const task = await gen.tasks.get(id, scope); // 404 for a missing dataset or another user's
    const persona = await gen.personas.get(personaId, scope);
    // a persona of another dataset is not at this address, even one the user may see
    if (persona.taskId !== task.id) throw new NotFoundError(`No persona ${personaId} in ${id}`);
    return { task, persona };
  };

  // Regenerating replaces what was made, so it asks first, as cancelling does: posted without
  // `confirm=yes` (no script) it answers with a page that asks.
  const regenerateConfirm = async (ctx: HostContext, id: string, personaId: number, index: number | null) => {
    const { task, persona } = await personaOf(ctx, id, personaId);
    if (!isFinal(task.status)) throw new ConflictError('Wait until the dataset has ended to regenerate anything of it.');
    if (index !== null && !persona.images.some((image) => image.index === index)) {
      throw new NotFoundError(`No picture ${index} of persona ${personaId}`);
    }
    render(ctx, eta, 'regenerate-confirm', { task, persona, index });
  };
  router.post('/datasets/:id/personas/:personaId/regenerate', async (ctx) => {
    const hc = c(ctx);
    const id = ctx.params.id as string;
    const personaId = personaIdParam(ctx.params.personaId);
    if (bodyOf(ctx).confirm !== 'yes') return regenerateConfirm(hc, id, personaId, null);
    await gen.tasks.regeneratePersona(id, personaId, scopeOf(hc));
    setFlash(hc, `Persona #${personaId} is being made again, with its pictures; the rest of the dataset is kept.`);
    seeOther(hc, `/datasets/${encodeURIComponent(id)}`);
  });
  router.post('/datasets/:id/personas/:personaId/images/:index/regenerate', async (ctx) => {
    const hc = c(ctx);
    const id = ctx.params.id as string;
    const personaId = personaIdParam(ctx.params.personaId);
    const raw = ctx.params.index as string;
    if (!/^\d{1,3}$/.test(raw)) throw new HttpError(404, 'Not found.');
    const index = Number(raw);
    if (bodyOf(ctx).confirm !== 'yes') return regenerateConfirm(hc, id, personaId, index);
    await gen.tasks.regeneratePicture(id, personaId, index, scopeOf(hc));
    setFlash(hc, `Picture ${index + 1} of persona #${personaId} is being made again; the other pictures are kept.`);
    seeOther(hc, `/datasets/${encodeURIComponent(id)}`);
  });

  // Cancelling asks first: the form posted without `confirm=yes` (no script, or the script's
  // dialog not shown) answers with a page that asks; the script adds the field once asked.
  router.post('/datasets/:id/cancel', async (ctx) => {
    const hc = c(ctx);
    const id = ctx.params.id as string;
    const scope = scopeOf(hc);
    if (bodyOf(ctx).confirm !== 'yes') {
      const task = await gen.tasks.get(id, scope); // 404 for a missing dataset or another user's
      if (!canTransition(task.status, 'cancelled'))
        throw new ConflictError(`This dataset has ended (${statusLabel(task.status)}): there is nothing to cancel.`);
      return render(hc, eta, 'cancel-confirm', { task });
    }
    const task = await gen.tasks.cancel(id, scope);
    setFlash(hc, `Dataset ${task.id} cancelled. What was finished is kept; Retry makes what is missing.`);
    seeOther(hc, `/datasets/${encodeURIComponent(id)}`);
  });
  router.post('/datasets/:id/retry', async (ctx) => {
    const id = ctx.params.id as string;
    const task = await gen.tasks.retry(id, scopeOf(c(ctx)));
    setFlash(c(ctx), `Dataset ${task.id} queued again: only what is missing will be made.`);
    seeOther(c(ctx), `/datasets/${encodeURIComponent(id)}`);
  });
  router.post('/datasets/:id/delete', async (ctx) => {
    const id = ctx.params.id as string;
    await gen.tasks.delete(id, scopeOf(c(ctx)));
    setFlash(c(ctx), `Dataset ${id} deleted, with its personas and images.`);
    seeOther(c(ctx), '/datasets');
  });
  router.post('/datasets/:id/export', async (ctx) => {
    const format = String(bodyOf(ctx).format ?? '');
    await sendExport(gen, ctx, ctx.params.id as string, format, scopeOf(c(ctx)));
  });

  // ---------------------------------------------------------------- settings
  const settingsPage = async (
    ctx: HostContext,
    extra: {
      values?: Record<string, unknown>;
      errors?: Record<string, string>;
      newToken?: string;
      tokenError?: string;
      saved?: boolean;
    } = {},
    status = 200,
  ) => {
    const user = ctx.state.user;
    if (!user) throw new HttpError(401, 'Log in first.');
    const [saved, tokens] = await Promise.all([gen.settings.get(), gen.users.listTokens(user.id)]);
    const ports = Object.keys(PORTS).map((port) => ({ port, owner: gen.plugins.ports[port as PortName] ?? null }));
    render(
      ctx,
      eta,
      'settings',
      {
        values: extra.values ?? saved,
        errors: extra.errors ?? {},
        tokens,
        toggles: TOGGLES,
        outputChoices: OUTPUT_CHOICES,
        formatProviderLimits,
        ports,
        plugins: gen.plugins.list,
        ...extra,
      },
      status,
    );
  };
  router.get('/settings', (ctx) => settingsPage(c(ctx), { saved: ctx.query.saved === '1' }));
  router.post('/settings', async (ctx) => {
    const hc = c(ctx);
    if (!hc.state.user?.isAdmin) throw new HttpError(403, 'Only administrators can change settings.');
    const body = bodyOf(ctx);
    const changes: Record<string, unknown> = {};
    for (const key of SETTING_KEYS) {
      // An unticked checkbox is not sent at all: absent means off.
      if ((TOGGLES as readonly string[]).includes(key)) changes[key] = body[key] === 'on' || body[key] === 'true';
      else changes[key] = body[key];
    }
    try {
      await gen.settings.update(changes);
      seeOther(hc, '/settings?saved=1');
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      await settingsPage(hc, { values: changes, errors: error.fields }, 422);
    }
  });
  router.post('/settings/tokens', async (ctx) => {
    const hc = c(ctx);
    const user = hc.state.user;
    if (!user) throw new HttpError(401, 'Log in first.');
    try {
      const { token } = await gen.users.createToken(user.id, String(bodyOf(ctx).name ?? ''));
      await settingsPage(hc, { newToken: token }, 201);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      await settingsPage(hc, { tokenError: error.fields.name ?? error.message }, 422);
    }
  });
  router.post('/settings/tokens/:tokenId/revoke', async (ctx) => {
    const user = c(ctx).state.user;
    if (!user) throw new HttpError(401, 'Log in first.');
    const tokenId = intParam(ctx.params.tokenId, 'tokenId', 0, 1, 2_147_483_647);
    await gen.users.revokeToken(user.id, tokenId);
    auth.forgetTokens();
    seeOther(c(ctx), '/settings');
  });

  // ---------------------------------------------------------------- own password
  const passwordPage = (ctx: HostContext, errors: Record<string, string> = {}, status = 200) =>
    render(ctx, eta, 'password', { errors, min: NEW_PASSWORD_MIN, maxBytes: PASSWORD_MAX_BYTES }, status);
  router.get('/settings/password', (ctx) => passwordPage(c(ctx)));
  router.post('/settings/password', async (ctx) => {
    const hc = c(ctx);
    const user = hc.state.user;
    if (!user) throw new HttpError(401, 'Log in first.');
    const body = bodyOf(ctx);
    const text = (name: string) => (typeof body[name] === 'string' ? (body[name] as string) : '');
    const [current, next, again] = [text('current'), text('next'), text('again')];
    if (!current) return passwordPage(hc, { current: 'Enter your current password.' }, 422);
    if (next !== again) return passwordPage(hc, { again: 'The two new passwords differ.' }, 422);
    // A wrong current password counts like a failed login, in the same buckets: a stolen session
    // cannot be used to guess the password faster than the login page allows.
    const wait = await throttle.attempt(ctx.ip, user.email);
    if (wait > 0) {
      const minutes = Math.ceil(wait / 60_000);
      ctx.set('Retry-After', String(Math.ceil(wait / 1000)));
      return passwordPage(hc, { current: `Too many failed attempts. Try again in ${minutes} minute${minutes > 1 ? 's' : ''}.` }, 429);
    }
    try {
      await gen.users.changePassword(user.id, current, next);
    } catch (error) {
      if (!(error instanceof ValidationError)) throw error;
      if (error.fields.current) hc.state.log.info({ ip: ctx.ip, userId: user.id }, 'password change: wrong current password');
      else await throttle.succeeded(ctx.ip, user.email); // the password was right: not a guess
      return passwordPage(hc, error.fields, error.fields.current ? 401 : 422);
    }
    await throttle.succeeded(ctx.ip, user.email);
    // Every session of the account was ended (a stolen one included); this person gets a new one,
    // under a new id, as at login.
    auth.clear();
    const session = sessionOf(ctx);
    if (!session) throw new Error('no session');
    const data = (ctx.session as unknown as { toJSON(): Record<string, unknown> }).toJSON();
    for (const key of Object.keys(data)) delete (session as Record<string, unknown>)[key];
    session.userId = user.id;
    session.csrf = newCsrfToken();
    session.flash = 'Password changed. Other sessions of your account have been logged out.';
    (ctx.session as unknown as { maxAge: number }).maxAge = sessionMaxAgeMs;
    await (ctx.session as unknown as { regenerate(): Promise<void> }).regenerate();
    hc.state.log.info({ userId: user.id }, 'password changed');
    seeOther(hc, '/settings');
  });
  return router;
}
