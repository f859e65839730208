/**
 * Names of the entries in a dataset ZIP. One set of rules, used for the persona folders and again
 * by the ZIP writer on every path it is given, so the manifest lists exactly the names the archive
 * holds.
 */

/** Longest persona folder name, in UTF-16 units (at most 240 bytes of UTF-8), before a _2 suffix. */
export const FOLDER_NAME_MAX = 80;

/** Tab and line breaks (NEL among them): they separate words, so they become a space first. */
const BREAKS = /[\t\n\v\f\r\u0085\u2028\u2029]/g;
/**
 * Invisible or broken characters: controls (Cc, C0 and C1), format characters (Cf: bidi
 * overrides and isolates, zero-width characters, BOM, soft hyphen, tags), lone surrogates (Cs;
 * UTF-8 has no form for them and they arrive as U+FFFD) and U+FFFD itself.
 */
const INVISIBLE = /[\p{Cc}\p{Cf}\p{Cs}\uFFFD]/gu;
/** Characters Windows refuses in names, and the path separators. */
const FORBIDDEN = /[/\\:*?"<>|]/g;
/**
 * Device names Windows reserves, with any extension after them (`aux.txt`, `Com1.tar.gz` open the
 * device too). Recent Windows also reserves COM0, LPT0 and the superscript digits.
 */
const RESERVED = /^(con|prn|aux|nul|com[0-9¹²³]|lpt[0-9¹²³])(?=\.|$)/i;

/** Made on first use. */
let graphemes: Intl.Segmenter | undefined;

/** The first graphemes of `text` that fit in `max` UTF-16 units: no emoji or accent is split. */
function cut(text: string, max: number): string {
  if (text.length <= max) return text;
  graphemes ??= new Intl.Segmenter(undefined, { granularity: 'grapheme' });
  let end = 0;
  for (const { segment } of graphemes.segment(text)) {
    if (end + segment.length > max) break;
    end += segment.length;
  }
  return text.slice(0, end);
}

/**
 * One path segment, safe on every file system: invisible characters dropped, NFC, whitespace as
 * `_`, separators and characters Windows refuses as `-`, no leading dots, dashes or underscores
 * (no hidden or option-like names), no trailing dots (Windows drops them), cut to `max` units on
 * a grapheme boundary, and a reserved device name suffixed with `_` (`CON_`, `aux_.txt`).
 * May return ''. Applying it again changes nothing.
 */
export function safeSegment(text: string, max = Number.POSITIVE_INFINITY): string {
  let name = text
    .replace(BREAKS, ' ')
    .replace(INVISIBLE, '')
    .normalize('NFC')
    .replace(/\s+/g, '_')
    .replace(FORBIDDEN, '-')
    .replace(/^[.\-_]+/, '');
  // Cut before the trailing dots go: the cut may end on a dot.
  name = cut(name, max).replace(/\.+$/, '');
  return name.replace(RESERVED, '$1_');
}

/**
 * Folder name for a persona inside the ZIP: readable, safe on every file system (see
 * safeSegment), at most FOLDER_NAME_MAX units, and unique within the archive (compared
 * case-insensitively; a repeat gets _2, _3...). `taken` holds the names given so far.
 */
export function folderName(name: string, taken: Set<string>): string {
  const base = safeSegment(name, FOLDER_NAME_MAX) || 'persona';
  // A suffix starting with `_` never makes a reserved name nor a trailing dot.
  let candidate = base;
  for (let n = 2; taken.has(candidate.toLowerCase()); n++) candidate = `${base}_${n}`;
  taken.add(candidate.toLowerCase());
  return candidate;
}

/**
 * The name an archive entry gets for `path`: every segment through safeSegment, empty ones left
 * out. The ZIP writer records this one name in the manifest and gives it to the archive (whose own
 * path clean-up leaves such a name as it is), so the two always agree byte for byte.
 */
export function entryName(path: string): string {
  const name = path
    .split('/')
    .map((segment) => safeSegment(segment))
    .filter((segment) => segment !== '')
    .join('/');
  return name || 'file';
}
