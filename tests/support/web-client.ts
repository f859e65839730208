import yauzl from 'yauzl';

/**
 * A tiny browser for the HTTP and end-to-end tests: a cookie jar, no automatic redirects, form and JSON bodies,
 * and the CSRF token read from the last page.
 */
export interface SetCookie {
  name: string;
  value: string;
  attributes: Record<string, string | true>;
  raw: string;
}

export function parseSetCookie(raw: string): SetCookie {
  const [pair = '', ...attrs] = raw.split(';').map((s) => s.trim());
  const eq = pair.indexOf('=');
  const attributes: Record<string, string | true> = {};
  for (const attr of attrs) {
    const i = attr.indexOf('=');
    if (i < 0) attributes[attr.toLowerCase()] = true;
    else attributes[attr.slice(0, i).toLowerCase()] = attr.slice(i + 1);
  }
  return { name: pair.slice(0, eq), value: pair.slice(eq + 1), attributes, raw };
}

export interface Reply {
  status: number;
  headers: Headers;
  text: string;
  json: () => unknown;
  setCookies: SetCookie[];
  location: string | null;
}

export class Client {
  readonly cookies = new Map<string, string>();
  csrf = '';

  constructor(
    readonly base: string,
    readonly defaults: Record<string, string> = {},
  ) {}

  async request(
    method: string,
    path: string,
    options: { form?: Record<string, string | string[]>; json?: unknown; headers?: Record<string, string>; csrf?: boolean } = {},
  ): Promise<Reply> {
    const headers: Record<string, string> = { ...this.defaults, ...options.headers };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (options.form) {
      const params = new URLSearchParams();
      if (options.csrf !== false && this.csrf) params.append('_csrf', this.csrf);
      for (const [k, v] of Object.entries(options.form)) for (const item of Array.isArray(v) ? v : [v]) params.append(k, item);
      body = params.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
      if (options.csrf !== false && this.csrf && !headers.authorization) headers['x-csrf-token'] = this.csrf;
    } else if (options.csrf !== false && this.csrf && method !== 'GET' && !headers.authorization) {
      headers['x-csrf-token'] = this.csrf;
    }
    const res = await fetch(new URL(path, this.base), { method, headers, body, redirect: 'manual' });
    const setCookies = res.headers.getSetCookie().map(parseSetCookie);
    for (const cookie of setCookies) {
      const expired = typeof cookie.attributes.expires === 'string' && new Date(cookie.attributes.expires).getTime() < Date.now();
      if (cookie.value === '' || expired) this.cookies.delete(cookie.name);
      else this.cookies.set(cookie.name, cookie.value);
    }
    const text = await res.text();
    const token = /name="_csrf" value="([^"]+)"/.exec(text);
    if (token?.[1]) this.csrf = token[1];
    return {
      status: res.status,
      headers: res.headers,
      text,
      json: () => JSON.parse(text),
      setCookies,
      location: res.headers.get('location'),
    };
  }

  get(path: string, headers?: Record<string, string>) {
    return this.request('GET', path, { headers });
  }

  post(path: string, form: Record<string, string | string[]> = {}, options: { csrf?: boolean; headers?: Record<string, string> } = {}) {
    return this.request('POST', path, { form, ...options });
  }

  /** Loads the login page (for its CSRF token) and logs in; returns the POST's reply. */
  async login(email: string, password: string): Promise<Reply> {
    await this.get('/login');
    return this.post('/login', { email, password });
  }
}

/** Every entry of a ZIP, read with yauzl (which checks the archive's structure and sizes). */
export function readZip(zip: Buffer): Promise<Map<string, Buffer>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(zip, { lazyEntries: true }, (error, archive) => {
      if (error || !archive) return reject(error ?? new Error('not a zip'));
      const entries = new Map<string, Buffer>();
      archive.on('entry', (entry: yauzl.Entry) => {
        archive.openReadStream(entry, async (err, stream) => {
          if (err || !stream) return reject(err);
          const chunks: Buffer[] = [];
          try {
            for await (const chunk of stream) chunks.push(chunk as Buffer);
          } catch (readError) {
            return reject(readError);
          }
          entries.set(entry.fileName, Buffer.concat(chunks));
          archive.readEntry();
        });
      });
      archive.on('end', () => resolve(entries));
      archive.on('error', reject);
      archive.readEntry();
    });
  });
}

export interface SseEvent {
  event: string;
  data: string;
}

/** Reads server-sent events from a fetch response until `stop` says so or the stream ends. */
export async function collectEvents(res: Response, stop: (event: SseEvent) => boolean, timeoutMs = 60_000): Promise<SseEvent[]> {
  const events: SseEvent[] = [];
  const reader = (res.body as ReadableStream<Uint8Array>).getReader();
  const decoder = new TextDecoder();
  let buffer = '';
  const timer = setTimeout(() => void reader.cancel(), timeoutMs);
  try {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return events;
      buffer += decoder.decode(value, { stream: true });
      let cut = buffer.indexOf('\n\n');
      while (cut >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        cut = buffer.indexOf('\n\n');
        let event = 'message';
        const data: string[] = [];
        for (const line of block.split('\n')) {
          if (line.startsWith('event: ')) event = line.slice(7);
          else if (line.startsWith('data: ')) data.push(line.slice(6));
        }
        if (data.length === 0) continue;
        const parsed = { event, data: data.join('\n') };
        events.push(parsed);
        if (stop(parsed)) {
          await reader.cancel();
          return events;
        }
      }
    }
  } finally {
    clearTimeout(timer);
  }
}
