import { createHmac } from 'node:crypto';
import { badInput } from '../errors.js';

/**
 * Blind indexes: HMAC-SHA256 over a normalised value, under a per-tenant key,
 * so equal values in one tenant's column match without decrypting, and the
 * same value in another tenant (or another column) gives an unrelated index.
 */

/** Turns user input into the canonical form that is indexed (and searched). */
export type Normaliser = (value: string) => string;

const digits = (v: string) => v.normalize('NFKC').replace(/\D/g, '');

export const normalisers = {
  /** as given (Unicode NFC only) */
  exact: (v: string) => v.normalize('NFC'),
  /** names and free text: NFKC, trimmed, inner whitespace collapsed, lower case */
  text: (v: string) => v.normalize('NFKC').trim().replace(/\s+/gu, ' ').toLowerCase(),
  /** e-mail: NFKC, trimmed, lower case */
  email: (v: string) => {
    const s = v.normalize('NFKC').trim().toLowerCase();
    if (!/^[^\s@]+@[^\s@]+$/.test(s)) throw badInput('must be an e-mail address');
    return s;
  },
  /** US SSN: digits only, exactly 9 ("123-45-6789" → "123456789") */
  ssn: (v: string) => {
    const d = digits(v);
    if (d.length !== 9) throw badInput('an SSN must have 9 digits');
    return d;
  },
  /** phone: digits only, 7 to 15 (E.164 without the plus) */
  phone: (v: string) => {
    const d = digits(v);
    if (d.length < 7 || d.length > 15) throw badInput('a phone number must have 7 to 15 digits');
    return d;
  },
  /** calendar date: YYYY-MM-DD */
  date: (v: string) => {
    const s = v.trim();
    const m = /^(\d{4})-(\d{2})-(\d{2})$/.exec(s);
    const d = m ? new Date(`${s}T00:00:00Z`) : undefined;
    if (!d || Number.isNaN(d.getTime()) || d.toISOString().slice(0, 10) !== s) throw badInput('a date must be YYYY-MM-DD');
    return s;
  },
} satisfies Record<string, Normaliser>;

/** The index of an already normalised value; table and column are mixed in so columns do not correlate. */
export function computeBlindIndex(key: Buffer, table: string, column: string, normalised: string): Buffer {
  return createHmac('sha256', key).update(`${table}\0${column}\0`, 'utf8').update(normalised, 'utf8').digest();
}

/**
 * Where each tenant's index key is kept, envelope-encrypted (an envelope like
 * any other field, context { tenantId, table: 'crypto_index_keys', column: 'key' }).
 */
export interface IndexKeyStore {
  get(tenantId: string): Promise<Buffer | undefined>;
  /** stores `envelope` unless the tenant has a key already; returns the stored envelope (first writer wins) */
  putIfAbsent(tenantId: string, envelope: Buffer): Promise<Buffer>;
}

/** In-process store, for tests and one-off tools: keys are lost at exit, so indexes made with it are too. */
export function createMemoryIndexKeyStore(): IndexKeyStore & { entries: Map<string, Buffer> } {
  const entries = new Map<string, Buffer>();
  return {
    entries,
    async get(tenantId) {
      return entries.get(tenantId);
    },
    async putIfAbsent(tenantId, envelope) {
      if (!entries.has(tenantId)) entries.set(tenantId, envelope);
      return entries.get(tenantId)!;
    },
  };
}
