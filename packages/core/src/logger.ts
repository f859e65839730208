import pino, { type Logger } from 'pino';
import { type AvatarGenConfig, createRedactor, SECRET_VARIABLES } from './config.js';

/**
 * A pino logger whose every line has the config's secrets replaced by [redacted]: core's, and the
 * plugins' (`secretVariables(plugins)`), whose values must be in `config` (`loadConfig(env, plugins)`).
 */
export function createLogger(
  config: Pick<AvatarGenConfig, 'LOG_LEVEL'> & Partial<AvatarGenConfig>,
  destination?: pino.DestinationStream,
  secrets: readonly string[] = SECRET_VARIABLES,
): Logger {
  const redact = createRedactor(config, secrets);
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
          method.apply(this, args.map((a) => scrub(a)) as Parameters<typeof method>);
        },
      },
    },
    destination,
  );
}
