/**
 * Bio languages offered to the user, code -> English name (as the old system offered them).
 * Codes are BCP 47 tags; providers receive both the code and the name.
 */
export const LANGUAGES: Readonly<Record<string, string>> = Object.freeze({
  af: 'Afrikaans',
  sq: 'Albanian',
  am: 'Amharic',
  ar: 'Arabic',
  hy: 'Armenian',
  az: 'Azerbaijani',
  eu: 'Basque',
  be: 'Belarusian',
  bn: 'Bengali',
  bs: 'Bosnian',
  bg: 'Bulgarian',
  my: 'Burmese',
  ca: 'Catalan',
  ceb: 'Cebuano',
  'zh-CN': 'Chinese (Simplified)',
  'zh-TW': 'Chinese (Traditional)',
  hr: 'Croatian',
  cs: 'Czech',
  da: 'Danish',
  nl: 'Dutch',
  en: 'English',
  'en-GB': 'English (UK)',
  eo: 'Esperanto',
  et: 'Estonian',
  fil: 'Filipino',
  fi: 'Finnish',
  fr: 'French',
  'fr-CA': 'French (Canada)',
  gl: 'Galician',
  ka: 'Georgian',
  de: 'German',
  el: 'Greek',
  gu: 'Gujarati',
  ht: 'Haitian Creole',
  ha: 'Hausa',
  he: 'Hebrew',
  hi: 'Hindi',
  hu: 'Hungarian',
  is: 'Icelandic',
  ig: 'Igbo',
  id: 'Indonesian',
  ga: 'Irish',
  it: 'Italian',
  ja: 'Japanese',
  jv: 'Javanese',
  kn: 'Kannada',
  kk: 'Kazakh',
  km: 'Khmer',
  rw: 'Kinyarwanda',
  ko: 'Korean',
  ku: 'Kurdish',
  ky: 'Kyrgyz',
  lo: 'Lao',
  la: 'Latin',
  lv: 'Latvian',
  lt: 'Lithuanian',
  lb: 'Luxembourgish',
  mk: 'Macedonian',
  mg: 'Malagasy',
  ms: 'Malay',
  ml: 'Malayalam',
  mt: 'Maltese',
  mi: 'Maori',
  mr: 'Marathi',
  mn: 'Mongolian',
  ne: 'Nepali',
  nb: 'Norwegian',
  ps: 'Pashto',
  fa: 'Persian',
  pl: 'Polish',
  pt: 'Portuguese',
  'pt-BR': 'Portuguese (Brazil)',
  pa: 'Punjabi',
  ro: 'Romanian',
  ru: 'Russian',
  sm: 'Samoan',
  gd: 'Scottish Gaelic',
  sr: 'Serbian',
  sn: 'Shona',
  sd: 'Sindhi',
  si: 'Sinhala',
  sk: 'Slovak',
  sl: 'Slovenian',
  so: 'Somali',
  es: 'Spanish',
  'es-MX': 'Spanish (Mexico)',
  su: 'Sundanese',
  sw: 'Swahili',
  sv: 'Swedish',
  tg: 'Tajik',
  ta: 'Tamil',
  tt: 'Tatar',
  te: 'Telugu',
  th: 'Thai',
  tr: 'Turkish',
  tk: 'Turkmen',
  uk: 'Ukrainian',
  ur: 'Urdu',
  ug: 'Uyghur',
  uz: 'Uzbek',
  vi: 'Vietnamese',
  cy: 'Welsh',
  xh: 'Xhosa',
  yi: 'Yiddish',
  yo: 'Yoruba',
  zu: 'Zulu',
});

export interface Language {
  code: string;
  name: string;
}

/**
 * Other names people type for a catalogue entry (lower case). The catalogue's own names and codes
 * are always accepted; these are only the common "Brazilian Portuguese" style of saying the same.
 */
const ALIASES: Readonly<Record<string, string>> = Object.freeze({
  'brazilian portuguese': 'pt-BR',
  'portuguese (portugal)': 'pt',
  'european portuguese': 'pt',
  'british english': 'en-GB',
  'english (uk)': 'en-GB',
  'english (us)': 'en',
  'american english': 'en',
  'canadian french': 'fr-CA',
  'mexican spanish': 'es-MX',
  'simplified chinese': 'zh-CN',
  'traditional chinese': 'zh-TW',
  chinese: 'zh-CN',
  mandarin: 'zh-CN',
  farsi: 'fa',
  tagalog: 'fil',
  'norwegian bokmål': 'nb',
  'norwegian bokmal': 'nb',
  gaelic: 'gd',
});

/** Lower case, single spaces, no surrounding space: how names and codes are compared. */
function fold(text: string): string {
  return text.normalize('NFC').trim().replace(/\s+/g, ' ').toLowerCase();
}

const BY_FOLDED: ReadonlyMap<string, string> = new Map([
  ...Object.keys(LANGUAGES).map((code) => [fold(code), code] as const),
  ...Object.entries(LANGUAGES).map(([code, name]) => [fold(name), code] as const),
  ...Object.entries(ALIASES),
  // "pt_BR" is how locales are often written
  ...Object.keys(LANGUAGES)
    .filter((code) => code.includes('-'))
    .map((code) => [fold(code.replace('-', '_')), code] as const),
]);

/**
 * The catalogue entry a person means by `query`: a code ("pt", "PT-br") or a name ("Portuguese",
 * "portuguese (brazil)", "Brazilian Portuguese"), case-insensitive. Undefined when none matches.
 */
export function findLanguage(query: string): Language | undefined {
  if (typeof query !== 'string' || query.length > 100) return undefined;
  const code = BY_FOLDED.get(fold(query));
  return code === undefined ? undefined : { code, name: LANGUAGES[code] as string };
}

/** Levenshtein distance (small strings only: names of languages). */
function distance(a: string, b: string): number {
  let previous = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const current = [i];
    for (let j = 1; j <= b.length; j++) {
      current[j] = Math.min(
        (previous[j] as number) + 1,
        (current[j - 1] as number) + 1,
        (previous[j - 1] as number) + (a[i - 1] === b[j - 1] ? 0 : 1),
      );
    }
    previous = current;
  }
  return previous[b.length] as number;
}

/**
 * Up to `n` catalogue entries close to `query`, closest first, for a "did you mean" message:
 * names or codes that start with it, then names that contain it, then names within a few typos
 * (edit distance at most a third of the length, and at least 2; 1 for a query of three letters or
 * fewer, which reads as a code). Empty when nothing is close.
 */
export function closeLanguages(query: string, n = 3): Language[] {
  const q = typeof query === 'string' ? fold(query).slice(0, 100) : '';
  if (!q || n <= 0) return [];
  // A typo or two in a name; in a code of two or three letters one is already a different code.
  const limit = q.length <= 3 ? 1 : Math.max(2, Math.floor(q.length / 3));
  const scored: Array<{ language: Language; score: number }> = [];
  for (const language of listLanguages()) {
    const name = fold(language.name);
    const code = fold(language.code);
    // the name without its "(Brazil)" part, so "portugese" is as close to both Portuguese entries
    const base = name.replace(/\s*\(.*\)$/, '');
    let score: number;
    if (name.startsWith(q) || code.startsWith(q)) score = 0;
    else if (name.includes(q)) score = 1;
    else {
      const d = Math.min(distance(q, name), distance(q, base), distance(q, code));
      if (d > limit) continue;
      score = 1 + d;
    }
    scored.push({ language, score });
  }
  return scored
    .sort((a, b) => a.score - b.score || a.language.name.localeCompare(b.language.name))
    .slice(0, n)
    .map((s) => s.language);
}

export function listLanguages(): Language[] {
  return Object.entries(LANGUAGES)
    .map(([code, name]) => ({ code, name }))
    .sort((a, b) => a.name.localeCompare(b.name));
}
