import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import path from 'node:path';
import { parse } from 'csv-parse';
import { and, eq, sql } from 'drizzle-orm';
import type postgres from 'postgres';
import type { FieldCrypto } from '../../platform/crypto/index.js';
import { withTenant, type Db } from '../../platform/db/index.js';
import { AppError } from '../../platform/errors.js';
import { emitEvent } from '../../platform/jobs/index.js';
import type { Logger } from '../../platform/logger.js';
import { nextMrns, possibleDuplicates, sealSsn } from './service.js';
import { patientImports, patients } from './tables.js';
import { phoneDigits, validatePatientFields, type PatientFields, type PatientFieldsInput } from './validation.js';

/**
 * Legacy CSV import (plaintext SSNs in, envelopes out).
 *
 * The file has a header row; columns (any order, unknown ones refused):
 *   given_name, family_name, date_of_birth (required), preferred_name,
 *   sex_at_birth, gender_identity, email, phone_mobile, phone_home,
 *   phone_work, address_line1, address_line2, city, state, postal_code,
 *   country, language, ssn, emergency_name, emergency_relationship,
 *   emergency_phone, insurance_payer, insurance_plan, insurance_member_id,
 *   insurance_group
 *
 * Rows are validated with the same rules as the API, encrypted and inserted
 * in batches; each batch commits together with the import's checkpoint (the
 * last physical line it covers) in patient_imports, so an interrupted import
 * started again on the same file (same SHA-256) resumes after that line and
 * never inserts a row twice. Rows whose SSN already belongs to a patient of
 * the tenant are refused as duplicates (POSSIBLE_DUPLICATE: the same rule as
 * createPatient, see possibleDuplicates in service.ts). Row errors are recorded with line
 * number, column and rule (never a value); nothing here logs a value.
 */

export const IMPORT_COLUMNS = [
  'given_name', 'family_name', 'date_of_birth', 'preferred_name', 'sex_at_birth', 'gender_identity', 'email',
  'phone_mobile', 'phone_home', 'phone_work', 'address_line1', 'address_line2', 'city', 'state', 'postal_code', 'country',
  'language', 'ssn', 'emergency_name', 'emergency_relationship', 'emergency_phone',
  'insurance_payer', 'insurance_plan', 'insurance_member_id', 'insurance_group',
] as const;
const REQUIRED = ['given_name', 'family_name', 'date_of_birth'] as const;
const MAX_STORED_ERRORS = 1000;

export interface RowError {
  line: number;
  /** CSV column (or "row" for a malformed line) */
  field: string;
  /** the rule that failed, e.g. "ssn has an area number that is never issued" (never the value) */
  code: string;
}

export interface ImportOptions {
  /** app pool (carebase_app): every write is tenant-scoped by RLS */
  sql: postgres.Sql;
  crypto: FieldCrypto;
  tenantId: string;
  file: string;
  log: Logger;
  batchSize?: number;
  /**
   * continue this earlier import (e.g. one that stopped at a malformed line)
   * with a corrected file: its checkpoint and counters carry over
   */
  continueImportId?: string;
  /** stop after this many batches (tests simulate an interruption) */
  maxBatches?: number;
  onProgress?: (p: ImportProgress) => void;
}

export interface ImportProgress {
  importId: string;
  status: 'running' | 'completed' | 'failed';
  checkpointLine: number;
  imported: number;
  rejected: number;
  /** the import had been started before and resumed after checkpointLine */
  resumed: boolean;
  errors: RowError[];
}

export async function sha256File(file: string): Promise<string> {
  const h = createHash('sha256');
  for await (const chunk of createReadStream(file)) h.update(chunk as Buffer);
  return h.digest('hex');
}

const nonEmpty = (v: string | undefined) => (v === undefined || v.trim() === '' ? undefined : v);

/** CSV record -> API-shaped fields (validation happens in validatePatientFields). */
export function recordToInput(r: Record<string, string>): PatientFieldsInput {
  const phones = (['mobile', 'home', 'work'] as const).flatMap((use) => {
    const n = nonEmpty(r[`phone_${use}`]);
    return n ? [{ use, number: n }] : [];
  });
  const hasAddress = ['address_line1', 'address_line2', 'city', 'state', 'postal_code'].some((k) => nonEmpty(r[k]));
  const hasEmergency = ['emergency_name', 'emergency_relationship', 'emergency_phone'].some((k) => nonEmpty(r[k]));
  const hasInsurance = ['insurance_payer', 'insurance_plan', 'insurance_member_id', 'insurance_group'].some((k) => nonEmpty(r[k]));
  const sex = nonEmpty(r.sex_at_birth)?.trim().toLowerCase();
  return {
    givenName: r.given_name ?? null,
    familyName: r.family_name ?? null,
    dateOfBirth: r.date_of_birth ?? null,
    preferredName: nonEmpty(r.preferred_name),
    sexAtBirth: sex === 'f' ? 'female' : sex === 'm' ? 'male' : sex === 'u' ? 'unknown' : sex,
    genderIdentity: nonEmpty(r.gender_identity),
    email: nonEmpty(r.email),
    phones: phones.length ? phones : undefined,
    address: hasAddress
      ? { line1: r.address_line1, line2: nonEmpty(r.address_line2), city: r.city, state: nonEmpty(r.state), postalCode: r.postal_code, country: nonEmpty(r.country) }
      : undefined,
    language: nonEmpty(r.language),
    emergencyContact: hasEmergency ? { name: r.emergency_name, relationship: r.emergency_relationship, phone: r.emergency_phone } : undefined,
    insurance: hasInsurance ? { payerName: r.insurance_payer, planName: nonEmpty(r.insurance_plan), memberId: r.insurance_member_id, groupNumber: nonEmpty(r.insurance_group) } : undefined,
    ssn: nonEmpty(r.ssn),
  };
}

/** API field path -> CSV column, for row errors. */
function csvColumn(field: string): string {
  const map: Record<string, string> = {
    givenName: 'given_name', familyName: 'family_name', dateOfBirth: 'date_of_birth', preferredName: 'preferred_name',
    sexAtBirth: 'sex_at_birth', genderIdentity: 'gender_identity', email: 'email', language: 'language', ssn: 'ssn',
    'address.line1': 'address_line1', 'address.line2': 'address_line2', 'address.city': 'city', 'address.state': 'state',
    'address.postalCode': 'postal_code', 'address.country': 'country',
    'emergencyContact.name': 'emergency_name', 'emergencyContact.relationship': 'emergency_relationship', 'emergencyContact.phone': 'emergency_phone',
    'insurance.payerName': 'insurance_payer', 'insurance.planName': 'insurance_plan', 'insurance.memberId': 'insurance_member_id', 'insurance.groupNumber': 'insurance_group',
  };
  const phone = /^phones\.(\d+)\./.exec(field);
  if (phone) return 'phone';
  return map[field] ?? field;
}

interface Pending {
  line: number;
  fields: PatientFields;
}

async function openImport(db: Db, tenantId: string, sha: string, fileName: string, continueId?: string) {
  if (continueId) {
    const [row] = await db
      .update(patientImports)
      .set({ fileSha256: sha, fileName, status: 'running', updatedAt: sql`now()` })
      .where(and(eq(patientImports.tenantId, tenantId), eq(patientImports.id, continueId)))
      .returning();
    if (!row) throw new AppError('NOT_FOUND', 'Import not found');
    return { row, resumed: true };
  }
  const [existing] = await db
    .select()
    .from(patientImports)
    .where(and(eq(patientImports.tenantId, tenantId), eq(patientImports.fileSha256, sha)));
  if (existing) return { row: existing, resumed: true };
  const [row] = await db.insert(patientImports).values({ tenantId, fileSha256: sha, fileName }).returning();
  return { row: row!, resumed: false };
}

/** Imports (or resumes importing) one CSV file into a tenant. */
export async function importPatientsCsv(opts: ImportOptions): Promise<ImportProgress> {
  const batchSize = Math.max(1, Math.min(opts.batchSize ?? 500, 5000));
  const sha = await sha256File(opts.file);
  const fileName = path.basename(opts.file).slice(0, 200);
  const { row: imp, resumed } = await withTenant(opts.sql, opts.tenantId, (db) => openImport(db, opts.tenantId, sha, fileName, opts.continueImportId));
  const progress: ImportProgress = {
    importId: imp.id,
    status: imp.status,
    checkpointLine: imp.checkpointLine,
    imported: imp.imported,
    rejected: imp.rejected,
    resumed,
    errors: [...imp.errors],
  };
  if (imp.status === 'completed') return progress;
  progress.status = 'running';
  opts.log.info({ importId: imp.id, tenantId: opts.tenantId, resumed, checkpointLine: imp.checkpointLine }, 'patients import: started');

  const parser = createReadStream(opts.file).pipe(
    parse({ columns: true, bom: true, skip_empty_lines: true, trim: false, info: true, relax_column_count: false, max_record_size: 64 * 1024 }),
  );
  let pending: Pending[] = [];
  let newErrors: RowError[] = [];
  let lastLine = imp.checkpointLine;
  let batches = 0;
  let headerChecked = false;

  const flush = async () => {
    if (!pending.length && !newErrors.length && lastLine === progress.checkpointLine) return;
    const batch = pending;
    const errs = newErrors;
    pending = [];
    newErrors = [];
    // encrypt outside the transaction (KMS); a KMS failure leaves this batch uncommitted and the checkpoint where it was
    const sealed = await Promise.all(
      batch.map(async (b) => ({ b, ssnCols: b.fields.ssn ? await sealSsn(opts.crypto, opts.tenantId, b.fields.ssn) : null })),
    );
    const result = await withTenant(opts.sql, opts.tenantId, async (db) => {
      // the duplicate rule of createPatient (possibleDuplicates): an SSN already in the clinic (or twice in this batch)
      // is refused, not inserted; such a row is registered through createPatient with duplicateOverrideReason, if at all
      const indexes = sealed.flatMap((s) => (s.ssnCols ? [s.ssnCols.ssnIndex] : []));
      const taken = new Set<string>((await possibleDuplicates(db, opts.tenantId, indexes)).keys());
      const insertable: typeof sealed = [];
      const dupErrors: RowError[] = [];
      for (const s of sealed) {
        const key = s.ssnCols?.ssnIndex.toString('hex');
        if (key && taken.has(key)) {
          dupErrors.push({ line: s.b.line, field: 'ssn', code: 'POSSIBLE_DUPLICATE: ssn already belongs to a patient of this clinic (duplicate)' });
          continue;
        }
        if (key) taken.add(key);
        insertable.push(s);
      }
      let ids: string[] = [];
      if (insertable.length) {
        const mrns = await nextMrns(db, opts.tenantId, insertable.length);
        const inserted = await db
          .insert(patients)
          .values(
            insertable.map(({ b, ssnCols }, i) => {
              const { ssn: _s, phones, ...f } = b.fields;
              return {
                ...f,
                tenantId: opts.tenantId,
                mrn: mrns[i]!,
                givenName: f.givenName!,
                familyName: f.familyName!,
                dateOfBirth: f.dateOfBirth!,
                phones: phones ?? [],
                phoneDigits: [...new Set((phones ?? []).map((p) => phoneDigits(p.number)))],
                ...(ssnCols ?? {}),
              };
            }),
          )
          .returning({ id: patients.id });
        ids = inserted.map((r) => r.id);
        for (const id of ids) await emitEvent(db, { type: 'patient.created', tenantId: opts.tenantId, aggregateId: id, payload: { patientId: id, importId: imp.id } });
      }
      const allErrors = [...errs, ...dupErrors].sort((a, b) => a.line - b.line);
      const [updated] = await db
        .update(patientImports)
        .set({
          checkpointLine: lastLine,
          imported: sql`${patientImports.imported} + ${ids.length}`,
          rejected: sql`${patientImports.rejected} + ${allErrors.length}`,
          errors: sql`(select coalesce(jsonb_agg(x.v), '[]'::jsonb) from (select e.value as v from jsonb_array_elements(${patientImports.errors} || ${JSON.stringify(allErrors)}::text::jsonb) as e limit ${MAX_STORED_ERRORS}) x)`,
          updatedAt: sql`now()`,
        })
        .where(and(eq(patientImports.tenantId, opts.tenantId), eq(patientImports.id, imp.id)))
        .returning();
      return { updated: updated!, allErrors };
    });
    progress.checkpointLine = result.updated.checkpointLine;
    progress.imported = result.updated.imported;
    progress.rejected = result.updated.rejected;
    progress.errors.push(...result.allErrors);
    batches++;
    opts.onProgress?.({ ...progress });
    opts.log.info({ importId: imp.id, checkpointLine: progress.checkpointLine, imported: progress.imported, rejected: progress.rejected }, 'patients import: batch committed');
  };

  try {
    for await (const { record, info } of parser as AsyncIterable<{ record: Record<string, string>; info: { lines: number } }>) {
      if (!headerChecked) {
        headerChecked = true;
        const cols = Object.keys(record);
        const unknown = cols.filter((c) => !(IMPORT_COLUMNS as readonly string[]).includes(c));
        const missing = REQUIRED.filter((c) => !cols.includes(c));
        if (unknown.length || missing.length) {
          throw new AppError('BAD_USER_INPUT', `CSV header: ${missing.length ? `missing ${missing.join(', ')}` : ''}${missing.length && unknown.length ? '; ' : ''}${unknown.length ? `unknown columns ${unknown.join(', ')}` : ''}`);
        }
      }
      // info.lines: the physical line where this record ends (records may span lines inside quotes)
      const line = info.lines;
      if (line <= imp.checkpointLine) continue;
      try {
        pending.push({ line, fields: validatePatientFields(recordToInput(record), 'create') });
      } catch (e) {
        if (!(e instanceof AppError)) throw e;
        const field = String((e.extensions as { field?: unknown }).field ?? 'row');
        newErrors.push({ line, field: csvColumn(field), code: e.message });
      }
      lastLine = line;
      if (pending.length + newErrors.length >= batchSize) {
        await flush();
        if (opts.maxBatches && batches >= opts.maxBatches) return progress;
      }
    }
    await flush();
  } catch (e) {
    // csv-parse messages quote the offending text: keep only its code and line
    const err = e as { code?: string; lines?: number };
    if (err.code && err.code.startsWith('CSV_')) {
      // the valid rows before the malformed line are kept; `continueImportId` picks up after them
      await flush();
      progress.status = 'failed';
      progress.errors.push({ line: (err.lines ?? lastLine) || 0, field: 'row', code: `malformed CSV (${err.code})` });
      await withTenant(opts.sql, opts.tenantId, (db) =>
        db
          .update(patientImports)
          .set({ status: 'failed', errors: sql`${patientImports.errors} || ${JSON.stringify(progress.errors.slice(-1))}::text::jsonb`, updatedAt: sql`now()` })
          .where(and(eq(patientImports.tenantId, opts.tenantId), eq(patientImports.id, imp.id))),
      );
      opts.log.warn({ importId: imp.id, csvError: err.code, line: err.lines }, 'patients import: malformed CSV, stopped');
      return progress;
    }
    throw e;
  }
  await withTenant(opts.sql, opts.tenantId, (db) =>
    db
      .update(patientImports)
      .set({ status: 'completed', updatedAt: sql`now()` })
      .where(and(eq(patientImports.tenantId, opts.tenantId), eq(patientImports.id, imp.id))),
  );
  progress.status = 'completed';
  opts.log.info({ importId: imp.id, imported: progress.imported, rejected: progress.rejected }, 'patients import: completed');
  return progress;
}
