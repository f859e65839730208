import pino, { type Logger } from 'pino';
import { type AvatarGenConfig, createRedactor } from './config.js';

/** A pino logger whose every line has the config's secrets replaced by [redacted]. */
export function createLogger(
  config: Pick<AvatarGenConfig, 'LOG_LEVEL'> & Partial<AvatarGenConfig>,
  destination?: pino.DestinationStream,
): Logger {
  const redact = createRedactor(config);
  const scrub = (value: unknown, depth = 0): unknown => {
    if (typeof value === 'string') return redact(value);
    if (depth > 4 || value === null || typeof value !== 'object') return value;
    if (value instanceof Error) return { type: value.name, message: redact(value.message), stack: value.stack && redact(value.stack) };
    if (Array.isArray(value)) return value.map((v) => scrub(v, depth + 1));
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, scrub(v, depth + 1)]));
  };
  return pino(
    {
      level: config.LOG_LEVEL,
      base: undefined,
      redact: { paths: ['password', '*.password', 'authorization', '*.authorization', 'headers.cookie'], censor: '[redacted]' },
      formatters: { log: (object) => scrub(object) as Record<string, unknown> },
      hooks: {
        logMethod(args, method) {
          method.apply(
            this,
            args.map((a) => scrub(a)) as Parameters<typeof method>,
          );
        },
      },
    },
    destination,
  );
}
