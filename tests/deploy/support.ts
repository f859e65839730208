import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { chmodSync, copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type ClientRequest, request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { tmpdir, userInfo } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const DEPLOY = join(ROOT, 'deploy');
export const SITE_CONF = join(DEPLOY, 'nginx/avatar-data-generator.conf');
export const HEADERS_SNIPPET = join(DEPLOY, 'nginx/snippets/avatargen-security-headers.conf');
export const PUBLIC_DIR = join(ROOT, 'packages/host-koa/public');

/** Debian's nginx (`.ci/run` installs it); null when this machine has none. */
export function findNginx(): string | null {
  for (const path of ['/usr/sbin/nginx', '/usr/bin/nginx', '/usr/local/sbin/nginx']) if (existsSync(path)) return path;
  return null;
}

export async function freePort(): Promise<number> {
  return new Promise((resolvePort, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const address = server.address();
      const port = typeof address === 'object' && address ? address.port : 0;
      server.close(() => resolvePort(port));
    });
  });
}

/** Replaces `from` with `to` and fails when `from` is not in the text: the site file must not drift from what the tests rewrite. */
function replaceAll(text: string, from: string | RegExp, to: string): string {
  const found = typeof from === 'string' ? text.includes(from) : from.test(text);
  if (!found) throw new Error(`site config no longer contains ${String(from)}; update tests/deploy/support.ts`);
  return typeof from === 'string' ? text.split(from).join(to) : text.replace(from, to);
}

export interface SitePaths {
  prefix: string;
  httpPort: number;
  httpsPort: number;
  upstreamPorts: number[];
}

/**
 * The production site file with this machine's paths: loopback ports instead of 80/443, the
 * test's certificate instead of certbot's, logs and snippets in the temp prefix, the repository's
 * public/ folder instead of /opt/avatargen's. Everything else is the file as shipped.
 */
export function renderSite(paths: SitePaths): string {
  let site = readFileSync(SITE_CONF, 'utf8');
  site = replaceAll(site, /^\s*listen \[::\]:(80|443)[^;]*;\n/gm, '');
  site = replaceAll(site, 'listen 80;', `listen 127.0.0.1:${paths.httpPort};`);
  site = replaceAll(site, 'listen 443 ssl http2;', `listen 127.0.0.1:${paths.httpsPort} ssl http2;`);
  // The upstream's server lines become the test's host processes.
  const upstream = /^(\s*)server 127\.0\.0\.1:\d+(?: [^;]*)?;\n/gm;
  const matches = [...site.matchAll(upstream)];
  if (matches.length === 0) throw new Error('site config has no "server 127.0.0.1:<port>" upstream lines; update tests/deploy/support.ts');
  const indent = matches[0]?.[1] ?? '    ';
  const servers = paths.upstreamPorts.map((port) => `${indent}server 127.0.0.1:${port} max_fails=3 fail_timeout=10s;\n`).join('');
  let placed = false;
  site = site.replace(upstream, () => {
    if (placed) return '';
    placed = true;
    return servers;
  });
  site = replaceAll(site, '/etc/letsencrypt/live/avatars.example.com/', `${paths.prefix}/tls/`);
  site = replaceAll(site, '/var/log/nginx/', `${paths.prefix}/logs/`);
  site = replaceAll(site, '/etc/nginx/snippets/', `${paths.prefix}/snippets/`);
  site = replaceAll(site, '/var/www/certbot', `${paths.prefix}/certbot`);
  site = replaceAll(site, '/opt/avatargen/packages/host-koa/public/', `${PUBLIC_DIR}/`);
  return site;
}

/** A temp nginx prefix: self-signed certificate for localhost, the site, a main config that includes it. */
export function preparePrefix(ports: Omit<SitePaths, 'prefix'>): SitePaths & { conf: string; caCert: string } {
  const prefix = mkdtempSync(join(tmpdir(), 'avatargen-nginx-'));
  // Worker processes run as an unprivileged user (as in production) and must reach the temp dirs.
  chmodSync(prefix, 0o755);
  for (const dir of ['tls', 'logs', 'snippets', 'certbot', 'tmp']) mkdirSync(join(prefix, dir), { recursive: true, mode: 0o755 });
  const tls = join(prefix, 'tls');
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '2',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-keyout',
      join(tls, 'privkey.pem'),
      '-out',
      join(tls, 'fullchain.pem'),
    ],
    { stdio: 'pipe' },
  );
  copyFileSync(join(tls, 'fullchain.pem'), join(tls, 'chain.pem'));
  copyFileSync(HEADERS_SNIPPET, join(prefix, 'snippets/avatargen-security-headers.conf'));
  const paths = { prefix, ...ports };
  writeFileSync(join(prefix, 'site.conf'), renderSite(paths));
  const asRoot = process.getuid?.() === 0;
  const workerUser = asRoot ? (hasUser('www-data') ? 'www-data' : 'nobody') : null;
  const conf = join(prefix, 'nginx.conf');
  writeFileSync(
    conf,
    [
      workerUser ? `user ${workerUser};` : `# not root: workers run as ${userInfo().username}`,
      'daemon off;',
      'worker_processes 1;',
      `pid ${prefix}/nginx.pid;`,
      `error_log ${prefix}/logs/main-error.log warn;`,
      'events { worker_connections 256; }',
      'http {',
      '    include /etc/nginx/mime.types;',
      '    default_type application/octet-stream;',
      '    sendfile on;',
      `    client_body_temp_path ${prefix}/tmp/body;`,
      `    proxy_temp_path ${prefix}/tmp/proxy;`,
      `    fastcgi_temp_path ${prefix}/tmp/fastcgi;`,
      `    uwsgi_temp_path ${prefix}/tmp/uwsgi;`,
      `    scgi_temp_path ${prefix}/tmp/scgi;`,
      `    include ${prefix}/site.conf;`,
      '}',
      '',
    ].join('\n'),
  );
  return { ...paths, conf, caCert: readFileSync(join(tls, 'fullchain.pem'), 'utf8') };
}

function hasUser(name: string): boolean {
  try {
    return readFileSync('/etc/passwd', 'utf8')
      .split('\n')
      .some((line) => line.startsWith(`${name}:`));
  } catch {
    return false;
  }
}

export function removePrefix(prefix: string): void {
  rmSync(prefix, { recursive: true, force: true });
}

/** Runs nginx in the foreground; resolves once it accepts connections on `port`. */
export async function startNginx(nginx: string, prefix: string, conf: string, port: number): Promise<ChildProcess> {
  const child = spawn(nginx, ['-p', prefix, '-c', conf], { stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout?.on('data', (d) => (output += d));
  child.stderr?.on('data', (d) => (output += d));
  const deadline = Date.now() + 15_000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`nginx exited (${child.exitCode}): ${output}`);
    if (await canConnect(port)) return child;
    await new Promise((r) => setTimeout(r, 100));
  }
  child.kill('SIGKILL');
  throw new Error(`nginx did not listen on ${port}: ${output}`);
}

function canConnect(port: number): Promise<boolean> {
  return new Promise((resolveConnect) => {
    const req = httpRequest({ host: '127.0.0.1', port, path: '/', method: 'HEAD', timeout: 1000 }, (res) => {
      res.resume();
      resolveConnect(true);
    });
    req.on('error', () => resolveConnect(false));
    req.on('timeout', () => {
      req.destroy();
      resolveConnect(false);
    });
    req.end();
  });
}

/** Stops a child process and waits for it (SIGTERM, then SIGKILL). */
export async function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGTERM', graceMs = 10_000): Promise<void> {
  if (!child || child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill(signal);
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  text: string;
}

/**
 * A small HTTPS browser: trusts only the test's certificate, connects from a chosen loopback
 * address (so nginx sees a client address other than its own), keeps cookies and the last CSRF token.
 */
export class TlsClient {
  readonly cookies = new Map<string, string>();
  csrf = '';
  constructor(
    readonly port: number,
    readonly ca: string,
    readonly localAddress = '127.0.0.2',
  ) {}

  request(
    method: string,
    path: string,
    options: { form?: Record<string, string>; json?: unknown; headers?: Record<string, string>; csrf?: boolean } = {},
  ): Promise<Reply> {
    const headers: Record<string, string> = { host: 'avatars.example.com', ...options.headers };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    let body: string | undefined;
    if (options.form) {
      const params = new URLSearchParams(options.form);
      if (options.csrf !== false && this.csrf) params.set('_csrf', this.csrf);
      body = params.toString();
      headers['content-type'] = 'application/x-www-form-urlencoded';
    } else if (options.json !== undefined) {
      body = JSON.stringify(options.json);
      headers['content-type'] = 'application/json';
      if (options.csrf !== false && this.csrf) headers['x-csrf-token'] = this.csrf;
    }
    if (body !== undefined) headers['content-length'] = String(Buffer.byteLength(body));
    return new Promise((resolveReply, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: this.port,
          method,
          path,
          headers,
          ca: this.ca,
          servername: 'localhost',
          localAddress: this.localAddress,
          timeout: 30_000,
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on('data', (c: Buffer) => chunks.push(c));
          res.on('end', () => {
            for (const raw of res.headers['set-cookie'] ?? []) {
              const [pair = ''] = raw.split(';');
              const eq = pair.indexOf('=');
              const name = pair.slice(0, eq).trim();
              const value = pair.slice(eq + 1).trim();
              if (value === '' || /expires=Thu, 01 Jan 1970/i.test(raw)) this.cookies.delete(name);
              else this.cookies.set(name, value);
            }
            const text = Buffer.concat(chunks).toString('utf8');
            const token = /name="_csrf" value="([^"]+)"/.exec(text);
            if (token?.[1]) this.csrf = token[1];
            resolveReply({ status: res.statusCode ?? 0, headers: res.headers, text });
          });
          res.on('error', reject);
        },
      );
      req.on('timeout', () => req.destroy(new Error(`${method} ${path} timed out`)));
      req.on('error', reject);
      req.end(body);
    });
  }

  /** Opens a server-sent events stream; events are read as they arrive, while the stream stays open. */
  events(path: string): Promise<EventStream> {
    const headers: Record<string, string> = { host: 'avatars.example.com', accept: 'text/event-stream' };
    if (this.cookies.size) headers.cookie = [...this.cookies].map(([k, v]) => `${k}=${v}`).join('; ');
    return new Promise((resolveStream, reject) => {
      const req = httpsRequest(
        {
          host: '127.0.0.1',
          port: this.port,
          method: 'GET',
          path,
          headers,
          ca: this.ca,
          servername: 'localhost',
          localAddress: this.localAddress,
        },
        (res) => {
          if (res.statusCode !== 200) {
            req.destroy();
            reject(new Error(`${path}: HTTP ${res.statusCode}`));
            return;
          }
          resolveStream(new EventStream(req, res));
        },
      );
      req.on('error', reject);
      req.end();
    });
  }
}

export interface SseEvent {
  event: string;
  data: string;
}

/** Server-sent events parsed as they come; `next(name)` waits for the next event of that name. */
export class EventStream {
  private readonly received: SseEvent[] = [];
  private wake: (() => void) | undefined;
  private ended = false;
  constructor(
    private readonly req: ClientRequest,
    readonly res: IncomingMessage,
  ) {
    let buffer = '';
    res.setEncoding('utf8');
    res.on('data', (chunk: string) => {
      buffer += chunk;
      let cut = buffer.indexOf('\n\n');
      while (cut >= 0) {
        const lines = buffer.slice(0, cut).split('\n');
        buffer = buffer.slice(cut + 2);
        cut = buffer.indexOf('\n\n');
        const event = lines.find((l) => l.startsWith('event: '))?.slice(7) ?? 'message';
        const data = lines.filter((l) => l.startsWith('data: ')).map((l) => l.slice(6));
        if (data.length > 0) this.received.push({ event, data: data.join('\n') });
      }
      this.wake?.();
    });
    const end = () => {
      this.ended = true;
      this.wake?.();
    };
    res.on('end', end);
    res.on('error', end);
    req.on('error', end);
  }

  async next(event: string, timeoutMs = 20_000): Promise<SseEvent> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const index = this.received.findIndex((e) => e.event === event);
      if (index >= 0) return this.received.splice(0, index + 1).pop() as SseEvent;
      if (this.ended) throw new Error(`the stream ended before a "${event}" event`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no "${event}" event within ${timeoutMs} ms`);
      await new Promise<void>((resolveWake) => {
        const timer = setTimeout(resolveWake, left);
        this.wake = () => {
          clearTimeout(timer);
          resolveWake();
        };
      });
    }
  }

  get isOpen(): boolean {
    return !this.ended;
  }

  close(): void {
    this.req.destroy();
  }
}

/** A plain HTTP request to nginx (the redirect server). */
export function plainGet(port: number, path: string): Promise<Reply> {
  return new Promise((resolveReply, reject) => {
    const req = httpRequest(
      { host: '127.0.0.1', port, path, headers: { host: 'avatars.example.com' }, localAddress: '127.0.0.2' },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('end', () =>
          resolveReply({ status: res.statusCode ?? 0, headers: res.headers, text: Buffer.concat(chunks).toString('utf8') }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}
