import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { DEPLOY, ROOT } from './support.js';

const UNITS = ['avatargen-web@.service', 'avatargen-worker.service'] as const;
type Unit = Record<string, Record<string, string[]>>;

/** A unit file as section -> key -> values (a key may repeat), comments and blank lines dropped. */
function parseUnit(text: string): Unit {
  const unit: Unit = {};
  let section = '';
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue;
    const header = /^\[(.+)\]$/.exec(line);
    if (header) {
      section = header[1] as string;
      unit[section] ??= {};
      continue;
    }
    const eq = line.indexOf('=');
    if (eq < 0) throw new Error(`not a directive: ${line}`);
    const key = line.slice(0, eq).trim();
    const entries = unit[section] ?? {};
    unit[section] = entries;
    entries[key] = [...(entries[key] ?? []), line.slice(eq + 1).trim()];
  }
  return unit;
}

const read = (name: string) => readFileSync(join(DEPLOY, 'systemd', name), 'utf8');
const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

describe('systemd units', () => {
  for (const name of UNITS) {
    it(`${name} has the restart rules, dependencies, environment, logging and hardening`, () => {
      const unit = parseUnit(read(name));
      const one = (section: string, key: string) => {
        const values = unit[section]?.[key];
        expect(values, `${section}.${key}`).toHaveLength(1);
        return values?.[0];
      };
      expect(one('Unit', 'After')).toContain('postgresql.service');
      expect(one('Unit', 'Wants')).toContain('postgresql.service');
      // Restart for ever, 10 s apart: no start limit that gives up (an hour-long database outage
      // must not leave the units stopped until someone runs `systemctl reset-failed`).
      expect(one('Service', 'Restart')).toBe('always');
      expect(one('Service', 'RestartSec')).toBe('10s');
      expect(one('Unit', 'StartLimitIntervalSec')).toBe('0');
      const limits = Object.entries(unit).flatMap(([section, keys]) =>
        Object.keys(keys)
          .filter((key) => key.startsWith('StartLimit'))
          .map((key) => `${section}.${key}`),
      );
      expect(limits, 'start-limit directives').toEqual(['Unit.StartLimitIntervalSec']);
      expect(one('Service', 'EnvironmentFile')).toBe('/etc/avatargen/avatargen.env');
      expect(one('Service', 'StandardOutput')).toBe('journal');
      expect(one('Service', 'StandardError')).toBe('journal');
      expect(one('Service', 'NoNewPrivileges')).toBe('yes');
      expect(one('Service', 'ProtectSystem')).toBe('strict');
      expect(one('Service', 'PrivateTmp')).toBe('yes');
      expect(one('Service', 'User')).toBe('avatargen');
      // ProtectSystem=strict makes everything read-only: DATA_DIR must be listed as writable.
      const envExample = readFileSync(join(DEPLOY, 'env.example'), 'utf8');
      const dataDir = /^DATA_DIR=(.+)$/m.exec(envExample)?.[1];
      expect(dataDir).toBe('/var/lib/avatargen');
      expect(one('Service', 'ReadWritePaths')?.split(/\s+/)).toContain(dataDir);
      expect(one('Service', 'StateDirectory')).toBe('avatargen');
      expect(one('Install', 'WantedBy')).toBe('multi-user.target');
    });
  }

  it('runs `avatargen web` on the instance port and `avatargen worker` with the installed command', () => {
    const web = parseUnit(read('avatargen-web@.service'));
    const worker = parseUnit(read('avatargen-worker.service'));
    const bin = JSON.parse(readFileSync(join(ROOT, 'packages/host-koa/package.json'), 'utf8')).bin as Record<string, string>;
    expect(Object.keys(bin)).toContain('avatargen');
    // The command is a committed file, not build output: npm install links it in a fresh clone
    // (npx avatargen works before any build), and it is executable.
    const command = join(ROOT, 'packages/host-koa', bin.avatargen as string);
    expect(existsSync(command), command).toBe(true);
    expect(statSync(command).mode & 0o111).not.toBe(0);
    expect(web.Service?.ExecStart?.[0]).toBe('/usr/bin/env APP_PORT=%i /opt/avatargen/node_modules/.bin/avatargen web');
    expect(worker.Service?.ExecStart?.[0]).toBe('/opt/avatargen/node_modules/.bin/avatargen worker');
    // Values from EnvironmentFile= override Environment=: the port must not come from there.
    expect(web.Service?.Environment?.join(' ') ?? '').not.toContain('APP_PORT');
  });

  it('passes systemd-analyze verify where it can run', (context) => {
    // Copies with the install folder moved to a temp one holding an executable `avatargen`, since
    // verify checks that ExecStart's program exists; everything else is the file as shipped.
    const dir = mkdtempSync(join(tmpdir(), 'avatargen-units-'));
    dirs.push(dir);
    const bin = join(dir, 'opt/node_modules/.bin/avatargen');
    mkdirSync(join(dir, 'opt/node_modules/.bin'), { recursive: true });
    writeFileSync(bin, '#!/bin/sh\nexit 0\n');
    chmodSync(bin, 0o755);
    const files = UNITS.map((name) => {
      const target = join(dir, name.replace('@.service', '@8085.service'));
      writeFileSync(target, read(name).split('/opt/avatargen').join(join(dir, 'opt')));
      return target;
    });
    const result = spawnSync('systemd-analyze', ['verify', ...files], { encoding: 'utf8' });
    const complaints = `${result.stdout}\n${result.stderr}`.split('\n').filter((line) => line.includes('avatargen'));
    if (complaints.some((line) => /System has not been booted with systemd|Failed to (connect|initialize)/.test(line))) {
      console.warn(`systemd-analyze verify cannot run here:\n${complaints.join('\n')}`);
      context.skip('systemd-analyze verify cannot run in this environment');
      return;
    }
    expect(complaints, 'systemd-analyze verify complained').toEqual([]);
    expect(result.status).toBe(0);
  });

  it('the verify check catches a misspelt directive', () => {
    const dir = mkdtempSync(join(tmpdir(), 'avatargen-units-'));
    dirs.push(dir);
    const target = join(dir, 'avatargen-broken.service');
    writeFileSync(
      target,
      read('avatargen-worker.service')
        .replace('PrivateTmp=yes', 'PrivateTemp=yes')
        .split('/opt/avatargen/node_modules/.bin/avatargen')
        .join('/bin/true'),
    );
    const result = spawnSync('systemd-analyze', ['verify', target], { encoding: 'utf8' });
    expect(`${result.stdout}${result.stderr}`).toContain("Unknown key 'PrivateTemp'");
  });
});
