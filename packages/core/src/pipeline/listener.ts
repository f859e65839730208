import pg from 'pg';
import { isDatabaseUnavailable } from '../errors.js';

export interface TaskListenerOptions {
  databaseUrl: string;
  channels: readonly string[];
  onNotification(channel: string, payload: string): void;
  /** After a reconnect: notifications sent meanwhile are lost. */
  onReconnect(): void;
  trouble(error: unknown, what: string): void;
}

/**
 * LISTENs on a connection of its own. When that connection is lost (a database restart), it
 * reconnects with backoff and subscribes again, then calls onReconnect. Only the first connect's
 * failure is thrown: a wrong URL or password at start is a configuration error.
 */
export class TaskListener {
  private client: pg.Client | undefined;
  private retry: NodeJS.Timeout | undefined;
  private open = false;

  constructor(private readonly options: TaskListenerOptions) {}

  async start(): Promise<void> {
    this.open = true;
    await this.connect(0);
  }

  async stop(): Promise<void> {
    this.open = false;
    if (this.retry) clearTimeout(this.retry);
    await this.client?.end().catch(() => undefined);
    this.client = undefined;
  }

  private async connect(attempt: number): Promise<void> {
    const client = new pg.Client({ connectionString: this.options.databaseUrl });
    let lost = false;
    const onLost = (error?: Error) => {
      if (lost) return;
      lost = true;
      // A connection that was up starts the backoff afresh; a failed try waits longer than the last.
      const wasUp = this.client === client;
      if (wasUp) this.client = undefined;
      client.end().catch(() => undefined);
      if (!this.open) return;
      if (error) this.options.trouble(error, 'notification listener lost');
      const next = wasUp ? 1 : attempt + 1;
      const wait = Math.min(250 * 2 ** Math.min(next - 1, 6), 10_000);
      this.retry = setTimeout(() => void this.connect(next), wait);
    };
    client.on('error', onLost);
    client.on('end', () => onLost(new Error('Connection terminated')));
    client.on('notification', (message) => {
      if (message.payload) this.options.onNotification(message.channel, message.payload);
    });
    try {
      await client.connect();
      for (const channel of this.options.channels) await client.query(`LISTEN ${channel}`);
    } catch (error) {
      if (attempt === 0 && !isDatabaseUnavailable(error)) {
        lost = true;
        await client.end().catch(() => undefined);
        throw error;
      }
      onLost(error as Error);
      return;
    }
    if (!this.open) {
      await client.end().catch(() => undefined);
      return;
    }
    this.client = client;
    if (attempt > 0) this.options.onReconnect();
  }
}
