import { describe, expect, it } from 'vitest';
import { closeLanguages, findLanguage, LANGUAGES } from '../src/index.js';

describe('findLanguage: a name or a code, any case', () => {
  it.each([
    ['pt', 'pt'],
    ['PT', 'pt'],
    ['pt-BR', 'pt-BR'],
    ['pt-br', 'pt-BR'],
    ['pt_BR', 'pt-BR'],
    ['Portuguese', 'pt'],
    ['portuguese', 'pt'],
    ['  PORTUGUESE  ', 'pt'],
    ['Portuguese (Brazil)', 'pt-BR'],
    ['Brazilian Portuguese', 'pt-BR'],
    ['brazilian  portuguese', 'pt-BR'],
    ['English (UK)', 'en-GB'],
    ['British English', 'en-GB'],
    ['Chinese (Simplified)', 'zh-CN'],
    ['Simplified Chinese', 'zh-CN'],
    ['Mexican Spanish', 'es-MX'],
    ['Farsi', 'fa'],
    ['Tagalog', 'fil'],
    ['Haitian Creole', 'ht'],
    ['ceb', 'ceb'],
  ])('%j is %s', (query, code) => {
    expect(findLanguage(query)).toEqual({ code, name: LANGUAGES[code] });
  });

  it.each([[''], ['  '], ['xx-nope'], ['Portugese'], ['toString'], ['__proto__'], ['constructor'], ['pt-'], ['x'.repeat(500)]])(
    '%j is no language',
    (query) => {
      expect(findLanguage(query)).toBeUndefined();
    },
  );

  it('finds every catalogue entry by its code and by its name', () => {
    for (const [code, name] of Object.entries(LANGUAGES)) {
      expect(findLanguage(code)?.code).toBe(code);
      expect(findLanguage(name)?.code).toBe(code);
      expect(findLanguage(name.toUpperCase())?.code).toBe(code);
    }
  });

  it('refuses what is not text', () => {
    expect(findLanguage(42 as unknown as string)).toBeUndefined();
    expect(findLanguage(undefined as unknown as string)).toBeUndefined();
  });
});

describe('closeLanguages: near misses for an error message', () => {
  it.each<[string, string[]]>([
    ['Portugese', ['Portuguese', 'Portuguese (Brazil)']],
    ['portugues', ['Portuguese', 'Portuguese (Brazil)']],
    ['Portu', ['Portuguese', 'Portuguese (Brazil)']],
    ['Spansh', ['Spanish', 'Spanish (Mexico)']],
    ['Germna', ['German']],
    ['Japanes', ['Japanese']],
    ['Fren', ['French', 'French (Canada)']],
    ['gaelic', ['Scottish Gaelic']],
  ])('%j suggests %j first', (query, names) => {
    const found = closeLanguages(query).map((l) => l.name);
    expect(found.slice(0, names.length)).toEqual(names);
  });

  it.each([[''], ['   '], ['qqqqqqqqqq'], ['Klingon warrior poetry']])('%j suggests nothing', (query) => {
    expect(closeLanguages(query)).toEqual([]);
  });

  it('returns at most n, closest first', () => {
    expect(closeLanguages('S')).toHaveLength(3);
    expect(closeLanguages('S', 5)).toHaveLength(5);
    expect(closeLanguages('Spanish', 1)).toEqual([{ code: 'es', name: 'Spanish' }]);
    expect(closeLanguages('Spanish', 0)).toEqual([]);
  });
});
