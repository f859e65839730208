import { createHash, randomBytes } from 'node:crypto';
import bcrypt from 'bcrypt';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Orm } from '../db/orm.js';
import { ApiToken, type ApiTokenEntity, Session, User, type UserEntity } from '../db/entities.js';
import { ConflictError, NotFoundError, ValidationError } from '../errors.js';

export const BCRYPT_COST = 12;
/** One rule everywhere (CLI, site, API, ADMIN_PASSWORD): at least 12 characters. */
export const PASSWORD_MIN = 12;
/** A password an operator chooses for themselves: the same rule. */
export const NEW_PASSWORD_MIN = PASSWORD_MIN;
/** bcrypt reads only the first 72 bytes; a longer password would be silently cut, so it is refused. */
export const PASSWORD_MAX_BYTES = 72;

export interface UserView {
  id: number;
  email: string;
  isAdmin: boolean;
  active: boolean;
  lastLoginAt: Date | null;
  createdAt: Date;
}

export interface ApiTokenView {
  id: number;
  name: string;
  createdAt: Date;
  lastUsedAt: Date | null;
  revokedAt: Date | null;
}

// An address with a dotless host such as admin@localhost is allowed: it is the zero-setup admin.
const emailSchema = z
  .string()
  .max(254, { error: 'Enter a valid email address.' })
  .regex(/^[^\s@"<>()[\]\\,;:]+@(?:localhost|[a-z0-9](?:[a-z0-9-]*[a-z0-9])?(?:\.[a-z0-9](?:[a-z0-9-]*[a-z0-9])?)+)$/i, {
    error: 'Enter a valid email address.',
  });

export function validatePassword(password: unknown, min = PASSWORD_MIN): string | null {
  if (typeof password !== 'string' || password.length < min) {
    return `Use at least ${min} characters.`;
  }
  if (Buffer.byteLength(password, 'utf8') > PASSWORD_MAX_BYTES) {
    return `Use at most ${PASSWORD_MAX_BYTES} bytes (bcrypt ignores the rest); a shorter passphrase is as strong.`;
  }
  return null;
}

function normalizeEmail(email: unknown): string {
  const parsed = emailSchema.safeParse(typeof email === 'string' ? email.trim().toLowerCase() : email);
  if (!parsed.success) throw new ValidationError({ email: 'Enter a valid email address.' });
  return parsed.data;
}

function view(user: UserEntity): UserView {
  return {
    id: user.id,
    email: user.email,
    isAdmin: user.isAdmin,
    active: user.active,
    lastLoginAt: user.lastLoginAt ?? null,
    createdAt: user.createdAt,
  };
}

/** Control characters (C0, DEL, C1), U+FFFD (bytes that were not UTF-8) and lone surrogates. */
const BAD_NAME_CHARACTERS = /[\p{Cc}\ufffd]|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/u;

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

// Compared against when the account does not exist, so a login takes as long either way.
let dummyHash: string | undefined;

/** A token's `last_used_at` is written at most this often: it says "used recently", not "used at". */
export const TOKEN_USE_WRITE_INTERVAL_MS = 60_000;
/** Tokens whose last write this process remembers; the oldest are forgotten beyond this. */
const TOKEN_USE_MEMORY = 10_000;

/** Accounts, passwords (bcrypt) and personal API tokens. */
export class UsersService {
  /** Token id -> when this process last wrote (or started writing) its last_used_at. */
  private readonly tokenUseWrites = new Map<number, number>();

  constructor(
    private readonly orm: Orm,
    /** Where a failed `last_used_at` write is reported (it never fails the request). */
    private readonly logger?: Pick<Logger, 'warn'>,
  ) {}

  async create(input: { email: string; password: string; isAdmin?: boolean }): Promise<UserView> {
    const email = normalizeEmail(input.email);
    const problem = validatePassword(input.password);
    if (problem) throw new ValidationError({ password: problem });
    const em = this.orm.em.fork();
    if (await em.count(User, { email })) throw new ConflictError(`An account for ${email} already exists`);
    const user = em.create(User, {
      email,
      passwordHash: await bcrypt.hash(input.password, BCRYPT_COST),
      isAdmin: input.isAdmin ?? false,
      active: true,
    });
    await em.flush();
    return view(user);
  }

  async count(): Promise<number> {
    return this.orm.em.fork().count(User, {});
  }

  async findById(id: number): Promise<UserView | null> {
    const user = await this.orm.em.fork().findOne(User, { id });
    return user ? view(user) : null;
  }

  /** The oldest active administrator: the account a site's own tools act for by default. */
  async firstAdmin(): Promise<UserView | null> {
    const user = await this.orm.em.fork().findOne(User, { isAdmin: true, active: true }, { orderBy: { id: 'asc' } });
    return user ? view(user) : null;
  }

  async findByEmail(email: string): Promise<UserView | null> {
    const user = await this.orm.em.fork().findOne(User, { email: email.trim().toLowerCase() });
    return user ? view(user) : null;
  }

  /** The user when the email and password match an active account, else null. Records the login time. */
  async authenticate(email: string, password: string): Promise<UserView | null> {
    const em = this.orm.em.fork();
    const user = await em.findOne(User, { email: String(email).trim().toLowerCase() });
    if (!user || typeof password !== 'string' || Buffer.byteLength(password, 'utf8') > PASSWORD_MAX_BYTES) {
      dummyHash ??= await bcrypt.hash('not a real password', BCRYPT_COST);
      await bcrypt.compare(String(password).slice(0, 72), dummyHash);
      return null;
    }
    const ok = await bcrypt.compare(password, user.passwordHash);
    if (!ok || !user.active) return null;
    user.lastLoginAt = new Date();
    await em.flush();
    return view(user);
  }

  /**
   * A new password, and the account's sessions end with the old one (a session stolen before the
   * change stops working). API tokens stay: they are revoked one by one in settings.
   */
  async setPassword(email: string, password: string): Promise<void> {
    const problem = validatePassword(password);
    if (problem) throw new ValidationError({ password: problem });
    const hash = await bcrypt.hash(password, BCRYPT_COST);
    await this.orm.em.fork().transactional(async (em) => {
      const user = await em.findOne(User, { email: normalizeEmail(email) });
      if (!user) throw new NotFoundError(`No account for ${email}`);
      user.passwordHash = hash;
      await em.nativeDelete(Session, { userId: user.id });
    });
  }

  /**
   * A user changes their own password: `current` must be right (a wrong one is a ValidationError on
   * `current`, and the caller counts it like a failed login); then `next` must be at least
   * NEW_PASSWORD_MIN characters and differ from it. Every session of the account ends, as with setPassword; the
   * caller starts a fresh one for the person who made the change.
   */
  async changePassword(userId: number, current: string, next: string): Promise<void> {
    const em = this.orm.em.fork();
    const user = await em.findOne(User, { id: userId, active: true });
    if (!user) throw new NotFoundError(`No account ${userId}`);
    // The current password first: an error about the new one then tells that the current one was right.
    const ok =
      typeof current === 'string' &&
      Buffer.byteLength(current, 'utf8') <= PASSWORD_MAX_BYTES &&
      (await bcrypt.compare(current, user.passwordHash));
    if (!ok) throw new ValidationError({ current: 'The current password is wrong.' });
    const problem = validatePassword(next, NEW_PASSWORD_MIN);
    if (problem) throw new ValidationError({ next: problem });
    if (next === current) throw new ValidationError({ next: 'Choose a password different from the current one.' });
    const hash = await bcrypt.hash(next, BCRYPT_COST);
    await em.transactional(async (tem) => {
      await tem.nativeUpdate(User, { id: user.id }, { passwordHash: hash });
      await tem.nativeDelete(Session, { userId: user.id });
    });
  }

  /**
   * Disables (or enables) an account; a disabled account cannot log in, its sessions are deleted
   * and its API tokens are revoked for good, in the same transaction: enabling the account again
   * does not bring them back (new ones are made in settings).
   */
  async setActive(email: string, active: boolean): Promise<void> {
    await this.orm.em.fork().transactional(async (em) => {
      const user = await em.findOne(User, { email: normalizeEmail(email) });
      if (!user) throw new NotFoundError(`No account for ${email}`);
      user.active = active;
      if (!active) {
        await em.nativeDelete(Session, { userId: user.id });
        await em.nativeUpdate(ApiToken, { userId: user.id, revokedAt: null }, { revokedAt: new Date() });
      }
    });
  }

  /** Creates a personal API token; the token itself is returned once and only its hash is stored. */
  async createToken(userId: number, name: string): Promise<{ token: string; view: ApiTokenView }> {
    const trimmed = String(name ?? '').trim();
    if (trimmed.length < 1 || trimmed.length > 100) throw new ValidationError({ name: 'Name the token (1-100 characters).' });
    // PostgreSQL cannot store NUL; no control character or broken text belongs in a one-line name
    if (BAD_NAME_CHARACTERS.test(trimmed)) throw new ValidationError({ name: 'Remove control characters (such as NUL) from the name.' });
    const token = `agt_${randomBytes(24).toString('base64url')}`;
    const em = this.orm.em.fork();
    const row = em.create(ApiToken, { userId, name: trimmed, tokenHash: hashToken(token) });
    await em.flush();
    return { token, view: tokenView(row) };
  }

  async listTokens(userId: number): Promise<ApiTokenView[]> {
    const rows = await this.orm.em.fork().find(ApiToken, { userId }, { orderBy: { id: 'desc' } });
    return rows.map(tokenView);
  }

  async revokeToken(userId: number, tokenId: number): Promise<void> {
    const em = this.orm.em.fork();
    const row = await em.findOne(ApiToken, { id: tokenId, userId });
    if (!row) throw new NotFoundError('No such token');
    row.revokedAt ??= new Date();
    await em.flush();
  }

  /**
   * The active user a token belongs to, or null for an unknown, revoked or disabled one: one read,
   * no transaction. Recording the use is not awaited and is written at most once a minute per
   * token (remembered here, and checked in the update for other processes): fifty requests with
   * one token used to queue on that row's lock one after another.
   */
  async authenticateToken(token: string): Promise<UserView | null> {
    if (typeof token !== 'string' || !token.startsWith('agt_')) return null;
    const rows = await this.orm.em.fork().execute<
      Array<{
        token_id: number;
        id: number;
        email: string;
        is_admin: boolean;
        active: boolean;
        last_login_ms: number | null;
        created_ms: number;
      }>
    >(
      // times as epoch milliseconds: raw rows carry PostgreSQL's text for timestamps
      `select t.id as token_id, u.id, u.email, u.is_admin, u.active,
              (extract(epoch from u.last_login_at) * 1000)::float8 as last_login_ms, (extract(epoch from u.created_at) * 1000)::float8 as created_ms
         from api_tokens t join users u on u.id = t.user_id
        where t.token_hash = ? and t.revoked_at is null and u.active`,
      [hashToken(token)],
    );
    const row = rows[0];
    if (!row) return null;
    this.recordTokenUse(row.token_id);
    return {
      id: row.id,
      email: row.email,
      isAdmin: row.is_admin,
      active: row.active,
      lastLoginAt: row.last_login_ms === null ? null : new Date(Math.round(row.last_login_ms)),
      createdAt: new Date(Math.round(row.created_ms)),
    };
  }

  private recordTokenUse(tokenId: number): void {
    const now = Date.now();
    const last = this.tokenUseWrites.get(tokenId);
    if (last !== undefined && now - last < TOKEN_USE_WRITE_INTERVAL_MS) return;
    this.tokenUseWrites.delete(tokenId); // re-inserted last: the map forgets the least recently written first
    this.tokenUseWrites.set(tokenId, now);
    if (this.tokenUseWrites.size > TOKEN_USE_MEMORY) this.tokenUseWrites.delete(this.tokenUseWrites.keys().next().value as number);
    // The condition skips the write when another process made it within the minute; a single
    // statement outside any transaction holds the row's lock only while it runs.
    void this.orm.em
      .fork()
      .execute(
        `update api_tokens set last_used_at = now()
          where id = ? and (last_used_at is null or last_used_at < now() - interval '1 minute')`,
        [tokenId],
      )
      .catch((error: unknown) => {
        this.tokenUseWrites.delete(tokenId); // try again on the next use
        this.logger?.warn({ err: error, tokenId }, 'recording an API token use failed');
      });
  }
}

function tokenView(row: ApiTokenEntity): ApiTokenView {
  return { id: row.id, name: row.name, createdAt: row.createdAt, lastUsedAt: row.lastUsedAt ?? null, revokedAt: row.revokedAt ?? null };
}
