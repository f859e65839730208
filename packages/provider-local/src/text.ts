/** Length as platforms count it, at its strictest: code points (a grapheme is one or more of them). */
export function charCount(text: string): number {
  return [...text].length;
}

/** Cuts text to at most `limit` code points, at a word boundary when there is one, ending with "…". */
export function clip(text: string, limit: number): string {
  const chars = [...text];
  if (chars.length <= limit) return text;
  const cut = chars.slice(0, limit - 1).join('');
  const space = cut.lastIndexOf(' ');
  const head = space > limit * 0.6 ? cut.slice(0, space) : cut;
  return `${head.replace(/[\s,;:|•·-]+$/u, '')}…`;
}

/**
 * The first candidate that fits the limit, starting at `start` and wrapping round the preferred
 * ones; the last candidate is the short fallback, used only when none of the others fits; when
 * even that is too long, the shortest is clipped.
 */
export function fitWithin(candidates: readonly string[], limit: number, start = 0): string {
  const preferred = Math.max(1, candidates.length - 1);
  for (let i = 0; i < candidates.length; i++) {
    const candidate = (i < preferred ? candidates[(start + i) % preferred] : candidates[i]) as string;
    if (candidate.length > 0 && charCount(candidate) <= limit) return candidate;
  }
  const shortest = [...candidates].sort((a, b) => charCount(a) - charCount(b))[0] ?? '';
  return clip(shortest, limit);
}

/** What normalizePersona does to text, done here so the persona comes out unchanged by it. */
export function tidy(text: string): string {
  return text.normalize('NFC').trim();
}
