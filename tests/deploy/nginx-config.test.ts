import { spawnSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { afterAll, describe, expect, it } from 'vitest';
import { findNginx, freePort, preparePrefix, removePrefix, SITE_CONF } from './support.js';

const nginx = findNginx();
const prefixes: string[] = [];
afterAll(() => {
  for (const p of prefixes) removePrefix(p);
});

/** The site file, with comments removed, for directive checks. */
const site = readFileSync(SITE_CONF, 'utf8')
  .split('\n')
  .map((line) => line.replace(/#.*$/, '').trimEnd())
  .filter(Boolean)
  .join('\n');

/** The body of the first block whose header matches, braces balanced. */
function block(header: RegExp): string {
  const match = header.exec(site);
  if (!match) throw new Error(`no block ${header}`);
  let depth = 0;
  for (let i = match.index; i < site.length; i++) {
    if (site[i] === '{') depth++;
    if (site[i] === '}' && --depth === 0) return site.slice(match.index, i + 1);
  }
  throw new Error(`unbalanced block ${header}`);
}

describe('nginx site config', () => {
  it('passes nginx -t with a self-signed certificate and this machine’s paths', async () => {
    expect(nginx, 'nginx (apt-get install -y nginx)').toBeTruthy();
    const paths = preparePrefix({
      httpPort: await freePort(),
      httpsPort: await freePort(),
      upstreamPorts: [await freePort(), await freePort()],
    });
    prefixes.push(paths.prefix);
    const result = spawnSync(nginx as string, ['-t', '-p', paths.prefix, '-c', paths.conf], { encoding: 'utf8' });
    expect(result.stderr).toContain('syntax is ok');
    expect(result.stderr).toContain('test is successful');
    expect(result.status).toBe(0);
  });

  it('nginx -t rejects a broken copy (the check can fail)', async () => {
    const paths = preparePrefix({ httpPort: await freePort(), httpsPort: await freePort(), upstreamPorts: [await freePort()] });
    prefixes.push(paths.prefix);
    const siteFile = `${paths.prefix}/site.conf`;
    const broken = readFileSync(siteFile, 'utf8').replace('proxy_buffering off;', 'proxy_buffering sideways;');
    writeFileSync(siteFile, broken);
    const result = spawnSync(nginx as string, ['-t', '-p', paths.prefix, '-c', paths.conf], { encoding: 'utf8' });
    expect(result.status).not.toBe(0);
    expect(result.stderr).toContain('proxy_buffering');
  });

  it('redirects HTTP to HTTPS and answers the ACME challenge from certbot’s webroot', () => {
    const http = block(/server\s*\{\s*listen 80;/);
    expect(http).toMatch(/location \^~ \/\.well-known\/acme-challenge\/ \{[^}]*root \/var\/www\/certbot;/);
    expect(http).toMatch(/return 301 https:\/\/\$host\$request_uri;/);
  });

  it('uses certbot’s certificate paths and modern TLS', () => {
    const https = block(/server\s*\{\s*listen 443 ssl/);
    expect(https).toMatch(/ssl_certificate \/etc\/letsencrypt\/live\/[^/]+\/fullchain\.pem;/);
    expect(https).toMatch(/ssl_certificate_key \/etc\/letsencrypt\/live\/[^/]+\/privkey\.pem;/);
    expect(https).toMatch(/ssl_protocols TLSv1\.2 TLSv1\.3;/);
  });

  it('proxies to an upstream of several loopback web processes over HTTP/1.1 keep-alive', () => {
    const upstream = block(/upstream avatargen_web \{/);
    expect(upstream.match(/server 127\.0\.0\.1:\d+/g)?.length).toBeGreaterThanOrEqual(2);
    expect(upstream).toMatch(/keepalive \d+;/);
    expect(site).toContain('proxy_http_version 1.1;');
    expect(site).toContain('proxy_set_header Connection "";');
  });

  it('sends the full forwarded-header set', () => {
    for (const header of [
      'Host $host',
      'X-Real-IP $remote_addr',
      'X-Forwarded-For $remote_addr',
      'X-Forwarded-Proto $scheme',
      'X-Forwarded-Host $host',
      'X-Forwarded-Port $server_port',
    ]) {
      expect(site).toContain(`proxy_set_header ${header};`);
    }
    // Locations that set their own proxy_set_header would lose all of the inherited ones.
    for (const location of site.match(/location [^{]+\{[^}]*\}/g) ?? []) expect(location).not.toContain('proxy_set_header');
  });

  it('streams server-sent events unbuffered with a long read timeout, for both event routes', () => {
    const sse = block(/location ~ \^\/\(\?:datasets\/\[\^\/\]\+\/events/);
    expect(sse).toContain('proxy_buffering off;');
    expect(sse).toMatch(/proxy_read_timeout (\d+)h;/);
    const route = new RegExp(/location ~ (\S+) \{/.exec(sse)?.[1] as string);
    expect(route.test('/datasets/01JXYZ/events')).toBe(true);
    expect(route.test('/api/v1/tasks/01JXYZ/events')).toBe(true);
    expect(route.test('/datasets/01JXYZ')).toBe(false);
  });

  it('limits bodies to 10M, serves /static/ itself, sends security headers and writes its own logs', () => {
    expect(site).toContain('client_max_body_size 10M;');
    const assets = block(/location \/static\/ \{/);
    expect(assets).toMatch(/alias \/opt\/avatargen\/packages\/host-koa\/public\/;/);
    expect(assets).toContain('Cache-Control');
    expect(assets).toContain('include /etc/nginx/snippets/avatargen-security-headers.conf;');
    expect(site).toMatch(/access_log \/var\/log\/nginx\/avatar-data-generator\.access\.log/);
    expect(site).toMatch(/error_log \/var\/log\/nginx\/avatar-data-generator\.error\.log/);
  });
});
