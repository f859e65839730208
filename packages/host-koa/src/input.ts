import type { Context, Next } from 'koa';
import { HttpError } from './errors.js';
import { bodyOf } from './state.js';

/**
 * Characters no request text may hold: C0 controls, DEL and C1 controls; U+FFFD, which is what a
 * lenient decoder (the query string, a JSON body) makes of bytes that are not UTF-8; and lone
 * surrogates (`\ud800` in JSON), which are not text at all. PostgreSQL cannot store NUL and
 * refuses the rest in some places; none of them has a use in an id, a name or a setting.
 */
const ALWAYS_BAD =
  /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f-\u009f\ufffd]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
/** Tab and line breaks are refused too in the address (path and query), where they are never meant. */
const LINE_CONTROLS = /[\t\n\r]/;

/** Whether `text` holds a character refused above; `multiline` allows tab, CR and LF (text areas). */
export function hasBadCharacter(text: string, multiline = false): boolean {
  return ALWAYS_BAD.test(text) || (!multiline && LINE_CONTROLS.test(text));
}

/** The names of the fields (dotted paths) of a parsed body or query whose key or text is refused. */
function badFields(value: unknown, multiline: boolean): string[] {
  const found = new Set<string>();
  const walk = (item: unknown, path: string, depth: number) => {
    if (found.size >= 10 || depth > 20) return;
    if (typeof item === 'string') {
      if (hasBadCharacter(item, multiline)) found.add(path || 'body');
    } else if (Array.isArray(item)) {
      for (const element of item) walk(element, path, depth + 1);
    } else if (item && typeof item === 'object') {
      for (const [key, inner] of Object.entries(item)) {
        const name = path ? `${path}.${key}` : key;
        // a refused key is named with its bad characters replaced, so the message itself is clean
        if (hasBadCharacter(key)) found.add(name.replace(/[^\w.-]/g, '?'));
        else walk(inner, name, depth + 1);
      }
    }
  };
  walk(value, '', 0);
  return [...found];
}

/**
 * The one check every route goes through, before any route code (and so before any SQL) runs:
 * the path as the router will decode it (every `:id`, `/media/<key>`), the query string and the
 * parsed body (form or JSON: token names, descriptions, settings...). It runs after the body
 * parser and before authentication and CSRF. A refused path is a 404; a refused query parameter
 * or body field a 400 naming it.
 */
export function refuseBadCharacters() {
  return async (ctx: Context, next: Next) => {
    // Nothing can be at such an address (no id or storage key holds these): the same 404 as any
    // missing page. A %-escape that does not decode (not UTF-8) is refused alike.
    let path: string;
    try {
      path = decodeURIComponent(ctx.path);
    } catch {
      throw new HttpError(404, 'Not found.');
    }
    if (hasBadCharacter(path)) throw new HttpError(404, 'Not found.');
    const inQuery = badFields(ctx.query, false);
    if (inQuery.length) {
      throw new HttpError(
        400,
        `Remove control characters from the query parameter${inQuery.length > 1 ? 's' : ''} ${inQuery.join(', ')}.`,
        {},
        fieldsOf(inQuery),
      );
    }
    const inBody = badFields(bodyOf(ctx), true);
    if (inBody.length) {
      throw new HttpError(400, `Remove control characters (such as NUL) from ${inBody.join(', ')}.`, {}, fieldsOf(inBody));
    }
    return next();
  };
}

function fieldsOf(names: string[]): Record<string, string> {
  return Object.fromEntries(names.map((name) => [name, 'Remove control characters (such as NUL).']));
}
