import { PassThrough } from 'node:stream';
import { type AvatarGen, isFinal, NotFoundError, type Scope, statusLabel, type TaskView } from '@avatargen/core';
import type { HostContext } from './state.js';

/**
 * What a progress event carries: enough for a progress bar and a status line (`label`: the status
 * as pages word it, so the badge and the screen-reader line say the same). A page that shows the
 * personas reads them again when `progress.personasStored` or `progress.imagesStored` moves.
 */
export function progressSummary(task: TaskView) {
  return {
    id: task.id,
    status: task.status,
    label: statusLabel(task.status),
    progress: task.progress,
    errors: task.errorLog.length,
    finishedAt: task.finishedAt,
  };
}

/**
 * Server-sent events of task progress. Every process hears every task change through PostgreSQL
 * LISTEN/NOTIFY (`pipeline.events`), so a browser connected to any web process sees work done by
 * any worker. Changes are coalesced: at most one read of the task in flight per stream. When the
 * listener reconnects after an outage (`resync`), every stream reads its task again.
 */
export class SseHub {
  private readonly streams = new Map<PassThrough, () => void>();
  constructor(
    private readonly gen: AvatarGen,
    private readonly heartbeatSeconds: number,
  ) {}

  get size(): number {
    return this.streams.size;
  }

  async open(ctx: HostContext, taskId: string, scope: Scope): Promise<void> {
    const first = await this.gen.tasks.get(taskId, scope); // 404 for a missing task or another user's
    const stream = new PassThrough();
    ctx.req.socket.setTimeout(0);
    ctx.req.socket.setNoDelay(true);
    ctx.status = 200;
    ctx.set('Content-Type', 'text/event-stream; charset=utf-8');
    ctx.set('Cache-Control', 'no-cache, no-store, no-transform');
    ctx.set('X-Accel-Buffering', 'no');
    ctx.body = stream;

    let eventId = 0;
    let reading = false;
    let dirty = false;
    let closed = false;
    const send = (event: string, data: unknown) => {
      if (!closed) stream.write(`event: ${event}\nid: ${++eventId}\ndata: ${JSON.stringify(data)}\n\n`);
    };
    const close = (clientGone = false) => {
      if (closed) return;
      closed = true;
      this.gen.pipeline.events.off('task', onTask);
      this.gen.pipeline.events.off('resync', onResync);
      clearInterval(heartbeat);
      this.streams.delete(stream);
      stream.end();
      // A client that went away leaves a half-open socket that would hold the server open at shutdown.
      if (clientGone) ctx.req.socket.destroy();
    };
    this.streams.set(stream, () => {
      if (!closed) stream.write('event: shutdown\ndata: {}\n\n');
      close();
      setImmediate(() => ctx.req.socket.destroy());
    });
    const publish = (task: TaskView) => {
      send('progress', progressSummary(task));
      if (isFinal(task.status)) {
        send('done', progressSummary(task));
        close();
      }
    };
    const refresh = async () => {
      if (reading || closed) {
        dirty = true;
        return;
      }
      reading = true;
      try {
        do {
          dirty = false;
          publish(await this.gen.tasks.get(taskId, scope));
        } while (dirty && !closed);
      } catch (error) {
        if (error instanceof NotFoundError) {
          send('gone', { id: taskId });
          close();
        } else {
          ctx.state.log.warn({ err: error }, 'progress stream read failed');
        }
      } finally {
        reading = false;
      }
    };
    const onTask = (id: string) => {
      if (id === taskId) void refresh();
    };
    // Notifications were lost while the listener was reconnecting: read the task again.
    const onResync = () => void refresh();
    const heartbeat = setInterval(() => {
      if (!closed) stream.write(': keep-alive\n\n');
    }, this.heartbeatSeconds * 1000);
    heartbeat.unref();
    this.gen.pipeline.events.on('task', onTask);
    this.gen.pipeline.events.on('resync', onResync);
    ctx.req.on('close', () => close(true));
    stream.on('error', () => close(true));
    stream.write('retry: 3000\n\n');
    publish(first);
    // A change between the first read and the subscription would otherwise be missed.
    if (!closed) void refresh();
  }

  /** Ends every open stream (on shutdown), so the HTTP server can close. */
  closeAll(): void {
    for (const shutdown of [...this.streams.values()]) shutdown();
    this.streams.clear();
  }
}
