import type { IncomingMessage, ServerResponse } from 'node:http';

/**
 * The OpenAI API's wire conventions shared by the stand-ins (Images in openai-server.ts, chat in
 * chat-server.ts): error bodies, Bearer auth, JSON answers with a request id.
 */

/** A refusal the handler throws: the status and OpenAI's error object. */
export class Rejection extends Error {
  constructor(
    readonly status: number,
    readonly body: { message: string; type: string; param: string | null; code: string | null },
  ) {
    super(body.message);
  }
}

/** A 400 invalid_request_error, naming the parameter when there is one. */
export const invalid = (message: string, param: string | null = null, code: string | null = null) =>
  new Rejection(400, { message, type: 'invalid_request_error', param, code });

export function checkAuth(header: string | undefined, apiKey: string): void {
  if (!header || !/^Bearer\s+\S/.test(header)) {
    throw new Rejection(401, {
      message:
        "You didn't provide an API key. You need to provide your API key in an Authorization header using Bearer auth (i.e. Authorization: Bearer YOUR_KEY).",
      type: 'invalid_request_error',
      param: null,
      code: null,
    });
  }
  const key = header.replace(/^Bearer\s+/, '');
  if (key !== apiKey) {
    // Deliberately harsher than OpenAI (which masks the middle): echoing the whole key proves
    // that the client never passes the server's message on.
    throw new Rejection(401, {
      message: `Incorrect API key provided: ${key}. You can find your API key at https://platform.openai.com/account/api-keys.`,
      type: 'invalid_request_error',
      param: null,
      code: 'invalid_api_key',
    });
  }
}

export function readBody(req: IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    req.on('data', (chunk: Buffer) => chunks.push(chunk));
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

export function sendError(
  res: ServerResponse,
  status: number,
  error: { message: string; type: string; param: string | null; code: string | null },
  headers: Record<string, string> = {},
): void {
  sendJson(res, status, { error }, headers);
}

export function sendJson(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  const text = JSON.stringify(body);
  res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': Buffer.byteLength(text),
    'x-request-id': `req_${Math.random().toString(16).slice(2)}`,
    ...headers,
  });
  res.end(text);
}
