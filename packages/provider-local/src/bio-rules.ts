import type { Gender } from '@avatargen/core';
import type { Phrasebook } from './phrasebook.js';
import { charCount, clip, fitWithin, tidy } from './text.js';

/**
 * What the offline provider understands of a platform's bio instruction (the site's settings).
 * There is no model to follow free text, so a few plain requests are read with patterns and
 * applied; everything else in the instruction is ignored.
 */
export interface BioRules {
  /** "at most 100 characters", "max 80 chars", "under 60 characters", "höchstens 100 Zeichen", "até 100 caracteres". */
  maxChars?: number;
  /** "max 12 words", "at most 10 words", "höchstens 10 Wörter", "até 10 palavras". */
  maxWords?: number;
  /** "no emoji" / "without emojis" → none; "use emojis" / "with emoji" / "add emoji" → at least one; else as written. */
  emoji: 'keep' | 'none' | 'always';
  /** "no hashtags" → none; "use hashtags" / "with hashtags" / "add hashtags" → two from the hobbies; else none added. */
  hashtags: 'keep' | 'none' | 'always';
  /** "short", "brief", "concise" → at most 60 % of the platform limit; "very short" → 40 %. ("short lines" does not count.) */
  length: 'normal' | 'short' | 'veryShort';
  /** "sunny", "cheerful", "upbeat", "positive", "happy", "optimistic" (and fröhlich, positiv, alegre) → a cheerful line is added. */
  cheerful: boolean;
  /** "professional", "formal", "serious" (and sachlich, profissional) → no emoji unless asked for. */
  formal: boolean;
  /** "lowercase", "all lower case" → written in lower case. */
  lowercase: boolean;
}

const NUMBER_BEFORE = String.raw`(?:at most|max(?:imum)?\.?|up to|no more than|not more than|within|höchstens|maximal|bis zu|até|no máximo|máximo)`;
const STRICTLY_BELOW = '(?:under|less than|fewer than|below|unter|weniger als|menos de)';

function readLimit(t: string, unit: string): number | undefined {
  const atMost =
    new RegExp(`${NUMBER_BEFORE}\\s*(\\d{1,4})\\s*${unit}`).exec(t) ??
    new RegExp(`(\\d{1,4})\\s*${unit}\\s*(?:max(?:imum)?|or less|or fewer|at most|limit|höchstens|no máximo)`).exec(t);
  if (atMost) return Number(atMost[1]);
  const below = new RegExp(`${STRICTLY_BELOW}\\s*(\\d{1,4})\\s*${unit}`).exec(t);
  return below ? Math.max(1, Number(below[1]) - 1) : undefined;
}

export function readBioInstructions(instruction: string | undefined): BioRules {
  const t = (instruction ?? '').toLowerCase();
  const noEmoji = /\b(?:no|without|zero|avoid|don'?t use|do not use|keine|ohne|sem|sin)\s+(?:any\s+)?emojis?\b|\bemoji[- ]free\b/.test(t);
  const useEmoji =
    /\b(?:use|with|add|include|lots of|plenty of|mit|com|use|usar|usa)\s+(?:some\s+|a few\s+|an?\s+|many\s+|einigen\s+|alguns\s+)?emojis?\b/.test(
      t,
    );
  const noTags = /\b(?:no|without|avoid|don'?t use|do not use|keine|ohne|sem|sin)\s+(?:any\s+)?hashtags?\b/.test(t);
  const useTags =
    /\b(?:use|with|add|include|mit|com|usar|usa)\s+(?:some\s+|a few\s+|two\s+|2\s+|a couple of\s+|einigen\s+|alguns\s+)?hashtags?\b/.test(
      t,
    );
  const formal = /\b(?:professional|formal|serious|sachlich|seriös|profissional)\b/.test(t);
  const veryShort = /\b(?:very|super|extremely|sehr|muito)\s+(?:short|brief|kurz|curta|curto)\b(?!\s+lines?)/.test(t);
  const short = /\b(?:short|brief|concise|kurz|knapp|curta|curto|breve)\b(?!\s+(?:lines?|zeilen|linhas))/.test(t);
  return {
    maxChars: readLimit(t, '(?:characters?|chars?|letters|zeichen|caracteres)'),
    maxWords: readLimit(t, '(?:words?|wörter|worte|palavras)'),
    emoji: noEmoji ? 'none' : useEmoji ? 'always' : formal ? 'none' : 'keep',
    hashtags: noTags ? 'none' : useTags ? 'always' : 'keep',
    length: veryShort ? 'veryShort' : short ? 'short' : 'normal',
    cheerful: /\b(?:sunny|cheerful|upbeat|positive|happy|optimistic|joyful|fröhlich|positiv|alegre|animad[ao]|otimista)\b/.test(t),
    formal,
    lowercase: /\b(?:all\s+)?lower[- ]?case\b|\bno capitals?\b/.test(t),
  };
}

const EMOJI = /\p{Extended_Pictographic}|\u{FE0F}|\u{200D}/gu;
const HASHTAG = /(^|\s)#[\p{L}\p{N}_]+/gu;

const CHEER: Record<Phrasebook['id'], { f: string; m: string }> = {
  en: { f: 'Always on the sunny side ☀', m: 'Always on the sunny side ☀' },
  de: { f: 'Immer gut gelaunt ☀', m: 'Immer gut gelaunt ☀' },
  pt: { f: 'Sempre de bom humor ☀', m: 'Sempre de bom humor ☀' },
  ja: { f: '毎日ポジティブに☀', m: '毎日ポジティブに☀' },
  ar: { f: 'متفائلة دائماً ☀', m: 'متفائل دائماً ☀' },
};

/** The hashtag of a hobby: "board games" → "#boardgames". */
function hashtag(hobby: string): string {
  return `#${hobby.replace(/[^\p{L}\p{N}_]/gu, '')}`;
}

const words = (text: string) => text.split(/\s+/).filter(Boolean).length;

function cleanUp(text: string): string {
  return tidy(
    text
      .split('\n')
      .map((line) => line.replace(/[ \t]{2,}/g, ' ').replace(/^[\s|•·,+]+|[\s|•·,+]+$/g, ''))
      .filter((line) => line.length > 0)
      .join('\n'),
  );
}

export interface BioContext {
  book: Phrasebook;
  gender: Gender;
  /** The persona's hobbies (for hashtags) and one emoji of them (when emoji are asked for). */
  hobbies: readonly string[];
  emoji: string;
  platformLimit: number;
  /** Where the instagram-like platforms put a new line; others add with a space. */
  multiline: boolean;
}

/** Applies the rules to one candidate bio. */
export function applyBioRules(text: string, rules: BioRules, ctx: BioContext): string {
  let out = text;
  if (rules.cheerful) out += `${ctx.multiline ? '\n' : ' '}${CHEER[ctx.book.id][ctx.gender]}`;
  if (rules.hashtags === 'none') out = out.replace(HASHTAG, '$1');
  if (rules.hashtags === 'always' && !/(^|\s)#\S/u.test(out)) out += ` ${ctx.hobbies.slice(0, 2).map(hashtag).join(' ')}`;
  if (rules.emoji === 'none') out = out.replace(EMOJI, '');
  if (rules.emoji === 'always' && !/\p{Extended_Pictographic}/u.test(out)) out += ` ${ctx.emoji}`;
  if (rules.lowercase) out = out.toLocaleLowerCase(ctx.book.id);
  return cleanUp(out);
}

/** The character limit a bio must keep: the platform's, or less where the instruction asks. */
export function bioLimit(rules: BioRules, platformLimit: number): number {
  const share = rules.length === 'veryShort' ? 0.4 : rules.length === 'short' ? 0.6 : 1;
  const shortCap = Math.max(20, Math.round(platformLimit * share));
  return Math.max(1, Math.min(platformLimit, shortCap, rules.maxChars ?? platformLimit));
}

/**
 * The bio from its candidate templates (already filled), with the rules applied: the first that
 * fits every limit from a seeded start, else the shortest, cut to fit.
 */
export function composeBio(candidates: readonly string[], rules: BioRules, ctx: BioContext, start: number): string {
  const limit = bioLimit(rules, ctx.platformLimit);
  let ruled = candidates.map((c) => applyBioRules(c, rules, ctx)).filter((c) => c.length > 0);
  if (rules.maxWords !== undefined) {
    const maxWords = rules.maxWords;
    const fitting = ruled.filter((c) => words(c) <= maxWords);
    ruled =
      fitting.length > 0
        ? fitting
        : [
            cleanUp(
              ([...ruled].sort((a, b) => words(a) - words(b))[0] ?? '')
                .split(/(?<=\s)/)
                .slice(0, maxWords)
                .join(''),
            ),
          ];
  }
  const bio = fitWithin(ruled, limit, Math.min(start, Math.max(0, ruled.length - 2)));
  return charCount(bio) <= limit ? bio : clip(bio, limit);
}
