import { hostname } from 'node:os';
import type { AvatarGen } from '@avatargen/core';
import { errorCode } from './errors.js';

export interface HealthReport {
  status: 'ok' | 'unavailable';
  /** `select 1` answered. */
  database: boolean;
  /** A probe object could be written to the object storage and deleted again. */
  storage: boolean;
}

/** A part that neither answers nor fails within this time counts as down (a load balancer waits for us). */
const PART_TIMEOUT_MS = 3000;

function within<T>(promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(Object.assign(new Error(`${what} did not answer within ${ms} ms`), { code: 'ETIMEDOUT' })), ms);
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

/**
 * What /healthz reports: the database answers, and the storage takes a write (a storage that
 * lists but refuses writes, a full disk or a read-only bucket, cannot store a single image).
 * The probe writes `healthz/<host>-<pid>` and deletes it. One check serves every request for
 * `cacheMs`, and requests that arrive while it runs share it, so a burst of health checks (several
 * load balancers, an uptime service) makes one probe.
 */
export class HealthCheck {
  readonly probeKey = `healthz/${hostname().replace(/[^\w.-]/g, '_') || 'host'}-${process.pid}`;
  private last: { at: number; report: HealthReport } | undefined;
  private running: Promise<HealthReport> | undefined;

  constructor(
    private readonly gen: AvatarGen,
    private readonly cacheMs: number,
  ) {}

  report(): Promise<HealthReport> {
    if (this.last && Date.now() - this.last.at < this.cacheMs) return Promise.resolve(this.last.report);
    this.running ??= this.check().finally(() => {
      this.running = undefined;
    });
    return this.running;
  }

  private async check(): Promise<HealthReport> {
    const [database, storage] = await Promise.all([this.database(), this.storage()]);
    const report: HealthReport = { status: database && storage ? 'ok' : 'unavailable', database, storage };
    this.last = { at: Date.now(), report };
    return report;
  }

  private async database(): Promise<boolean> {
    try {
      await within(this.gen.orm.em.fork().execute('select 1'), PART_TIMEOUT_MS, 'the database');
      return true;
    } catch (error) {
      this.gen.logger.warn({ code: errorCode(error) }, 'health: database unreachable');
      return false;
    }
  }

  private async storage(): Promise<boolean> {
    const storage = this.gen.port('objectStorage');
    try {
      const probe = async () => {
        await storage.put(this.probeKey, Buffer.from(`${new Date().toISOString()}\n`), {
          contentType: 'text/plain',
          cacheControl: 'no-store',
        });
        await storage.delete(this.probeKey);
      };
      await within(probe(), PART_TIMEOUT_MS, 'the storage');
      return true;
    } catch (error) {
      // StorageError messages name the operation and the key, never a credential
      this.gen.logger.warn({ err: error }, 'health: storage refuses writes');
      return false;
    }
  }
}
