import { getColumns, getTableName, type Column, type InferSelectModel, type Table } from 'drizzle-orm';
import { customType } from 'drizzle-orm/pg-core';
import { CryptoError } from './errors.js';
import { isEnvelope } from './envelope.js';
import type { FieldContext } from './types.js';

/**
 * Drizzle side of field encryption. A table declares
 *
 *   ssn: encryptedColumn('ssn'),            // bytea holding one envelope
 *   ssnIndex: bytea('ssn_index'),           // optional blind index
 *
 * and a service converts with encryptFields/decryptFields (on FieldCrypto),
 * which derive the encryption context from the table and column names. The
 * column type only accepts envelopes, so plaintext cannot be written to it by
 * mistake; encryption itself is async (KMS) and so cannot live in the sync
 * drizzle mapping.
 */

declare const encryptedBrand: unique symbol;
/** A Buffer holding an envelope, as read from or written to an encrypted column. */
export type EncryptedValue = Buffer & { readonly [encryptedBrand]: true };

function toDriver(value: EncryptedValue): Buffer {
  if (!isEnvelope(value)) {
    throw new CryptoError('INVALID_INPUT', 'encrypted column: the value is not an envelope; encrypt it with encryptFields()');
  }
  return value;
}

function fromDriver(value: unknown): EncryptedValue {
  if (Buffer.isBuffer(value)) return value as EncryptedValue;
  if (value instanceof Uint8Array) return Buffer.from(value.buffer, value.byteOffset, value.byteLength) as EncryptedValue;
  if (typeof value === 'string' && value.startsWith('\\x')) return Buffer.from(value.slice(2), 'hex') as EncryptedValue;
  throw new CryptoError('INVALID_INPUT', 'encrypted column: unexpected driver value');
}

export const encryptedColumn = customType<{ data: EncryptedValue; driverData: Buffer }>({
  dataType: () => 'bytea',
  codec: 'bytea',
  toDriver,
  fromDriver,
  fromJson: fromDriver,
});

export function isEncryptedColumn(column: Column): boolean {
  return (column as unknown as { mapToDriverValue?: unknown }).mapToDriverValue === toDriver;
}

type Row<T extends Table> = InferSelectModel<T>;
/** Property names of `T`'s encrypted columns. */
export type EncryptedKeys<T extends Table> = {
  [K in keyof Row<T>]-?: NonNullable<Row<T>[K]> extends EncryptedValue ? K : never;
}[keyof Row<T>] &
  string;
type Sealed<X> = X extends string ? EncryptedValue : X;
type Opened<X> = X extends EncryptedValue ? string : X;
export type EncryptedFields<V> = { [K in keyof V]: Sealed<V[K]> };
export type DecryptedRow<T extends Table, R> = { [K in keyof R]: K extends EncryptedKeys<T> ? Opened<R[K]> : R[K] };

/** The encryption context of `table.key` for a tenant: SQL table and column names. */
export function fieldContext<T extends Table>(table: T, key: EncryptedKeys<T>, tenantId: string): FieldContext {
  const column = (getColumns(table) as Record<string, Column>)[key];
  if (!column || !isEncryptedColumn(column)) {
    throw new CryptoError('INVALID_INPUT', `${getTableName(table)}.${key} is not an encrypted column`);
  }
  return { tenantId, table: getTableName(table), column: column.name };
}

interface Codec {
  encrypt(value: string, ctx: FieldContext): Promise<Buffer>;
  decrypt(envelope: Buffer, ctx: FieldContext): Promise<string>;
}

export async function encryptFields<T extends Table, V extends { [K in EncryptedKeys<T>]?: string | null }>(
  codec: Codec,
  table: T,
  tenantId: string,
  values: V & { [K in Exclude<keyof V, EncryptedKeys<T>>]: never },
): Promise<EncryptedFields<V>> {
  const entries = await Promise.all(
    Object.entries(values as Record<string, string | null | undefined>).map(async ([key, value]) => {
      const ctx = fieldContext(table, key as EncryptedKeys<T>, tenantId);
      return [key, typeof value === 'string' ? await codec.encrypt(value, ctx) : value] as const;
    }),
  );
  return Object.fromEntries(entries) as EncryptedFields<V>;
}

export async function decryptFields<T extends Table, R extends Partial<Row<T>>>(
  codec: Codec,
  table: T,
  tenantId: string,
  row: R,
): Promise<DecryptedRow<T, R>> {
  const out: Record<string, unknown> = { ...row };
  const columns = getColumns(table) as Record<string, Column>;
  await Promise.all(
    Object.keys(out).map(async (key) => {
      const column = columns[key];
      const value = out[key];
      if (column && isEncryptedColumn(column) && Buffer.isBuffer(value)) {
        out[key] = await codec.decrypt(value, { tenantId, table: getTableName(table), column: column.name });
      }
    }),
  );
  return out as DecryptedRow<T, R>;
}
