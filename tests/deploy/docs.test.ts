import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { GENERATED } from '../../scripts/generate-docs.js';
import { ROOT } from './support.js';

const MARKDOWN = [
  ...readdirSync(join(ROOT, 'docs'))
    .filter((f) => f.endsWith('.md'))
    .map((f) => `docs/${f}`),
  'deploy/README.md',
  ...readdirSync(join(ROOT, 'examples')).map((d) => `examples/${d}/README.md`),
];

describe('generated docs', () => {
  for (const { path, render } of GENERATED) {
    it(`${path} matches the code (run scripts/generate-docs.ts when this fails)`, () => {
      expect(readFileSync(join(ROOT, path), 'utf8')).toBe(render());
    });
  }
});

describe('hand-written docs', () => {
  it('quote example code verbatim, so the code shown compiles and is tested', () => {
    let checked = 0;
    for (const doc of MARKDOWN) {
      const text = readFileSync(join(ROOT, doc), 'utf8');
      for (const [, source, code] of text.matchAll(/<!-- excerpt: (\S+) -->\n```ts\n([\s\S]*?)```/g)) {
        expect(readFileSync(join(ROOT, source as string), 'utf8'), `${doc} quotes ${source}`).toContain(code);
        checked++;
      }
    }
    expect(checked).toBeGreaterThanOrEqual(3);
  });

  it('link only to files that exist', () => {
    for (const doc of MARKDOWN) {
      expect(existsSync(join(ROOT, doc)), doc).toBe(true);
      const text = readFileSync(join(ROOT, doc), 'utf8');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^[a-z]+:/i.test(target as string) || (target as string).startsWith('#')) continue;
        const file = resolve(dirname(join(ROOT, doc)), (target as string).split('#')[0] as string);
        expect(existsSync(file), `${doc} links to ${target}`).toBe(true);
      }
    }
  });
});
