// Types only: importing faker's main entry loads all of its ~70 locales (about 46 MB); each
// locale is loaded on first use instead.
import type { allLocales, Faker } from '@faker-js/faker';

/** Core's bio language codes (BCP 47) -> faker locale. Languages without a faker locale use English. */
const FAKER_LOCALES: Record<string, keyof typeof allLocales> = {
  af: 'af_ZA',
  ar: 'ar',
  az: 'az',
  bn: 'bn_BD',
  cs: 'cs_CZ',
  cy: 'cy',
  da: 'da',
  de: 'de',
  'de-AT': 'de_AT',
  'de-CH': 'de_CH',
  el: 'el',
  en: 'en_US',
  'en-US': 'en_US',
  'en-GB': 'en_GB',
  'en-AU': 'en_AU',
  'en-CA': 'en_CA',
  'en-IE': 'en_IE',
  'en-IN': 'en_IN',
  'en-NG': 'en_NG',
  'en-ZA': 'en_ZA',
  eo: 'eo',
  es: 'es',
  'es-MX': 'es_MX',
  fa: 'fa',
  fi: 'fi',
  fr: 'fr',
  'fr-BE': 'fr_BE',
  'fr-CA': 'fr_CA',
  'fr-CH': 'fr_CH',
  ha: 'en_NG',
  he: 'he',
  hi: 'en_IN',
  hr: 'hr',
  hu: 'hu',
  hy: 'hy',
  id: 'id_ID',
  ig: 'en_NG',
  it: 'it',
  ja: 'ja',
  ka: 'ka_GE',
  ko: 'ko',
  ku: 'ku_kmr_latin',
  lv: 'lv',
  mk: 'mk',
  mn: 'mn_MN_cyrl',
  nb: 'nb_NO',
  ne: 'ne',
  nl: 'nl',
  pl: 'pl',
  pt: 'pt_PT',
  'pt-BR': 'pt_BR',
  'pt-PT': 'pt_PT',
  ro: 'ro',
  ru: 'ru',
  sk: 'sk',
  sl: 'sl_SI',
  sr: 'sr_RS_latin',
  sv: 'sv',
  ta: 'ta_IN',
  th: 'th',
  tr: 'tr',
  uk: 'uk',
  ur: 'ur',
  uz: 'uz_UZ_latin',
  vi: 'vi',
  xh: 'zu_ZA',
  yo: 'yo_NG',
  'zh-CN': 'zh_CN',
  'zh-TW': 'zh_TW',
  zh: 'zh_CN',
  zu: 'zu_ZA',
};

export type FakerLocaleName = keyof typeof allLocales;

/** The faker locale for a language code: exact tag, then the primary language, then English (en_US). */
export function fakerLocaleFor(code: string): FakerLocaleName {
  const exact = FAKER_LOCALES[code];
  if (exact) return exact;
  const lower = Object.keys(FAKER_LOCALES).find((k) => k.toLowerCase() === code.toLowerCase());
  if (lower) return FAKER_LOCALES[lower] as FakerLocaleName;
  const primary = code.split(/[-_]/)[0]?.toLowerCase() ?? '';
  return FAKER_LOCALES[primary] ?? 'en_US';
}

const fakers = new Map<FakerLocaleName, Promise<Faker>>();

/**
 * The faker of a locale, loaded on first use: the locale's data, then its parent's (de_AT -> de),
 * then English, then base, as faker chains them. Persona generation reseeds it for every persona.
 */
export function fakerFor(locale: FakerLocaleName): Promise<Faker> {
  let faker = fakers.get(locale);
  if (!faker) {
    faker = import(`@faker-js/faker/locale/${locale}`).then((module: { faker: Faker }) => module.faker);
    fakers.set(locale, faker);
  }
  return faker;
}

export type SexedNames = { f: readonly string[]; m: readonly string[] };

/**
 * The sexed name lists (first_name or last_name) faker uses for a locale, following its fallback
 * chain like faker does; undefined when the list it falls to is not sexed.
 */
export async function sexedNames(locale: FakerLocaleName, entry: 'first_name' | 'last_name'): Promise<SexedNames | undefined> {
  const names = (await fakerFor(locale)).rawDefinitions.person?.[entry];
  if (!names || Array.isArray(names)) return undefined;
  const sexed = names as { female?: string[]; male?: string[] };
  return sexed.female && sexed.male ? { f: sexed.female, m: sexed.male } : undefined;
}

/** The sexed first-name lists of a locale, when faker has them (used to check gender consistency). */
export function sexedFirstNames(locale: FakerLocaleName): Promise<SexedNames | undefined> {
  return sexedNames(locale, 'first_name');
}

/**
 * What a locale brings of its own rather than by falling back to English: its states/regions (an
 * English locale without them shares the US ones; others get none rather than US states) and
 * whether faker has company names for it. Merged definitions share English's arrays by
 * reference, which tells the two apart.
 */
export async function localeData(locale: FakerLocaleName): Promise<{ states: string[]; hasCompanies: boolean }> {
  const [own, english] = await Promise.all([fakerFor(locale), fakerFor('en')]);
  const enStates = english.rawDefinitions.location?.state;
  const states = own.rawDefinitions.location?.state;
  const usable = states && (states !== enStates || locale.startsWith('en')) ? states : undefined;
  const enPattern = english.rawDefinitions.company?.name_pattern;
  const pattern = own.rawDefinitions.company?.name_pattern;
  return {
    states: Array.isArray(usable) ? (usable as string[]) : [],
    hasCompanies: Boolean(pattern) && (locale === 'en' || pattern !== enPattern),
  };
}

export type Weighted = ReadonlyArray<readonly [string, number]>;

const EUROPE: Weighted = [
  ['White', 86],
  ['Mixed', 6],
  ['North African', 3],
  ['Black', 3],
  ['South Asian', 2],
];

/** Ethnicities plausible for people with the locale's names, with rough weights. */
const ETHNICITIES: Partial<Record<FakerLocaleName, Weighted>> = {
  en_US: [
    ['White', 58],
    ['Hispanic', 19],
    ['Black', 12],
    ['Asian', 6],
    ['Mixed', 5],
  ],
  en_GB: [
    ['White British', 80],
    ['South Asian', 8],
    ['Black British', 4],
    ['Mixed', 4],
    ['East Asian', 2],
    ['White (other)', 2],
  ],
  en_AU: [
    ['White', 76],
    ['East Asian', 10],
    ['South Asian', 6],
    ['Mixed', 5],
    ['Aboriginal Australian', 3],
  ],
  en_CA: [
    ['White', 70],
    ['South Asian', 8],
    ['East Asian', 8],
    ['Black', 5],
    ['Indigenous', 5],
    ['Mixed', 4],
  ],
  de: [
    ['White', 88],
    ['Turkish', 5],
    ['Mixed', 4],
    ['Middle Eastern', 3],
  ],
  ja: [
    ['East Asian (Japanese)', 97],
    ['Mixed', 3],
  ],
  ko: [['East Asian (Korean)', 1]],
  zh_CN: [
    ['East Asian (Han Chinese)', 92],
    ['East Asian (Zhuang)', 3],
    ['Hui', 3],
    ['Uyghur', 2],
  ],
  zh_TW: [['East Asian (Taiwanese)', 1]],
  vi: [['Southeast Asian (Vietnamese)', 1]],
  th: [['Southeast Asian (Thai)', 1]],
  id_ID: [['Southeast Asian (Indonesian)', 1]],
  pt_BR: [
    ['Mixed (Pardo)', 45],
    ['White', 43],
    ['Black', 10],
    ['East Asian', 1],
    ['Indigenous', 1],
  ],
  es_MX: [
    ['Mestizo', 70],
    ['Indigenous', 18],
    ['White', 10],
    ['Black', 2],
  ],
  ar: [
    ['Arab', 88],
    ['Amazigh (Berber)', 6],
    ['Kurdish', 6],
  ],
  fa: [
    ['Persian', 80],
    ['Azerbaijani', 12],
    ['Kurdish', 8],
  ],
  tr: [
    ['Turkish', 85],
    ['Kurdish', 15],
  ],
  he: [
    ['Jewish Israeli', 78],
    ['Arab', 20],
    ['Mixed', 2],
  ],
  en_IN: [['South Asian (Indian)', 1]],
  ta_IN: [['South Asian (Tamil)', 1]],
  bn_BD: [['South Asian (Bengali)', 1]],
  ne: [['South Asian (Nepali)', 1]],
  ur: [['South Asian (Pakistani)', 1]],
  en_NG: [['Black African (Nigerian)', 1]],
  yo_NG: [['Black African (Yoruba)', 1]],
  en_GH: [['Black African (Ghanaian)', 1]],
  af_ZA: [
    ['White (Afrikaner)', 60],
    ['Coloured', 30],
    ['Black African', 10],
  ],
  zu_ZA: [['Black African (Zulu)', 1]],
  en_ZA: [
    ['Black African', 78],
    ['Coloured', 9],
    ['White', 8],
    ['Indian', 3],
    ['Mixed', 2],
  ],
  hy: [['Armenian', 1]],
  ka_GE: [['Georgian', 1]],
  az: [['Azerbaijani', 1]],
  uz_UZ_latin: [['Central Asian (Uzbek)', 1]],
  mn_MN_cyrl: [['Mongolian', 1]],
  ku_kmr_latin: [['Kurdish', 1]],
  ku_ckb: [['Kurdish', 1]],
  dv: [['South Asian (Maldivian)', 1]],
};

export function ethnicityWeights(locale: FakerLocaleName): Weighted {
  return ETHNICITIES[locale] ?? (locale.startsWith('en') ? (ETHNICITIES.en_US as Weighted) : EUROPE);
}

export function pickWeighted(weights: Weighted, roll: number): string {
  const total = weights.reduce((sum, [, w]) => sum + w, 0);
  let threshold = roll * total;
  for (const [value, weight] of weights) {
    threshold -= weight;
    if (threshold < 0) return value;
  }
  return weights[weights.length - 1]?.[0] ?? 'Mixed';
}
