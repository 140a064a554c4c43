import { randomBytes } from 'node:crypto';
import type { InferSelectModel, Table } from 'drizzle-orm';
import { computeBlindIndex, normalisers, type IndexKeyStore, type Normaliser } from './blind-index.js';
import {
  decryptFields,
  encryptFields,
  type DecryptedRow,
  type EncryptedFields,
  type EncryptedKeys,
  type EncryptedValue,
} from './column.js';
import { decodeEnvelope, open, seal } from './envelope.js';
import { CryptoError } from './errors.js';
import { KeyCache, type KeyCacheOptions } from './key-cache.js';
import { cryptoMetrics, type CryptoMetrics } from './metrics.js';
import { assertFieldContext, contextKey, toKmsContext, type DataKey, type FieldContext, type KeyProvider } from './types.js';

export interface FieldCryptoOptions {
  provider: KeyProvider;
  /** bounds for every key cache (data keys, unwrapped keys, index keys) */
  cache?: Partial<KeyCacheOptions>;
  /** where per-tenant blind-index keys live; required for blindIndex() */
  indexKeys?: IndexKeyStore;
  metrics?: CryptoMetrics;
}

export interface FieldCrypto {
  readonly provider: KeyProvider;
  /** One envelope for `value`, bound to `ctx`. */
  encrypt(value: string, ctx: FieldContext): Promise<EncryptedValue>;
  /** The value; CryptoError(DECRYPT_FAILED) if the envelope was tampered with or `ctx` differs. */
  decrypt(envelope: Buffer, ctx: FieldContext): Promise<string>;
  /** One envelope for binary content (a shared document's bytes), bound to `ctx`. */
  encryptBytes(value: Buffer, ctx: FieldContext): Promise<EncryptedValue>;
  /** The content of an envelope made by encryptBytes; CryptoError(DECRYPT_FAILED) if tampered with or `ctx` differs. */
  decryptBytes(envelope: Buffer, ctx: FieldContext): Promise<Buffer>;
  /** HMAC-SHA256 of normalise(value) under the tenant's index key (created on first use). */
  blindIndex(value: string, ctx: FieldContext, normalise?: Normaliser): Promise<Buffer>;
  /** Encrypts the given encrypted columns of `table` (null/undefined pass through). */
  encryptFields<T extends Table, V extends { [K in EncryptedKeys<T>]?: string | null }>(
    table: T,
    tenantId: string,
    values: V & { [K in Exclude<keyof V, EncryptedKeys<T>>]: never },
  ): Promise<EncryptedFields<V>>;
  /** A copy of `row` with every encrypted column of `table` in it decrypted. */
  decryptFields<T extends Table, R extends Partial<InferSelectModel<T>>>(table: T, tenantId: string, row: R): Promise<DecryptedRow<T, R>>;
  /** The master key an envelope's data key is wrapped under (no KMS call). */
  keyIdOf(envelope: Buffer): string;
  /** The envelope moved to the provider's current master key, or null if it is there already. */
  reencrypt(envelope: Buffer, ctx: FieldContext): Promise<EncryptedValue | null>;
  /** Zeroes and drops every cached key. Does not close the provider. */
  close(): void;
}

/** Context of the envelope that holds a tenant's blind-index key. */
export const INDEX_KEY_CONTEXT = { table: 'crypto_index_keys', column: 'key' } as const;

export function createFieldCrypto(opts: FieldCryptoOptions): FieldCrypto {
  const { provider } = opts;
  const metrics = opts.metrics ?? cryptoMetrics();
  const dataKeys = new KeyCache<DataKey>('data_key', opts.cache ?? {}, metrics);
  const unwrapped = new KeyCache<{ plaintext: Buffer }>('unwrapped_key', opts.cache ?? {}, metrics);
  const indexKeys = new KeyCache<{ plaintext: Buffer }>('index_key', opts.cache ?? {}, metrics);
  const ttlMs = opts.cache?.ttlMs ?? 300_000;
  const sweeper = setInterval(() => [dataKeys, unwrapped, indexKeys].forEach((c) => c.sweep()), Math.min(ttlMs, 60_000));
  sweeper.unref();

  async function encryptBytes(plaintext: Buffer, ctx: FieldContext): Promise<EncryptedValue> {
    assertFieldContext(ctx);
    const kms = toKmsContext(ctx);
    return dataKeys.use(
      contextKey(ctx),
      () => provider.generateDataKey(kms),
      (dk) => seal(dk.plaintext, dk.keyId, dk.wrapped, plaintext, kms) as EncryptedValue,
    );
  }

  async function decryptBytes(envelope: Buffer, ctx: FieldContext): Promise<Buffer> {
    assertFieldContext(ctx);
    const env = decodeEnvelope(envelope);
    const kms = toKmsContext(ctx);
    const cacheKey = `${env.keyId}\0${env.wrappedKey.toString('base64')}\0${contextKey(ctx)}`;
    return unwrapped.use(
      cacheKey,
      async () => ({ plaintext: await provider.decryptDataKey(env.keyId, Buffer.from(env.wrappedKey), kms) }),
      (key) => open(key.plaintext, env, kms),
    );
  }

  async function loadIndexKey(tenantId: string): Promise<{ plaintext: Buffer }> {
    const store = opts.indexKeys;
    if (!store) throw new CryptoError('INVALID_INPUT', 'blind index: no index key store configured');
    const ctx = { tenantId, ...INDEX_KEY_CONTEXT };
    let envelope = await store.get(tenantId);
    if (!envelope) {
      const fresh = randomBytes(32);
      try {
        envelope = await store.putIfAbsent(tenantId, await encryptBytes(fresh, ctx));
      } finally {
        fresh.fill(0);
      }
    }
    return { plaintext: await decryptBytes(envelope, ctx) };
  }

  const crypto: FieldCrypto = {
    provider,
    async encrypt(value, ctx) {
      if (typeof value !== 'string') throw new CryptoError('INVALID_INPUT', 'encrypt: value must be a string');
      const plaintext = Buffer.from(value, 'utf8');
      try {
        return await encryptBytes(plaintext, ctx);
      } finally {
        plaintext.fill(0);
      }
    },
    async decrypt(envelope, ctx) {
      const plaintext = await decryptBytes(envelope, ctx);
      const value = plaintext.toString('utf8');
      plaintext.fill(0);
      return value;
    },
    async encryptBytes(value, ctx) {
      if (!Buffer.isBuffer(value)) throw new CryptoError('INVALID_INPUT', 'encryptBytes: value must be a Buffer');
      return encryptBytes(value, ctx);
    },
    decryptBytes: (envelope, ctx) => decryptBytes(envelope, ctx),
    async blindIndex(value, ctx, normalise = normalisers.exact) {
      assertFieldContext(ctx);
      if (typeof value !== 'string') throw new CryptoError('INVALID_INPUT', 'blind index: value must be a string');
      const normalised = normalise(value);
      return indexKeys.use(
        ctx.tenantId,
        () => loadIndexKey(ctx.tenantId),
        (key) => computeBlindIndex(key.plaintext, ctx.table, ctx.column, normalised),
      );
    },
    encryptFields: (table, tenantId, values) => encryptFields(crypto, table, tenantId, values),
    decryptFields: (table, tenantId, row) => decryptFields(crypto, table, tenantId, row),
    keyIdOf: (envelope) => decodeEnvelope(envelope).keyId,
    async reencrypt(envelope, ctx) {
      const current = await provider.currentKeyId();
      if (decodeEnvelope(envelope).keyId === current) return null;
      const plaintext = await decryptBytes(envelope, ctx);
      try {
        let next = await encryptBytes(plaintext, ctx);
        if (decodeEnvelope(next).keyId !== current) {
          // the cached data key predates the master key change: drop it and generate one under the current key
          dataKeys.invalidate(contextKey(ctx));
          next = await encryptBytes(plaintext, ctx);
          if (decodeEnvelope(next).keyId !== current) {
            throw new CryptoError('UNKNOWN_KEY', 'reencrypt: the provider does not generate data keys under its current key');
          }
        }
        return next;
      } finally {
        plaintext.fill(0);
      }
    },
    close() {
      clearInterval(sweeper);
      dataKeys.clear();
      unwrapped.clear();
      indexKeys.clear();
    },
  };
  return crypto;
}
