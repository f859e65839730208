import type { AvatarGenConfig } from '@avatargen/core';
import pretty from 'pino-pretty';
import type { DestinationStream } from 'pino';

/**
 * Where the command's log lines go, and how: JSON lines by default (journald, log shippers), pretty
 * lines for people at a terminal (LOG_FORMAT=auto) or when asked (LOG_FORMAT=pretty). Undefined
 * means pino's own JSON writer on that stream.
 */
export function logDestination(
  config: Pick<AvatarGenConfig, 'LOG_FORMAT'>,
  stream: 'stdout' | 'stderr' = 'stdout',
): DestinationStream | undefined {
  const tty = stream === 'stdout' ? process.stdout.isTTY : process.stderr.isTTY;
  const wantPretty = config.LOG_FORMAT === 'pretty' || (config.LOG_FORMAT === 'auto' && tty === true);
  if (!wantPretty) return stream === 'stdout' ? undefined : process.stderr;
  // sync: a line is written before the next one starts, so it never lands inside a progress bar
  return pretty({
    destination: stream === 'stdout' ? 1 : 2,
    sync: true,
    colorize: tty === true,
    translateTime: 'SYS:HH:MM:ss',
    ignore: 'pid,hostname',
  });
}
