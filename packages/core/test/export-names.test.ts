import { createHash } from 'node:crypto';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { parse } from 'csv-parse/sync';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import yauzl from 'yauzl';
import { entryName } from '../src/exports/names.js';
import { FOLDER_NAME_MAX, folderName, neutralizeCell, normalizePersona, type PersonaData } from '../src/index.js';
import { samplePersona } from '../src/testing.js';
import { type Harness, REQUEST, startHarness, waitForStatus } from './support/harness.js';
import { readAll, unzip } from './support/zip.js';

/** What no entry name may hold: controls, format characters, lone surrogates, U+FFFD. */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Cs}\uFFFD]/u;
/** A segment Windows opens as a device (checked as Windows reads it: trailing dots and spaces go). */
const isReserved = (segment: string) => /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(\.|$)/i.test(segment.replace(/[. ]+$/, ''));
const graphemes = (text: string) => [...new Intl.Segmenter(undefined, { granularity: 'grapheme' }).segment(text)].map((s) => s.segment);

describe('folder and entry names', () => {
  it('drops controls, format characters and broken surrogates', () => {
    const taken = new Set<string>();
    expect(folderName('\u0085 CON', taken)).toBe('CON_');
    expect(folderName('Eve\u202Egnp.exe \u2066Smith\u2069', taken)).toBe('Evegnp.exe_Smith');
    expect(folderName('\u200BZ\u200Ce\u200Dd\u200E\u200F\u2060\uFEFF\u00AD\u061C', taken)).toBe('Zed');
    expect(folderName('Zoë Ångström\u0007\u009b\u0000', taken)).toBe('Zoë_Ångström');
    expect(folderName('x\ud83d y\udc00 z\uFFFD', taken)).toBe('x_y_z');
    // tab and line breaks separate words, like spaces
    expect(folderName('Ann\tMarie\nLee\u0085Roe\u2028Poe', taken)).toBe('Ann_Marie_Lee_Roe_Poe');
    expect(folderName('\u200B\u202E', taken)).toBe('persona');
  });

  it('avoids Windows device names, with or without an extension, in any case', () => {
    const taken = new Set<string>();
    const names = ['CON', 'nul', 'Aux.txt', 'COM1', 'LPT9.x', 'Com1.tar.gz', 'prn.', 'AUX ...', 'com0', 'LPT¹', 'nul.tar.gz.'];
    const folders = names.map((n) => folderName(n, taken));
    expect(folders).toEqual([
      'CON_',
      'nul_',
      'Aux_.txt',
      'COM1_',
      'LPT9_.x',
      'Com1_.tar.gz',
      'prn_',
      'AUX_',
      'com0_',
      'LPT¹_',
      'nul_.tar.gz',
    ]);
    for (const folder of folders) expect(isReserved(folder), folder).toBe(false);
    // not device names: left as they are
    expect(['CONSOLE', 'COM10', 'auxiliary.txt', 'nullable', 'LPT'].map((n) => folderName(n, new Set()))).toEqual([
      'CONSOLE',
      'COM10',
      'auxiliary.txt',
      'nullable',
      'LPT',
    ]);
    // a duplicate's suffix never makes one either
    const again = new Set<string>();
    expect(['CON', 'con', 'CON.'].map((n) => folderName(n, again))).toEqual(['CON_', 'con__2', 'CON__3']);
  });

  it('cuts on grapheme boundaries, never inside a surrogate pair or a combining sequence', () => {
    const cases: Array<[string, string]> = [
      [`${'a'.repeat(79)}😀 x`, 'a'.repeat(79)],
      [`${'a'.repeat(78)}😀 x`, `${'a'.repeat(78)}😀`],
      [`${'b'.repeat(78)}🇩🇪 x`, 'b'.repeat(78)],
      [`${'b'.repeat(77)}🇩🇪`, 'b'.repeat(77)],
      [`${'b'.repeat(76)}🇩🇪 x`, `${'b'.repeat(76)}🇩🇪`],
      [`${'c'.repeat(79)}q\u0301\u0323 x`, 'c'.repeat(79)],
      [`${'c'.repeat(77)}q\u0301\u0323 x`, `${'c'.repeat(77)}q\u0323\u0301`], // NFC orders the marks
      [`${'d'.repeat(75)}👍🏽👍🏽`, `${'d'.repeat(75)}👍🏽`],
      // ZWJ is a format character: the family falls apart into its people, each kept whole
      [`${'e'.repeat(76)}👨\u200D👩\u200D👧`, `${'e'.repeat(76)}👨👩`],
      [`${'f'.repeat(77)}❤️‍🔥`, `${'f'.repeat(77)}❤️`],
      [`${'g'.repeat(79)}.x`, 'g'.repeat(79)], // the cut ends on a dot: dropped too
    ];
    for (const [name, expected] of cases) {
      const folder = folderName(name, new Set());
      expect(folder, JSON.stringify(name)).toBe(expected);
      expect(folder.length).toBeLessThanOrEqual(FOLDER_NAME_MAX);
      expect(folder).not.toMatch(INVISIBLE);
      // every grapheme of the folder is a whole grapheme of the cleaned name
      expect(graphemes(folder).every((g) => graphemes(name.normalize('NFC').replace(/\u200D/g, '')).includes(g))).toBe(true);
    }
    // a cluster longer than the limit on its own is left out whole
    expect(folderName(`Z${'\u0335'.repeat(90)}`, new Set())).toBe('persona');
  });

  it('keeps folder names unique, case-insensitively, after cleaning and cutting', () => {
    const taken = new Set<string>();
    const folders = [
      'Maria Garcia',
      'maria garcia',
      'Maria\u200B Garcia',
      'MARIA GARCIA',
      `${'a'.repeat(79)}😀`,
      `${'a'.repeat(79)}🇩🇪`,
      `${'A'.repeat(79)}x\u0301`,
    ].map((n) => folderName(n, taken));
    expect(folders).toEqual([
      'Maria_Garcia',
      'maria_garcia_2',
      'Maria_Garcia_3',
      'MARIA_GARCIA_4',
      'a'.repeat(79),
      `${'a'.repeat(79)}_2`,
      `${'A'.repeat(79)}_3`,
    ]);
    expect(new Set(folders.map((f) => f.toLowerCase())).size).toBe(folders.length);
  });

  it('gives every path one entry name, which leaves folder names as they are', () => {
    const taken = new Set<string>();
    for (const name of ['\u0085 CON', `${'a'.repeat(79)}😀`, 'Zoë Ångström', 'x\ud83d', 'Maria Garcia', 'maria garcia', '- Com1.tar.gz']) {
      const folder = folderName(name, taken);
      const path = `profiles/${folder}/images/01.png`;
      expect(entryName(path)).toBe(path);
      expect(entryName(entryName(path))).toBe(path);
    }
    expect(entryName('profiles/x\ud83d/aux.txt/\u202Ed.json')).toBe('profiles/x/aux_.txt/d.json');
    expect(entryName('/../profiles//./a\\b/')).toBe('profiles/a-b');
  });
});

describe('persona name normalisation', () => {
  const persona = (over: Partial<Record<keyof PersonaData, unknown>>) => normalizePersona({ ...samplePersona(), ...over });

  it('drops control and format characters from names and one-line fields', () => {
    const result = persona({
      firstName: '\u200BZo\u0308e\u202E\u0000',
      lastName: 'Ber\u0085nal\u009b\u2066\u2069\uFEFF',
      jobTitle: 'Senior\nNurse\u200D',
      currentCity: '\u061CLisbon\u00AD',
    });
    expect(result.ok).toBe(true);
    if (!result.ok) return;
    expect(result.persona.firstName).toBe('Zöe'); // NFC once the zero-width space is gone
    expect(result.persona.lastName).toBe('Ber nal'); // NEL is a line break: a space
    expect(result.persona.jobTitle).toBe('Senior Nurse');
    expect(result.persona.currentCity).toBe('Lisbon');
    for (const value of [result.persona.firstName, result.persona.lastName, result.persona.jobTitle, result.persona.currentCity]) {
      expect(value).not.toMatch(/[\p{Cc}\p{Cf}]/u);
    }
  });

  it('refuses a name that is empty once cleaned, as it refuses an empty one', () => {
    expect(persona({ firstName: '\u0085' })).toEqual({ ok: false, reason: 'firstName is empty' });
    expect(persona({ lastName: '\u200B\u202E\u2066\uFEFF ' })).toEqual({ ok: false, reason: 'lastName is empty' });
    expect(persona({ firstName: '\u0000\u0007\u009f' })).toEqual({ ok: false, reason: 'firstName is empty' });
    // an empty one-line field that is not a name stays allowed, as before
    const city = persona({ currentCity: '\u200B' });
    expect(city.ok && city.persona.currentCity).toBe('');
  });

  it('keeps line breaks and emoji joiners in bios and about, and still drops NUL there', () => {
    const result = persona({
      about: 'line one\nline two 👩🏽\u200D💻\u0000',
      bios: { ...samplePersona().bios, x: 'a\tb 🏳️\u200D🌈' },
    });
    expect(result.ok && result.persona.about).toBe('line one\nline two 👩🏽\u200D💻');
    expect(result.ok && result.persona.bios.x).toBe('a\tb 🏳️\u200D🌈');
  });
});

describe('CSV formula cells behind invisible or fullwidth characters', () => {
  it('neutralises a formula whatever hides its first character', () => {
    const live = [
      '＝1+1',
      '＋1',
      '－1',
      '＠SUM(A1)',
      ' =1+1',
      '\u200B=1+1',
      '\u202E=1+1',
      '\u2066\uFEFF+1',
      '\u00A0\u3000-1',
      '\u200D\u2060@x',
      '\n=1',
      '\u0085=1',
      '\u200B＝HYPERLINK("http://evil")',
      '\tx',
      '\rx',
    ];
    for (const cell of live) expect(neutralizeCell(cell), JSON.stringify(cell)).toBe(`'${cell}`);
    const plain = ['ok', 'a=1', 'x＝1', '\u200Bok', ' 42', '1-2', "'quoted", 'Zoë', '＄5'];
    for (const cell of plain) expect(neutralizeCell(cell), JSON.stringify(cell)).toBe(cell);
  });
});

/** Every entry's raw name bytes, its UTF-8 flag, and its name as yauzl decodes it. */
function entryNames(buffer: Buffer): Promise<Array<{ raw: Buffer; utf8: boolean; name: string }>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(buffer, { lazyEntries: true }, (error, zip) => {
      if (error || !zip) return reject(error);
      const names: Array<{ raw: Buffer; utf8: boolean; name: string }> = [];
      zip.on('entry', (entry: yauzl.Entry) => {
        names.push({ raw: Buffer.from(entry.fileNameRaw), utf8: (entry.generalPurposeBitFlag & 0x800) !== 0, name: entry.fileName });
        zip.readEntry();
      });
      zip.on('end', () => resolve(names));
      zip.on('error', reject);
      zip.readEntry();
    });
  });
}

describe('a ZIP export of hostile names', () => {
  let h: Harness;
  let taskId: string;
  const strict = new TextDecoder('utf-8', { fatal: true });

  // Names the pipeline keeps (after normalizePersona), batch by batch: device names behind a
  // first name that cleaning removes, emoji across the 80-unit cut, duplicates, fullwidth formulas.
  const generated: Array<[string, string, Partial<PersonaData>?]> = [
    ['-', 'CON'],
    ['.', 'nul'],
    ['_', 'Aux.txt'],
    ['-', 'COM1'],
    ['-', 'LPT9.x'],
    ['-', 'Com1.tar.gz'],
    [`${'a'.repeat(79)}😀`, 'Emoji'],
    [`${'b'.repeat(78)}🇩🇪`, 'Flag'],
    [`${'c'.repeat(76)}👨\u200D👩\u200D👧`, 'Family'],
    [`${'d'.repeat(79)}q\u0301\u0323`, 'Accent'],
    ['Eve\u202Egnp.exe', 'Smith'],
    ['\u200BZed\u200D', '\uFEFFNull\u2060'],
    ['Maria', 'Garcia'],
    // The pipeline refuses a second Maria Garcia (issue 19); one from before is written below.
    ['Placeholder', 'Thirteen'],
    ['＋Plus', '－Minus', { jobTitle: '＠admin', currentCity: '\u200B=1+1' }],
    [`${'a'.repeat(79)}🇩🇪`, 'Emoji'],
    ['Zoë', 'Ångström'],
    ['CON', '.'],
    ['Ünïcödé', 'Nämé'],
    ['Plain', 'Person'],
  ];
  // Rows as an older version stored them (persona validation kept these), written straight into
  // the database: what the export must make safe on its own.
  const stored: Array<[string, string, Record<string, string>?]> = [
    ['\u0085', 'CON'],
    ['\u0085', 'NUL'],
    ['Eve\u202Egnp.exe', 'Smith\u2066x\u2069'],
    ['\u200B\u200C\u200D\u200E\u200F', '\u2060\uFEFF aux.txt'],
    [`${'e'.repeat(76)}👨\u200D👩\u200D👧\u200D👦`, 'Family'],
    [`${'f'.repeat(79)}\ud83d`, 'Surrogate'], // stored as U+FFFD
    ['Zoë', 'Ångström\u0007\u009b'],
    ['\u061C', 'LPT1'],
    [`${'h'.repeat(79)}🏴\u{E0067}\u{E0062}\u{E0073}\u{E0063}\u{E0074}\u{E007F}`, 'Scot'],
    ['\u200B=HYPERLINK("http://evil")', '＝1+1', { about: '\u202E+cmd|calc', current_city: '\u3000@SUM(1)' }],
  ];

  beforeAll(async () => {
    h = await startHarness({
      fakes: {
        shapeBatch: (seed, personas) => {
          const batch = Number(seed.split(':').pop());
          return personas.map((p, i) => {
            const [firstName, lastName, extra] = generated[batch * 10 + i] ?? [p.firstName, p.lastName];
            return { ...p, firstName, lastName, ...extra };
          });
        },
      },
    });
    const task = await h.gen.tasks.submit({ ...REQUEST, count: 30, imagesPerPersona: 4 });
    taskId = task.id;
    await waitForStatus(h.gen, taskId, ['completed'], 60_000);
    // The last ten personas get the stored names.
    const client = new pg.Client({ connectionString: h.db.url });
    await client.connect();
    try {
      const { rows } = await client.query<{ id: number }>(
        'select id from personas where task_id = $1 order by batch_no, batch_index offset 20',
        [taskId],
      );
      expect(rows).toHaveLength(10);
      await client.query(
        `update personas set first_name = 'maria', last_name = 'GARCIA' where task_id = $1 and batch_no = 1 and batch_index = 3`,
        [taskId],
      );
      for (const [i, row] of rows.entries()) {
        const [first, last, extra = {}] = stored[i] as [string, string, Record<string, string>?];
        const columns = Object.keys(extra)
          .map((column, n) => `, ${column} = $${n + 4}`)
          .join('');
        await client.query(`update personas set first_name = $2, last_name = $3${columns} where id = $1`, [
          row.id,
          first,
          last,
          ...Object.values(extra),
        ]);
      }
    } finally {
      await client.end();
    }
  }, 90_000);
  afterAll(() => h?.close());

  it('stores the generated names cleaned', async () => {
    const names = [];
    for await (const p of h.gen.personas.all(taskId)) names.push([p.firstName, p.lastName]);
    expect(names).toHaveLength(30);
    expect(names[10]).toEqual(['Evegnp.exe', 'Smith']);
    expect(names[11]).toEqual(['Zed', 'Null']);
    expect(names[8]?.[0]).toBe(`${'c'.repeat(76)}👨👩👧`);
    for (const [first, last] of names.slice(0, 20)) expect(`${first}${last}`).not.toMatch(/[\p{Cc}\p{Cf}]/u);
  });

  it('writes safe, unique entry names, and the manifest lists exactly them', async () => {
    // One image of the flag persona is gone: the manifest lists it as missing, under the same name.
    const flag = (await h.gen.personas.list(taskId, { perPage: 10, page: 1 })).personas[7];
    rmSync(join(h.storageRoot, flag?.images[1]?.key as string));
    const archive = await readAll(await h.gen.exports.zip(taskId));
    const entries = await entryNames(archive);
    const files = await unzip(archive);
    expect(files.size).toBe(entries.length);

    for (const { raw, utf8, name } of entries) {
      // valid UTF-8, flagged as such when not ASCII, and the name yauzl reads from it
      const decoded = strict.decode(raw);
      expect(decoded).toBe(name);
      expect(utf8 || /^[\x20-\x7e]*$/.test(name), name).toBe(true);
      expect(name, JSON.stringify(name)).not.toMatch(INVISIBLE);
      for (const segment of name.split('/')) {
        expect(isReserved(segment), name).toBe(false);
        expect(segment).not.toMatch(/^$|^\.|[. ]$|[\\:*?"<>|]/);
      }
    }

    const manifest = JSON.parse((files.get('manifest.json') as Buffer).toString('utf8')) as {
      files: Array<{ path: string; size: number; sha256: string }>;
      missing: string[];
    };
    const raws = new Set(entries.map((e) => e.raw.toString('hex')));
    for (const { path, size, sha256 } of manifest.files) {
      expect(path, JSON.stringify(path)).not.toMatch(INVISIBLE); // a lone surrogate would encode as U+FFFD below
      expect(raws.has(Buffer.from(path, 'utf8').toString('hex')), JSON.stringify(path)).toBe(true);
      const data = files.get(path);
      expect(data, path).toBeDefined();
      expect(data?.length).toBe(size);
      expect(
        createHash('sha256')
          .update(data as Buffer)
          .digest('hex'),
      ).toBe(sha256);
    }
    expect(manifest.files.map((f) => f.path).sort()).toEqual([...files.keys()].filter((p) => p !== 'manifest.json').sort());
    expect(manifest.missing).toEqual([`profiles/${'b'.repeat(78)}/images/02.png`]);
    expect(files.has(manifest.missing[0] as string)).toBe(false);
    expect(files.has(`profiles/${'b'.repeat(78)}/images/01.png`)).toBe(true);

    // the dataset card (DATASET.md, dataset.json) sits at the top, beside the profiles
    const folders = [
      ...new Set(manifest.files.filter((f) => f.path.startsWith('profiles/')).map((f) => f.path.split('/').slice(0, 2).join('/'))),
    ].map((f) => f.slice('profiles/'.length));
    expect(folders).toHaveLength(30);
    expect(new Set(folders.map((f) => f.toLowerCase())).size).toBe(30);
    expect(folders).toEqual([
      'CON_',
      'nul_',
      'Aux_.txt',
      'COM1_',
      'LPT9_.x',
      'Com1_.tar.gz',
      'a'.repeat(79),
      'b'.repeat(78),
      `${'c'.repeat(76)}👨👩`,
      'd'.repeat(79),
      'Evegnp.exe_Smith',
      'Zed_Null',
      'Maria_Garcia',
      'maria_GARCIA_2',
      '＋Plus_－Minus',
      `${'a'.repeat(79)}_2`,
      'Zoë_Ångström',
      'CON__2',
      'Ünïcödé_Nämé',
      'Plain_Person',
      // stored rows
      'CON__3',
      'NUL__2',
      'Evegnp.exe_Smithx',
      'aux_.txt_2', // Aux_.txt above
      `${'e'.repeat(76)}👨👩`,
      `${'f'.repeat(79)}_`, // U+FFFD dropped, the space after it kept
      'Zoë_Ångström_2',
      'LPT1_',
      'h'.repeat(79), // the flag's tag characters dropped, the black flag past the cut
      '=HYPERLINK(-http---evil-)_＝1+1',
    ]);
  });

  it('neutralises formula cells behind invisible or fullwidth characters in the CSV and details.csv', async () => {
    const rows: Record<string, string>[] = parse((await readAll(await h.gen.exports.csv(taskId))).toString('utf8'), {
      columns: true,
      bom: true,
    });
    expect(rows).toHaveLength(30);
    const plus = rows[14];
    expect([plus?.first_name, plus?.last_name, plus?.job_title, plus?.current_city]).toEqual(["'＋Plus", "'－Minus", "'＠admin", "'=1+1"]);
    const evil = rows[29];
    expect([evil?.first_name, evil?.last_name, evil?.about, evil?.current_city]).toEqual([
      `'\u200B=HYPERLINK("http://evil")`,
      "'＝1+1",
      "'\u202E+cmd|calc",
      "'\u3000@SUM(1)",
    ]);
    for (const row of rows) {
      for (const cell of Object.values(row)) expect(cell).not.toMatch(/^[\s\p{Cc}\p{Cf}]*[=+\-@＝＋－＠]/u);
    }
    const files = await unzip(await readAll(await h.gen.exports.zip(taskId)));
    const details: Record<string, string>[] = parse(
      (files.get('profiles/=HYPERLINK(-http---evil-)_＝1+1/details.csv') as Buffer).toString('utf8'),
      {
        columns: true,
        bom: true,
      },
    );
    expect(details[0]?.first_name).toBe(`'\u200B=HYPERLINK("http://evil")`);
  });
});
