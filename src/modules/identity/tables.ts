import { sql } from 'drizzle-orm';
import { bigint, customType, foreignKey, index, integer, jsonb, pgTable, text, timestamp, unique, uniqueIndex, uuid } from 'drizzle-orm/pg-core';
// column.js directly (not index.ts): drizzle-kit loads this file, and index.ts pulls in the db layer
import { encryptedColumn } from '../../platform/crypto/column.js';
import { id, tenantId, timestamps } from '../../platform/db/tables.js';

/**
 * Identity tables. Every table except auth_lockouts is tenant-owned (RLS).
 * Secrets are never stored in plaintext: passwords as argon2id hashes,
 * invitation / refresh / MFA-challenge tokens and recovery codes as SHA-256
 * of high-entropy random values, TOTP secrets and signing private keys as
 * field-encryption envelopes (src/platform/crypto).
 */

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });
const tstz = (name: string) => timestamp(name, { withTimezone: true });

export const USER_STATUSES = ['invited', 'active', 'deactivated'] as const;
export type UserStatus = (typeof USER_STATUSES)[number];

export const users = pgTable(
  'users',
  {
    id: id(),
    tenantId: tenantId(),
    /** as entered; uniqueness is case-insensitive (users_tenant_email_key) */
    email: text('email').notNull(),
    displayName: text('display_name').notNull(),
    roles: text('roles').array().notNull().default(sql`'{}'::text[]`),
    status: text('status', { enum: USER_STATUSES }).notNull().default('invited'),
    /** argon2id PHC string; null until the invitation is accepted */
    passwordHash: text('password_hash'),
    passwordChangedAt: tstz('password_changed_at'),
    lastLoginAt: tstz('last_login_at'),
    invitedBy: uuid('invited_by'),
    ...timestamps(),
  },
  (t) => [uniqueIndex('users_tenant_email_key').on(t.tenantId, sql`lower(${t.email})`), unique('users_tenant_id_id_key').on(t.tenantId, t.id)],
);

/** Single-use, expiring invitations; accepting one sets the user's password. */
export const invitations = pgTable(
  'invitations',
  {
    id: id(),
    tenantId: tenantId(),
    userId: uuid('user_id').notNull(),
    tokenHash: bytea('token_hash').notNull(),
    createdBy: uuid('created_by'),
    createdAt: tstz('created_at').notNull().defaultNow(),
    expiresAt: tstz('expires_at').notNull(),
    acceptedAt: tstz('accepted_at'),
    revokedAt: tstz('revoked_at'),
  },
  (t) => [
    uniqueIndex('invitations_token_hash_key').on(t.tokenHash),
    index('invitations_user_idx').on(t.tenantId, t.userId),
    foreignKey({ name: 'invitations_user_fkey', columns: [t.tenantId, t.userId], foreignColumns: [users.tenantId, users.id] }),
  ],
);

/**
 * A login session; also the refresh-token family (RFC 9700): every refresh
 * rotates the token, and presenting a used one revokes the session.
 */
export const sessions = pgTable(
  'sessions',
  {
    id: id(),
    tenantId: tenantId(),
    userId: uuid('user_id').notNull(),
    /** authentication methods (RFC 8176): pwd, otp, mfa, rcode */
    amr: text('amr').array().notNull().default(sql`'{}'::text[]`),
    ip: text('ip'),
    /** the User-Agent header, truncated (shown as the device) */
    userAgent: text('user_agent'),
    createdAt: tstz('created_at').notNull().defaultNow(),
    lastSeenAt: tstz('last_seen_at').notNull().defaultNow(),
    /** absolute lifetime */
    expiresAt: tstz('expires_at').notNull(),
    revokedAt: tstz('revoked_at'),
    revokedReason: text('revoked_reason'),
  },
  (t) => [
    index('sessions_user_idx').on(t.tenantId, t.userId),
    unique('sessions_tenant_id_id_key').on(t.tenantId, t.id),
    foreignKey({ name: 'sessions_user_fkey', columns: [t.tenantId, t.userId], foreignColumns: [users.tenantId, users.id] }),
  ],
);

export const refreshTokens = pgTable(
  'refresh_tokens',
  {
    id: id(),
    tenantId: tenantId(),
    sessionId: uuid('session_id').notNull(),
    tokenHash: bytea('token_hash').notNull(),
    createdAt: tstz('created_at').notNull().defaultNow(),
    expiresAt: tstz('expires_at').notNull(),
    /** set when rotated (or when the family is revoked); presenting it again is reuse */
    usedAt: tstz('used_at'),
  },
  (t) => [
    uniqueIndex('refresh_tokens_token_hash_key').on(t.tokenHash),
    index('refresh_tokens_session_idx').on(t.tenantId, t.sessionId),
    foreignKey({ name: 'refresh_tokens_session_fkey', columns: [t.tenantId, t.sessionId], foreignColumns: [sessions.tenantId, sessions.id] }),
  ],
);

/** The second step of a login (verify a TOTP code) or a forced first enrolment. */
export const mfaChallenges = pgTable(
  'mfa_challenges',
  {
    id: id(),
    tenantId: tenantId(),
    userId: uuid('user_id').notNull(),
    tokenHash: bytea('token_hash').notNull(),
    purpose: text('purpose', { enum: ['verify', 'enrol'] }).notNull(),
    attempts: integer('attempts').notNull().default(0),
    createdAt: tstz('created_at').notNull().defaultNow(),
    expiresAt: tstz('expires_at').notNull(),
    consumedAt: tstz('consumed_at'),
  },
  (t) => [
    uniqueIndex('mfa_challenges_token_hash_key').on(t.tokenHash),
    foreignKey({ name: 'mfa_challenges_user_fkey', columns: [t.tenantId, t.userId], foreignColumns: [users.tenantId, users.id] }),
  ],
);

/** A user's TOTP factor. confirmedAt null = enrolment started, not confirmed. */
export const userTotp = pgTable(
  'user_totp',
  {
    userId: uuid('user_id').primaryKey(),
    tenantId: tenantId(),
    secret: encryptedColumn('secret').notNull(),
    confirmedAt: tstz('confirmed_at'),
    /** highest 30-second time step accepted: a code is usable once */
    lastUsedStep: bigint('last_used_step', { mode: 'number' }),
    ...timestamps(),
  },
  (t) => [foreignKey({ name: 'user_totp_user_fkey', columns: [t.tenantId, t.userId], foreignColumns: [users.tenantId, users.id] })],
);

export const recoveryCodes = pgTable(
  'recovery_codes',
  {
    id: id(),
    tenantId: tenantId(),
    userId: uuid('user_id').notNull(),
    codeHash: bytea('code_hash').notNull(),
    createdAt: tstz('created_at').notNull().defaultNow(),
    usedAt: tstz('used_at'),
  },
  (t) => [
    index('recovery_codes_user_idx').on(t.tenantId, t.userId),
    foreignKey({ name: 'recovery_codes_user_fkey', columns: [t.tenantId, t.userId], foreignColumns: [users.tenantId, users.id] }),
  ],
);

/**
 * Security events for the audit module: ids, types and counters only, never
 * a secret, token, password or email. Append-only for the app role.
 */
export const securityEvents = pgTable(
  'security_events',
  {
    id: id(),
    tenantId: tenantId(),
    type: text('type').notNull(),
    /** the user the event is about */
    userId: uuid('user_id'),
    /** who caused it (an admin acting on userId), when not the user */
    actorId: uuid('actor_id'),
    sessionId: uuid('session_id'),
    ip: text('ip'),
    details: jsonb('details').$type<Record<string, unknown>>().notNull().default({}),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [index('security_events_tenant_created_idx').on(t.tenantId, t.createdAt), index('security_events_user_idx').on(t.tenantId, t.userId)],
);

/**
 * JWT signing keys (Ed25519). Owned by the platform tenant; the private key
 * is a field-encryption envelope. A key signs until retiresAt and is
 * published in the JWKS until expiresAt (retiresAt + longest token lifetime).
 */
export const signingKeys = pgTable(
  'auth_signing_keys',
  {
    kid: text('kid').primaryKey(),
    tenantId: tenantId(),
    alg: text('alg').notNull(),
    publicJwk: jsonb('public_jwk').$type<Record<string, unknown>>().notNull(),
    privateKey: encryptedColumn('private_key').notNull(),
    createdAt: tstz('created_at').notNull().defaultNow(),
    retiresAt: tstz('retires_at').notNull(),
    expiresAt: tstz('expires_at').notNull(),
    revokedAt: tstz('revoked_at'),
  },
  (t) => [index('auth_signing_keys_expires_idx').on(t.expiresAt)],
);

/**
 * Progressive lockout counters, per account (hash of tenant slug + email,
 * whether or not the account exists) and per client IP. Not tenant-owned:
 * an IP spans tenants, and unknown tenants must lock like known ones.
 */
export const authLockouts = pgTable('auth_lockouts', {
  /** SHA-256 hex of scope + identifier: no email or IP in clear */
  key: text('key').primaryKey(),
  scope: text('scope', { enum: ['account', 'ip'] }).notNull(),
  failures: integer('failures').notNull().default(0),
  lastFailureAt: tstz('last_failure_at').notNull(),
  lockedUntil: tstz('locked_until'),
});

export const identityTables = {
  users,
  invitations,
  sessions,
  refreshTokens,
  mfaChallenges,
  userTotp,
  recoveryCodes,
  securityEvents,
  signingKeys,
  authLockouts,
};
