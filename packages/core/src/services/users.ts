import { createHash, randomBytes } from 'node:crypto';
import bcrypt from 'bcrypt';
import { z } from 'zod';
import type { Orm } from '../db/orm.js';
import { ApiToken, type ApiTokenEntity, Session, User, type UserEntity } from '../db/entities.js';
import { ConflictError, NotFoundError, ValidationError } from '../errors.js';

export const BCRYPT_COST = 12;
export const PASSWORD_MIN = 10;
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

export function validatePassword(password: unknown): string | null {
  if (typeof password !== 'string' || password.length < PASSWORD_MIN) {
    return `Use at least ${PASSWORD_MIN} characters.`;
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

const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');

// Compared against when the account does not exist, so a login takes as long either way.
let dummyHash: string | undefined;

/** Accounts, passwords (bcrypt) and personal API tokens. */
export class UsersService {
  constructor(private readonly orm: Orm) {}

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
   * Disables (or enables) an account; a disabled account cannot log in, its tokens stop working
   * and its sessions are deleted.
   */
  async setActive(email: string, active: boolean): Promise<void> {
    await this.orm.em.fork().transactional(async (em) => {
      const user = await em.findOne(User, { email: normalizeEmail(email) });
      if (!user) throw new NotFoundError(`No account for ${email}`);
      user.active = active;
      if (!active) await em.nativeDelete(Session, { userId: user.id });
    });
  }

  /** Creates a personal API token; the token itself is returned once and only its hash is stored. */
  async createToken(userId: number, name: string): Promise<{ token: string; view: ApiTokenView }> {
    const trimmed = String(name ?? '').trim();
    if (trimmed.length < 1 || trimmed.length > 100) throw new ValidationError({ name: 'Name the token (1-100 characters).' });
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

  /** The active user a token belongs to, or null for an unknown, revoked or disabled one. */
  async authenticateToken(token: string): Promise<UserView | null> {
    if (typeof token !== 'string' || !token.startsWith('agt_')) return null;
    const em = this.orm.em.fork();
    const row = await em.findOne(ApiToken, { tokenHash: hashToken(token), revokedAt: null });
    if (!row) return null;
    const user = await em.findOne(User, { id: row.userId, active: true });
    if (!user) return null;
    row.lastUsedAt = new Date();
    await em.flush();
    return view(user);
  }
}

function tokenView(row: ApiTokenEntity): ApiTokenView {
  return { id: row.id, name: row.name, createdAt: row.createdAt, lastUsedAt: row.lastUsedAt ?? null, revokedAt: row.revokedAt ?? null };
}
