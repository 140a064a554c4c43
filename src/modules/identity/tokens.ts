import { createHash, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';

/**
 * Opaque tokens: `<kind>.<tenant id>.<32 random bytes, base64url>`. The
 * tenant id lets the server set the tenant context (RLS) before looking the
 * token up; only SHA-256 of the whole token is stored, so a token presented
 * in another tenant's context, or with its tenant part changed, matches
 * nothing.
 */
export type TokenKind = 'cbr' /* refresh */ | 'cbi' /* invitation */ | 'cbm' /* MFA challenge */;

const UUID = '[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}';
const PATTERNS: Record<TokenKind, RegExp> = {
  cbr: new RegExp(`^cbr\\.(${UUID})\\.[A-Za-z0-9_-]{43}$`),
  cbi: new RegExp(`^cbi\\.(${UUID})\\.[A-Za-z0-9_-]{43}$`),
  cbm: new RegExp(`^cbm\\.(${UUID})\\.[A-Za-z0-9_-]{43}$`),
};

export const sha256 = (value: string): Buffer => createHash('sha256').update(value, 'utf8').digest();

export function newTenantToken(kind: TokenKind, tenantId: string): { token: string; hash: Buffer } {
  const token = `${kind}.${tenantId}.${randomBytes(32).toString('base64url')}`;
  return { token, hash: sha256(token) };
}

/** The tenant and hash of a well-formed token of this kind, or null. */
export function parseTenantToken(kind: TokenKind, token: unknown): { tenantId: string; hash: Buffer } | null {
  if (typeof token !== 'string' || token.length > 200) return null;
  const m = PATTERNS[kind].exec(token);
  if (!m) return null;
  return { tenantId: m[1]!, hash: sha256(token) };
}

/** Recovery codes: 12 characters of Crockford base32 (60 bits), shown as xxxx-xxxx-xxxx. */
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';
export function newRecoveryCode(): string {
  let s = '';
  for (let i = 0; i < 12; i++) s += CROCKFORD[randomInt(32)];
  return `${s.slice(0, 4)}-${s.slice(4, 8)}-${s.slice(8)}`;
}

/** Canonical form (case, separators, I/L -> 1, O -> 0) or null when it cannot be a recovery code. */
export function normaliseRecoveryCode(code: string): string | null {
  const c = code.toUpperCase().replace(/[\s-]/g, '').replace(/[IL]/g, '1').replace(/O/g, '0');
  return /^[0-9A-HJKMNP-TV-Z]{12}$/.test(c) ? c : null;
}

/** Stored hash of a recovery code, bound to its user. */
export const recoveryCodeHash = (userId: string, normalised: string): Buffer => sha256(`${userId}:${normalised}`);

/** Lockout keys: scope + identifier, hashed (no email or IP in the table). */
export const lockoutKey = (...parts: string[]): string => createHash('sha256').update(parts.join('\0'), 'utf8').digest('hex');

export function safeEqual(a: Buffer, b: Buffer): boolean {
  return a.length === b.length && timingSafeEqual(a, b);
}
