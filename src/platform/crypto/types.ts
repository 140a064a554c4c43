import { CryptoError } from './errors.js';

/**
 * Where a value lives. It is the encryption context: bound to the wrapped
 * data key (KMS EncryptionContext) and to the ciphertext (GCM AAD), so a
 * value copied to another tenant, table or column does not decrypt. Ids and
 * names only, never PHI (KMS logs the context in CloudTrail).
 */
export interface FieldContext {
  tenantId: string;
  table: string;
  column: string;
}

/** KMS EncryptionContext: string keys and values. */
export type KmsContext = Readonly<Record<string, string>>;

/** A fresh data key: plaintext for local use, wrapped (by the master key) for storage. */
export interface DataKey {
  /** canonical id (for KMS: the key ARN) of the master key that wrapped it */
  keyId: string;
  plaintext: Buffer;
  wrapped: Buffer;
}

/**
 * The master-key holder. Implementations: AwsKmsKeyProvider (AWS KMS or the
 * local KMS test server) and LocalKeyProvider (a key file in DATA_DIR).
 * Plaintext master keys never leave the provider.
 */
export interface KeyProvider {
  readonly kind: 'aws-kms' | 'local';
  /** canonical id of the master key new data keys are wrapped under */
  currentKeyId(): Promise<string>;
  /** a new 256-bit data key, wrapped under the current master key and bound to `context` */
  generateDataKey(context: KmsContext): Promise<DataKey>;
  /** unwrap a data key; fails (CryptoError DECRYPT_FAILED) when `context` differs from the one it was wrapped with */
  decryptDataKey(keyId: string, wrapped: Buffer, context: KmsContext): Promise<Buffer>;
  close(): void;
}

const TENANT_ID = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$/;
const SQL_NAME = /^[a-z_][a-z0-9_]{0,62}$/;

/** Throws CryptoError(INVALID_INPUT) unless the context is ids and SQL names only. */
export function assertFieldContext(ctx: FieldContext): void {
  if (typeof ctx?.tenantId !== 'string' || !TENANT_ID.test(ctx.tenantId)) {
    throw new CryptoError('INVALID_INPUT', 'encryption context: tenantId must be an id');
  }
  if (typeof ctx.table !== 'string' || !SQL_NAME.test(ctx.table)) {
    throw new CryptoError('INVALID_INPUT', 'encryption context: table must be an SQL name');
  }
  if (typeof ctx.column !== 'string' || !SQL_NAME.test(ctx.column)) {
    throw new CryptoError('INVALID_INPUT', 'encryption context: column must be an SQL name');
  }
}

export const toKmsContext = (ctx: FieldContext): KmsContext => ({
  tenantId: ctx.tenantId,
  table: ctx.table,
  column: ctx.column,
});

/** Unambiguous (validated parts contain no NUL) cache key for a context. */
export const contextKey = (ctx: FieldContext): string => `${ctx.tenantId}\0${ctx.table}\0${ctx.column}`;

/** Canonical bytes of a KMS context (sorted keys), used as AAD. */
export function contextBytes(context: KmsContext): Buffer {
  const sorted = Object.keys(context)
    .sort()
    .map((k) => [k, context[k]]);
  return Buffer.from(JSON.stringify(sorted), 'utf8');
}
