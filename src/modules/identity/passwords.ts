import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { hash, parseOptions, verify, type Options } from '@node-rs/argon2';

/**
 * Password policy and hashing: argon2id with the OWASP parameters
 * (m = 19 MiB, t = 2, p = 1), at least 12 and at most 256 characters, not on
 * the shipped list of common passwords (common-passwords.txt: the 10,000 most
 * common passwords of the zxcvbn-ts list plus every entry of 12 or more
 * characters from the rest of it), also after stripping trailing digits and
 * symbols ("Password2024!" -> "password").
 */

export const PASSWORD_MIN_LENGTH = 12;
export const PASSWORD_MAX_LENGTH = 256;

/** Argon2id (the const enum of @node-rs/argon2 is not usable under isolatedModules). */
const ARGON2ID = 2 as NonNullable<Options['algorithm']>;
export const ARGON2_PARAMS = { algorithm: ARGON2ID, memoryCost: 19_456, timeCost: 2, parallelism: 1 } satisfies Options;

let common: Set<string> | undefined;
function commonPasswords(): Set<string> {
  common ??= new Set(
    readFileSync(new URL('./common-passwords.txt', import.meta.url), 'utf8')
      .split('\n')
      .map((l) => l.trim())
      .filter(Boolean),
  );
  return common;
}

/** Why the password is refused (a client-safe message that does not echo it), or null. */
export function passwordProblem(password: string, context: { email?: string } = {}): string | null {
  if (typeof password !== 'string') return 'Password is required';
  const length = [...password].length;
  if (length < PASSWORD_MIN_LENGTH) return `Password must be at least ${PASSWORD_MIN_LENGTH} characters`;
  if (length > PASSWORD_MAX_LENGTH) return `Password must be at most ${PASSWORD_MAX_LENGTH} characters`;
  const lower = password.normalize('NFKC').toLowerCase();
  const stripped = lower.replace(/[\d\W_]+$/u, '');
  const list = commonPasswords();
  if (list.has(lower) || (stripped.length >= 4 && list.has(stripped))) return 'Password is too common; choose another';
  if (/^(.)\1+$/u.test(lower)) return 'Password is too common; choose another';
  const local = context.email?.split('@')[0]?.toLowerCase();
  if (local && local.length >= 4 && lower.includes(local)) return 'Password must not contain your email address';
  return null;
}

export function hashPassword(password: string): Promise<string> {
  return hash(password, ARGON2_PARAMS);
}

/** Constant-work verification: a malformed stored hash counts as a mismatch. */
export async function verifyPassword(stored: string, password: string): Promise<boolean> {
  try {
    return await verify(stored, password);
  } catch {
    return false;
  }
}

/** True when the stored hash was made with weaker (or other) parameters than today's. */
export function needsRehash(stored: string): boolean {
  try {
    const o = parseOptions(stored);
    return (
      o.algorithm !== ARGON2_PARAMS.algorithm ||
      o.memoryCost < ARGON2_PARAMS.memoryCost ||
      o.timeCost < ARGON2_PARAMS.timeCost ||
      o.parallelism !== ARGON2_PARAMS.parallelism
    );
  } catch {
    return true;
  }
}

let dummy: Promise<string> | undefined;
/**
 * A hash of a random password with the same parameters: unknown users,
 * users without a password and deactivated users are verified against it, so
 * every failure costs one argon2id verification.
 */
export function dummyHash(): Promise<string> {
  dummy ??= hashPassword(randomBytes(24).toString('base64url'));
  return dummy;
}
