/**
 * A character scanner that finds the JSON values a language model wrote into free text: objects one
 * after another (not an array), a JSON array, objects inside ``` fences, with any prose between
 * them. It tracks string state, escapes and nesting, so braces and quotes inside strings never
 * end an object early. Each balanced candidate is then handed to JSON.parse.
 */

export type ScannedValue =
  | { ok: true; value: unknown; start: number; end: number }
  | { ok: false; reason: string; start: number; end: number };

const WHITESPACE = new Set([' ', '\t', '\n', '\r']);

function nextNonSpace(text: string, from: number): string | undefined {
  for (let i = from; i < text.length; i++) {
    const ch = text[i] as string;
    if (!WHITESPACE.has(ch)) return ch;
  }
  return undefined;
}

/**
 * Does the bracket at `start` open something that looks like JSON? `{` must be followed by a key
 * (`"`) or `}`, `[` by an object, an array, a string or `]`. Prose such as "{name}" or "[1]" in
 * the text around the values is skipped rather than reported as a broken object.
 */
function looksLikeJsonStart(text: string, start: number): boolean {
  const open = text[start];
  const next = nextNonSpace(text, start + 1);
  if (open === '{') return next === '"' || next === '}';
  return next === '{' || next === '[' || next === ']' || next === '"';
}

/**
 * Finds the end (exclusive) of the balanced object or array opening at `start`, or -1 when the
 * text ends inside it. Brackets of the other kind nest too; a mismatched closer ends the value
 * there (JSON.parse then reports it).
 */
function findEnd(text: string, start: number): number {
  const stack: string[] = [];
  let inString = false;
  for (let i = start; i < text.length; i++) {
    const ch = text[i];
    if (inString) {
      if (ch === '\\')
        i++; // skip the escaped character, whatever it is (\" \\ \n \u....)
      else if (ch === '"') inString = false;
      continue;
    }
    switch (ch) {
      case '"':
        inString = true;
        break;
      case '{':
        stack.push('}');
        break;
      case '[':
        stack.push(']');
        break;
      case '}':
      case ']':
        if (stack.pop() !== ch) return i + 1;
        if (stack.length === 0) return i + 1;
        break;
    }
  }
  return -1;
}

/** Every top-level JSON object or array in `text`, in order, parsed or with the reason it is not. */
export function scanJsonValues(text: string): ScannedValue[] {
  const found: ScannedValue[] = [];
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if ((ch !== '{' && ch !== '[') || !looksLikeJsonStart(text, i)) {
      i++;
      continue;
    }
    const end = findEnd(text, i);
    if (end === -1) {
      found.push({ ok: false, reason: 'the answer ends inside this object (truncated)', start: i, end: text.length });
      break;
    }
    const source = text.slice(i, end);
    try {
      found.push({ ok: true, value: JSON.parse(source), start: i, end });
    } catch (error) {
      found.push({ ok: false, reason: `not valid JSON (${(error as Error).message})`, start: i, end });
    }
    i = end;
  }
  return found;
}

/** The scanned values with top-level arrays flattened into their elements. */
export function scanJsonItems(text: string): ScannedValue[] {
  const items: ScannedValue[] = [];
  for (const scanned of scanJsonValues(text)) {
    if (scanned.ok && Array.isArray(scanned.value)) {
      for (const value of scanned.value) items.push({ ok: true, value, start: scanned.start, end: scanned.end });
    } else {
      items.push(scanned);
    }
  }
  return items;
}
