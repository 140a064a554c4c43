import type postgres from 'postgres';
import { fieldContext, type FieldCrypto } from '../../platform/crypto/index.js';
import { AppError } from '../../platform/errors.js';
import { sealSsn, ssnBlindIndex } from './service.js';
import { patients } from './tables.js';
import { parseSsn } from './validation.js';

/**
 * Migrating an existing plaintext SSN column of `patients` (e.g. `legacy_ssn`
 * added by a data load from an old system) to the encrypted columns, in
 * three steps that can each be re-run:
 *
 *  1. encrypt: batches of rows whose plaintext is set and whose envelope is
 *     not: validate, encrypt (ssn + ssn_last4 envelopes, blind index) and
 *     write the three columns with a compare-and-set (`ssn is null`), one
 *     transaction per batch, keyset by id: resumable and idempotent.
 *     Invalid values are counted (by row id) and left for a person to fix.
 *  2. verify: decrypt every envelope of a row that still has plaintext and
 *     compare it with the plaintext (and the blind index with a recomputed
 *     one). Reports mismatches by row id only.
 *  3. drop: only when verify finds no mismatch, no missing envelope and no
 *     invalid value: ALTER TABLE patients DROP COLUMN. The old values stay in
 *     the table's dead space, WAL and backups until rewritten: run
 *     VACUUM FULL patients (or pass vacuum: true) and let old backups expire.
 *
 * Connects as the database owner, which must bypass row level security
 * (superuser or BYPASSRLS): the tool works across tenants. Never logs or
 * returns a value.
 */

export interface LegacyOptions {
  /** owner connection (bypasses RLS) */
  owner: postgres.Sql;
  crypto: FieldCrypto;
  column: string;
  batchSize?: number;
  onProgress?: (p: Record<string, number>) => void;
}

const COLUMN = /^[a-z_][a-z0-9_]{0,62}$/;
const OWN_COLUMNS = new Set(['ssn', 'ssn_last4', 'ssn_index']);

async function checkColumn(owner: postgres.Sql, column: string): Promise<void> {
  if (!COLUMN.test(column) || OWN_COLUMNS.has(column)) throw new AppError('BAD_USER_INPUT', 'column must name a plaintext column of patients (not ssn, ssn_last4 or ssn_index)', { field: 'column' });
  const [c] = await owner<{ data_type: string }[]>`
    select data_type from information_schema.columns where table_schema = 'public' and table_name = 'patients' and column_name = ${column}`;
  if (!c) throw new AppError('NOT_FOUND', `patients has no column ${column}`);
  if (!['text', 'character varying', 'character'].includes(c.data_type)) throw new AppError('BAD_USER_INPUT', `${column} is not a text column`, { field: 'column' });
  const [r] = await owner<{ ok: boolean }[]>`select rolsuper or rolbypassrls as ok from pg_roles where rolname = current_user`;
  if (!r?.ok) throw new AppError('FORBIDDEN', 'the legacy SSN tool must connect as a role that bypasses row level security (it works across tenants)');
}

export interface EncryptResult {
  encrypted: number;
  invalid: number;
  /** ids of rows whose plaintext is not a valid SSN (fix them, then run encrypt again) */
  invalidIds: string[];
  /** rows changed meanwhile by the app (they already had an envelope): left alone */
  skipped: number;
}

export async function encryptLegacySsn(opts: LegacyOptions): Promise<EncryptResult> {
  await checkColumn(opts.owner, opts.column);
  const col = opts.owner(opts.column);
  const batchSize = Math.max(1, Math.min(opts.batchSize ?? 500, 5000));
  const result: EncryptResult = { encrypted: 0, invalid: 0, invalidIds: [], skipped: 0 };
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const rows = await opts.owner<{ id: string; tenant_id: string; plain: string }[]>`
      select id, tenant_id, ${col} as plain from patients
       where ${col} is not null and ssn is null and id > ${after}
       order by id limit ${batchSize}`;
    if (!rows.length) break;
    after = rows.at(-1)!.id;
    const sealed: { id: string; ssn: Buffer; ssnLast4: Buffer; ssnIndex: Buffer }[] = [];
    for (const r of rows) {
      let digits: string;
      try {
        digits = parseSsn(r.plain);
      } catch {
        result.invalid++;
        if (result.invalidIds.length < 1000) result.invalidIds.push(r.id);
        continue;
      }
      sealed.push({ id: r.id, ...(await sealSsn(opts.crypto, r.tenant_id, digits)) });
    }
    if (sealed.length) {
      await opts.owner.begin(async (tx) => {
        for (const s of sealed) {
          const done = await tx`
            update patients set ssn = ${s.ssn}, ssn_last4 = ${s.ssnLast4}, ssn_index = ${s.ssnIndex}
             where id = ${s.id} and ssn is null`;
          if (done.count === 1) result.encrypted++;
          else result.skipped++;
        }
      });
    }
    opts.onProgress?.({ encrypted: result.encrypted, invalid: result.invalid, skipped: result.skipped });
  }
  return result;
}

export interface VerifyResult {
  checked: number;
  /** rows with plaintext but no envelope (encrypt not run, or invalid values) */
  missing: number;
  /** envelope or blind index disagrees with the plaintext */
  mismatched: number;
  mismatchedIds: string[];
}

export async function verifyLegacySsn(opts: LegacyOptions): Promise<VerifyResult> {
  await checkColumn(opts.owner, opts.column);
  const col = opts.owner(opts.column);
  const batchSize = Math.max(1, Math.min(opts.batchSize ?? 500, 5000));
  const result: VerifyResult = { checked: 0, missing: 0, mismatched: 0, mismatchedIds: [] };
  let after = '00000000-0000-0000-0000-000000000000';
  for (;;) {
    const rows = await opts.owner<{ id: string; tenant_id: string; plain: string; ssn: Buffer | null; ssn_last4: Buffer | null; ssn_index: Buffer | null }[]>`
      select id, tenant_id, ${col} as plain, ssn, ssn_last4, ssn_index from patients
       where ${col} is not null and id > ${after} order by id limit ${batchSize}`;
    if (!rows.length) break;
    after = rows.at(-1)!.id;
    for (const r of rows) {
      result.checked++;
      if (!r.ssn || !r.ssn_last4 || !r.ssn_index) {
        result.missing++;
        continue;
      }
      let ok = false;
      try {
        const digits = parseSsn(r.plain);
        const [full, last4, index] = await Promise.all([
          opts.crypto.decrypt(r.ssn, fieldContext(patients, 'ssn', r.tenant_id)),
          opts.crypto.decrypt(r.ssn_last4, fieldContext(patients, 'ssnLast4', r.tenant_id)),
          ssnBlindIndex(opts.crypto, r.tenant_id, digits).then((b) => b.toString('hex')),
        ]);
        ok = full === digits && last4 === digits.slice(-4) && index === r.ssn_index.toString('hex');
      } catch {
        ok = false;
      }
      if (!ok) {
        result.mismatched++;
        if (result.mismatchedIds.length < 1000) result.mismatchedIds.push(r.id);
      }
    }
    opts.onProgress?.({ checked: result.checked, missing: result.missing, mismatched: result.mismatched });
  }
  return result;
}

export interface DropResult {
  dropped: boolean;
  verify: VerifyResult;
  vacuumed: boolean;
}

/** Drops the plaintext column once verify is clean; refuses otherwise (nothing changes). */
export async function dropLegacySsn(opts: LegacyOptions & { vacuum?: boolean }): Promise<DropResult> {
  const verify = await verifyLegacySsn(opts);
  if (verify.missing || verify.mismatched) return { dropped: false, verify, vacuumed: false };
  await opts.owner.unsafe(`alter table patients drop column "${opts.column}"`);
  if (opts.vacuum) await opts.owner.unsafe('vacuum (full, analyze) patients');
  return { dropped: true, verify, vacuumed: !!opts.vacuum };
}
