import { randomUUID } from 'node:crypto';
import { and, asc, eq, getColumns, inArray, ne, sql } from 'drizzle-orm';
import { fieldContext, normalisers, type FieldCrypto } from '../../platform/crypto/index.js';
import type postgres from 'postgres';
import type { Db } from '../../platform/db/index.js';
import { AppError, badInput, conflict, ErrorCode, forbidden, notFound } from '../../platform/errors.js';
import { emitEvent } from '../../platform/jobs/index.js';
import type { Principal, RequestContext } from '../../schema/index.js';
import { users } from '../identity/index.js';
import { authorize, patientAccess, requirePrincipal } from './access.js';
import { formatMrn } from './mrn.js';
import { maskProfileFor, scopesFor, type MaskProfile } from './policy.js';
import { CARE_TEAM_ROLES, patientCareTeam, patientDuplicateOverrides, patientMerges, patientMrnCounters, patients, patientSsnReveals, type CareTeamRole, type PatientStatus } from './tables.js';
import { formatSsn, parseDate, phoneDigits, validatePatientFields, type PatientFields, type PatientFieldsInput } from './validation.js';

/** What the module's services need besides the request: field encryption (the app's shared FieldCrypto). */
export interface PatientsRuntime {
  crypto: FieldCrypto;
  /** a small pool of the module's own (app role) for MRN allocation, outside the request's transaction */
  mrnPool: postgres.Sql;
}

const { ssn: _ssn, ssnIndex: _ssnIndex, ...readColumns } = getColumns(patients);
/** The columns a read may select: everything but the full SSN envelope and its blind index (readColumnsFor picks from them). */
export const patientReadColumns = { ...readColumns, hasSsn: sql<boolean>`(${patients.ssnIndex} is not null)` };
type Column = keyof typeof patientReadColumns;

/**
 * The columns each Patient field reads (besides `id` and `tenant_id`, which every read fetches). A read (one patient,
 * a search page) fetches only the columns of the fields its selection names: a 20-result search of names and dates of birth leaves the JSON
 * documents, the SSN envelope, the timestamps and the rest in the table (less for PostgreSQL to send, for Node to parse
 * and collect). A field missing here (one another module adds to Patient) makes the read fetch every column.
 */
const COLUMNS_OF_FIELD: Record<string, readonly Column[]> = {
  __typename: [],
  id: [],
  mrn: ['mrn'],
  givenName: ['givenName'],
  familyName: ['familyName'],
  preferredName: ['preferredName'],
  dateOfBirth: ['dateOfBirth'],
  birthYear: ['dateOfBirth'],
  sexAtBirth: ['sexAtBirth'],
  genderIdentity: ['genderIdentity'],
  email: ['email'],
  phones: ['phones'],
  address: ['address'],
  language: ['language'],
  emergencyContact: ['emergencyContact'],
  insurance: ['insurance'],
  hasSsn: ['hasSsn'],
  ssnLast4: ['ssnLast4'],
  ssnMasked: ['ssnLast4'],
  status: ['status'],
  deceasedDate: ['deceasedDate'],
  mergedInto: ['mergedInto'],
  linkedUserId: ['userId'],
  careTeam: [],
  version: ['version'],
  createdAt: ['createdAt'],
  updatedAt: ['updatedAt'],
  masking: [],
};

/** The columns a read needs for the selected Patient fields (every read column when the selection is unknown). */
export function readColumnsFor(fields?: ReadonlySet<string>): Partial<typeof patientReadColumns> {
  if (!fields || [...fields].some((f) => !Object.hasOwn(COLUMNS_OF_FIELD, f))) return patientReadColumns;
  const keep = new Set<string>(['id', 'tenantId', ...[...fields].flatMap((f) => COLUMNS_OF_FIELD[f]!)]);
  return Object.fromEntries(Object.entries(patientReadColumns).filter(([k]) => keep.has(k))) as Partial<typeof patientReadColumns>;
}

export type PatientRecord = {
  [K in keyof typeof readColumns]: (typeof patients.$inferSelect)[K];
} & { hasSsn: boolean };

/** A patient as one viewer sees it: the record plus the viewer's masking profile. */
export interface PatientView {
  row: PatientRecord;
  mask: MaskProfile;
  /** createPatient went ahead although this existing patient has the same SSN (an audited override) */
  duplicateOf?: string;
  /** the same decryption once per request even if several fields need it */
  last4?: Promise<string | null>;
}

export function viewOf(ctx: RequestContext, row: PatientRecord): PatientView {
  return { row, mask: maskProfileFor(ctx.principal?.roles ?? []) };
}

/** Last 4 SSN digits of a view, decrypted on first use (null without an SSN). */
export function ssnLast4Of(rt: PatientsRuntime, v: PatientView): Promise<string | null> {
  v.last4 ??= v.row.ssnLast4 ? rt.crypto.decrypt(v.row.ssnLast4, fieldContext(patients, 'ssnLast4', v.row.tenantId)) : Promise.resolve(null);
  return v.last4;
}

export const SSN_COLUMNS_NULL = { ssn: null, ssnLast4: null, ssnIndex: null } as const;

/** Envelopes (full and last 4) and the blind index of a validated SSN (9 digits). KMS failures throw before any write. */
export async function sealSsn(crypto: FieldCrypto, tenantId: string, digits: string) {
  const [sealed, ssnIndex] = await Promise.all([
    crypto.encryptFields(patients, tenantId, { ssn: digits, ssnLast4: digits.slice(-4) }),
    ssnBlindIndex(crypto, tenantId, digits),
  ]);
  return { ssn: sealed.ssn, ssnLast4: sealed.ssnLast4, ssnIndex };
}

export function ssnBlindIndex(crypto: FieldCrypto, tenantId: string, digits: string): Promise<Buffer> {
  return crypto.blindIndex(digits, fieldContext(patients, 'ssn', tenantId), normalisers.ssn);
}

/** The column values of validated fields (phones with their search digits, SSN sealed). */
async function columnsOf(rt: PatientsRuntime, tenantId: string, f: PatientFields) {
  const { ssn, phones, ...rest } = f;
  const out: Record<string, unknown> = { ...rest };
  if (phones !== undefined) {
    out.phones = phones;
    out.phoneDigits = [...new Set(phones.map((p) => phoneDigits(p.number)))];
  }
  if (ssn !== undefined) Object.assign(out, ssn === null ? SSN_COLUMNS_NULL : await sealSsn(rt.crypto, tenantId, ssn));
  return out;
}

/**
 * Takes the tenant's next MRNs as one statement that is its own transaction
 * (carebase_next_mrns, on `pool`, never the request's connection): the counter
 * row is locked only inside the server, so concurrent registrations do not
 * queue on it for round trips or for each other's requests. MRNs are unique
 * and increasing, not gapless: a registration that fails afterwards leaves
 * its number unused. The allocation commits with synchronous_commit off,
 * which is safe: WAL is flushed in order, so the registration's own
 * (synchronous) commit also makes the counter durable, and a crash can never
 * hand out a number that a committed patient already has.
 */
export async function allocateMrns(pool: postgres.Sql, tenantId: string, count = 1): Promise<string[]> {
  const [row] = await pool<{ last: string }[]>`select carebase_next_mrns(${tenantId}, ${count}) as last`;
  return mrnRange(Number(row!.last), count);
}

const mrnRange = (last: number, count: number) => Array.from({ length: count }, (_, i) => formatMrn(last - count + 1 + i));

/** Takes the tenant's next MRNs inside `db`'s transaction (the counter row stays locked until it ends; batch imports). */
export async function nextMrns(db: Db, tenantId: string, count = 1): Promise<string[]> {
  const [c] = await db
    .insert(patientMrnCounters)
    .values({ tenantId, lastValue: count })
    .onConflictDoUpdate({ target: patientMrnCounters.tenantId, set: { lastValue: sql`${patientMrnCounters.lastValue} + ${count}` } })
    .returning({ last: patientMrnCounters.lastValue });
  return mrnRange(c!.last, count);
}

function events(db: Db, type: 'patient.created' | 'patient.updated' | 'patient.merged', tenantId: string, patientId: string, extra: Record<string, unknown> = {}) {
  // ids and numbers only: never a name, date or identifier of the patient
  return emitEvent(db, { type, tenantId, aggregateId: patientId, payload: { patientId, ...extra }, rooms: [`patient:${patientId}`] });
}

// ------------------------------------------------------------------ possible duplicates

/**
 * THE duplicate rule, one for every way in (createPatient, the CSV import):
 * a new record whose SSN (blind index) already belongs to a patient of the
 * clinic that is not itself merged is a possible duplicate. Takes a
 * transaction-scoped advisory lock per SSN first, so two registrations of
 * the same SSN cannot both pass the check. Returns SSN index (hex) ->
 * existing patient id.
 */
export async function possibleDuplicates(db: Db, tenantId: string, ssnIndexes: readonly Buffer[]): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (!ssnIndexes.length) return out;
  const keys = [...new Set(ssnIndexes.map((b) => b.toString('hex')))];
  // the first 8 bytes of an HMAC are as good a lock key as any; taken in order, so two batches cannot deadlock
  const locks = [...new Set(keys.map((k) => Buffer.from(k, 'hex').readBigInt64BE(0)))].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
  // the lock and the lookup go out in one write; PostgreSQL runs the lookup once the locks are held
  const [, rows] = await Promise.all([
    db.execute(sql`select pg_advisory_xact_lock(k) from unnest(${`{${locks.join(',')}}`}::bigint[]) as k order by k`),
    db
      .select({ id: patients.id, ix: patients.ssnIndex })
      .from(patients)
      .where(and(eq(patients.tenantId, tenantId), inArray(patients.ssnIndex, keys.map((k) => Buffer.from(k, 'hex'))), ne(patients.status, 'merged')))
      .orderBy(asc(patients.createdAt), asc(patients.id)),
  ]);
  for (const r of rows) if (!out.has(r.ix!.toString('hex'))) out.set(r.ix!.toString('hex'), r.id);
  return out;
}

/** An override reason: at least 10 characters once trimmed, at most 500 (BAD_USER_INPUT otherwise). */
function overrideReason(raw: string | null | undefined, field: string): string | undefined {
  if (raw === undefined || raw === null) return undefined;
  const reason = raw.trim().replace(/\s+/g, ' ');
  if (reason.length < 10) throw badInput('state the reason in at least 10 characters', field);
  if (reason.length > 500) throw badInput(`${field} must be at most 500 characters`, field);
  return reason;
}

// ------------------------------------------------------------------ create

export interface CreatePatientInput extends PatientFieldsInput {
  givenName: string;
  familyName: string;
  dateOfBirth: string;
  /** register anyway although it looks like a duplicate (kept for compliance, never logged) */
  duplicateOverrideReason?: string | null;
}

/** Care-team role a creator with care-team scope gets on the patient they create. */
function creatorCareTeamRole(p: Principal): CareTeamRole {
  return p.roles.includes('PROVIDER') ? 'provider' : p.roles.includes('NURSE') ? 'nurse' : 'other';
}

export async function createPatient(rt: PatientsRuntime, ctx: RequestContext, input: CreatePatientInput): Promise<PatientView> {
  const p = requirePrincipal(ctx);
  const scopes = scopesFor(p.roles, 'write');
  if (!p.permissions.has('patient:write') || !(scopes.has('tenant') || scopes.has('careTeam'))) throw forbidden();
  const { duplicateOverrideReason, ...patientInput } = input;
  const fields = validatePatientFields(patientInput, 'create');
  const override = overrideReason(duplicateOverrideReason, 'duplicateOverrideReason');
  const values = await columnsOf(rt, p.tenantId, fields);
  const db = await ctx.db();
  const ssnIndex = values.ssnIndex as Buffer | null | undefined;
  const duplicateOf = ssnIndex ? (await possibleDuplicates(db, p.tenantId, [ssnIndex])).values().next().value : undefined;
  if (duplicateOf && !override) {
    // the existing record's id only for a caller who may read it (a care-team-scoped caller learns that one exists)
    const readable = (await patientAccess.check(p, duplicateOf, 'read', db)).allowed;
    throw new AppError(ErrorCode.CONFLICT, 'A patient with the same SSN is already registered in this clinic: open that record, or register anyway with duplicateOverrideReason', {
      reason: 'POSSIBLE_DUPLICATE',
      field: 'ssn',
      existingPatientId: readable ? duplicateOf : null,
    });
  }
  const [mrn] = await allocateMrns(rt.mrnPool, p.tenantId);
  const actor = p.kind === 'user' ? p.id : null;
  // the id is made here so that the row, its event and its links go out in one write (PostgreSQL runs them in order)
  const id = randomUUID();
  const inserted = db
    .insert(patients)
    .values({ ...(values as object), id, tenantId: p.tenantId, mrn: mrn!, givenName: fields.givenName!, familyName: fields.familyName!, dateOfBirth: fields.dateOfBirth!, createdBy: actor, updatedBy: actor })
    .returning(patientReadColumns)
    .execute(); // started now: the row goes out before the statements that refer to it
  const work: Promise<unknown>[] = [inserted, events(db, 'patient.created', p.tenantId, id, duplicateOf && override ? { possibleDuplicateOf: duplicateOf } : {})];
  if (duplicateOf && override) {
    work.push(db.insert(patientDuplicateOverrides).values({ tenantId: p.tenantId, patientId: id, duplicateOf, actorId: actor, reason: override, requestId: ctx.requestId }));
  }
  // a provider or nurse who registers a patient is on their care team (else they could not read what they wrote)
  if (p.kind === 'user' && !scopes.has('tenant')) {
    work.push(db.insert(patientCareTeam).values({ tenantId: p.tenantId, patientId: id, userId: p.id, role: creatorCareTeamRole(p), addedBy: p.id }));
  }
  const [[row]] = (await Promise.all(work)) as [Awaited<typeof inserted>, ...unknown[]];
  return { ...viewOf(ctx, row as PatientRecord), ...(duplicateOf && override ? { duplicateOf } : {}) };
}

// ------------------------------------------------------------------ read

export async function getPatient(ctx: RequestContext, id: string, fields?: ReadonlySet<string>): Promise<PatientView> {
  const p = requirePrincipal(ctx);
  const db = await ctx.db();
  // the access check and the read are pipelined on the request's connection
  const [, rows] = await Promise.all([
    authorize(ctx, id, 'read'),
    db
      .select(readColumnsFor(fields) as typeof patientReadColumns)
      .from(patients)
      .where(and(eq(patients.tenantId, p.tenantId), eq(patients.id, id))),
  ]);
  const row = rows[0];
  if (!row) throw notFound('Patient');
  return viewOf(ctx, row as PatientRecord);
}

/** The patient record linked to the caller's account (PATIENT users). */
export async function myPatientRecord(ctx: RequestContext): Promise<PatientView | null> {
  const p = requirePrincipal(ctx);
  if (p.kind !== 'user') return null;
  const db = await ctx.db();
  const [row] = await db
    .select({ id: patients.id })
    .from(patients)
    .where(and(eq(patients.tenantId, p.tenantId), eq(patients.userId, p.id)));
  return row ? getPatient(ctx, row.id) : null;
}

// ------------------------------------------------------------------ update

export interface UpdatePatientInput extends PatientFieldsInput {
  status?: Exclude<PatientStatus, 'merged'> | null;
  deceasedDate?: string | null;
}

async function currentVersion(db: Db, tenantId: string, id: string) {
  const [cur] = await db
    .select({ version: patients.version, status: patients.status })
    .from(patients)
    .where(and(eq(patients.tenantId, tenantId), eq(patients.id, id)));
  return cur;
}

export async function updatePatient(rt: PatientsRuntime, ctx: RequestContext, id: string, expectedVersion: number, input: UpdatePatientInput): Promise<PatientView> {
  const p = requirePrincipal(ctx);
  if (!Number.isInteger(expectedVersion) || expectedVersion < 1) throw badInput('version must be the positive version you read', 'version');
  await authorize(ctx, id, 'write');
  const fields = validatePatientFields(input, 'update');
  const set: Record<string, unknown> = await columnsOf(rt, p.tenantId, fields);
  const db = await ctx.db();
  if (input.status !== undefined || input.deceasedDate !== undefined) {
    const status = input.status ?? undefined;
    if (input.status === null) throw badInput('status cannot be cleared', 'status');
    if (status !== undefined && !['active', 'inactive', 'deceased'].includes(status)) throw badInput('status must be ACTIVE, INACTIVE or DECEASED (merge with mergePatients)', 'status');
    if (status !== undefined) set.status = status;
    if (input.deceasedDate !== undefined && input.deceasedDate !== null) {
      if ((status ?? undefined) !== 'deceased') {
        const cur = await currentVersion(db, p.tenantId, id);
        if (status !== undefined || cur?.status !== 'deceased') throw badInput('deceasedDate requires status DECEASED', 'deceasedDate');
      }
      const dob = fields.dateOfBirth ?? (await db.select({ d: patients.dateOfBirth }).from(patients).where(and(eq(patients.tenantId, p.tenantId), eq(patients.id, id))))[0]?.d;
      set.deceasedDate = parseDate(input.deceasedDate, 'deceasedDate', { notBefore: dob });
    } else if (input.deceasedDate === null || (status !== undefined && status !== 'deceased')) {
      set.deceasedDate = null;
    }
  }
  set.version = sql`${patients.version} + 1`;
  set.updatedAt = sql`now()`;
  set.updatedBy = p.kind === 'user' ? p.id : null;
  const [row] = await db
    .update(patients)
    .set(set)
    .where(and(eq(patients.tenantId, p.tenantId), eq(patients.id, id), eq(patients.version, expectedVersion), ne(patients.status, 'merged')))
    .returning(patientReadColumns);
  if (!row) {
    const cur = await currentVersion(db, p.tenantId, id);
    if (!cur) throw notFound('Patient');
    if (cur.status === 'merged') throw conflict('This patient was merged into another record; update that record instead');
    throw new AppError(ErrorCode.CONFLICT, 'The patient was changed since you read it; reload and apply your change again', { currentVersion: cur.version });
  }
  await events(db, 'patient.updated', p.tenantId, id, { version: row.version });
  return viewOf(ctx, row as PatientRecord);
}

// ------------------------------------------------------------------ SSN reveal

/** Purposes for which a full SSN may be revealed (break-glass ETREAT, research and the like never). */
export const SSN_REVEAL_PURPOSES = ['TREAT', 'HPAYMT', 'HOPERAT', 'PATRQT', 'LEGAL'] as const;
export type SsnRevealPurpose = (typeof SSN_REVEAL_PURPOSES)[number];

export interface SsnReveal {
  revealId: string;
  patientId: string;
  ssn: string;
  revealedAt: Date;
}

const refused = (message: string, reason: string, field: string) => new AppError(ErrorCode.FORBIDDEN, message, { reason, field });

export async function revealSsn(
  rt: PatientsRuntime,
  ctx: RequestContext,
  input: { patientId: string; purpose?: string | null; reason?: string | null },
): Promise<SsnReveal> {
  const p = requirePrincipal(ctx);
  // stating why is part of the policy: a reveal without purpose or reason is refused (and audited as denied)
  if (!input.purpose) throw refused('A purpose of use is required to reveal an SSN', 'PURPOSE_REQUIRED', 'purpose');
  if (!(SSN_REVEAL_PURPOSES as readonly string[]).includes(input.purpose)) throw refused('This purpose of use does not allow revealing an SSN', 'PURPOSE_NOT_ALLOWED', 'purpose');
  const reason = (input.reason ?? '').trim().replace(/\s+/g, ' ');
  if (reason.length < 10) throw refused('State the reason for revealing the SSN in at least 10 characters', 'REASON_REQUIRED', 'reason');
  if (reason.length > 500) throw badInput('reason must be at most 500 characters', 'reason');
  await authorize(ctx, input.patientId, 'ssn:reveal');
  const db = await ctx.db();
  const [row] = await db
    .select({ ssn: patients.ssn })
    .from(patients)
    .where(and(eq(patients.tenantId, p.tenantId), eq(patients.id, input.patientId)));
  if (!row) throw notFound('Patient');
  if (!row.ssn) throw notFound('SSN');
  const digits = await rt.crypto.decrypt(row.ssn, fieldContext(patients, 'ssn', p.tenantId));
  const [rec] = await db
    .insert(patientSsnReveals)
    .values({ tenantId: p.tenantId, patientId: input.patientId, actorId: p.id, purposeOfUse: input.purpose, reason, requestId: ctx.requestId })
    .returning({ id: patientSsnReveals.id, at: patientSsnReveals.at });
  return { revealId: rec!.id, patientId: input.patientId, ssn: formatSsn(digits), revealedAt: rec!.at };
}

// ------------------------------------------------------------------ care team

export interface CareTeamMember {
  patientId: string;
  userId: string;
  role: CareTeamRole;
  displayName: string;
  addedAt: Date;
}

/** The user roles that may hold each care-team role. */
const CARE_TEAM_ELIGIBLE: Record<CareTeamRole, readonly string[]> = {
  primary_provider: ['PROVIDER'],
  provider: ['PROVIDER'],
  nurse: ['NURSE'],
  care_coordinator: ['PROVIDER', 'NURSE', 'FRONT_DESK', 'ADMIN'],
  other: ['PROVIDER', 'NURSE', 'FRONT_DESK', 'ADMIN', 'BILLING'],
};

export async function careTeamOf(db: Db, tenantId: string, patientIds: readonly string[]): Promise<CareTeamMember[]> {
  if (!patientIds.length) return [];
  return db
    .select({
      patientId: patientCareTeam.patientId,
      userId: patientCareTeam.userId,
      role: patientCareTeam.role,
      displayName: users.displayName,
      addedAt: patientCareTeam.addedAt,
    })
    .from(patientCareTeam)
    .innerJoin(users, and(eq(users.tenantId, patientCareTeam.tenantId), eq(users.id, patientCareTeam.userId)))
    .where(and(eq(patientCareTeam.tenantId, tenantId), inArray(patientCareTeam.patientId, [...patientIds])))
    .orderBy(asc(patientCareTeam.addedAt), asc(patientCareTeam.userId));
}

async function activeUser(db: Db, tenantId: string, userId: string) {
  const [u] = await db
    .select({ id: users.id, roles: users.roles, status: users.status })
    .from(users)
    .where(and(eq(users.tenantId, tenantId), eq(users.id, userId)));
  if (!u || u.status === 'deactivated') throw notFound('User');
  return u;
}

export async function assignCareTeamMember(ctx: RequestContext, input: { patientId: string; userId: string; role: CareTeamRole }): Promise<CareTeamMember[]> {
  const p = requirePrincipal(ctx);
  if (!(CARE_TEAM_ROLES as readonly string[]).includes(input.role)) throw badInput('role is not a care team role', 'role');
  await authorize(ctx, input.patientId, 'write');
  const db = await ctx.db();
  const [patient] = await db
    .select({ status: patients.status })
    .from(patients)
    .where(and(eq(patients.tenantId, p.tenantId), eq(patients.id, input.patientId)));
  if (!patient) throw notFound('Patient');
  if (patient.status === 'merged') throw conflict('This patient was merged into another record; update that record instead');
  const u = await activeUser(db, p.tenantId, input.userId);
  if (!u.roles.some((r) => CARE_TEAM_ELIGIBLE[input.role].includes(r))) {
    throw badInput(`this user's roles cannot hold the care team role ${input.role} (needs ${CARE_TEAM_ELIGIBLE[input.role].join(' or ')})`, 'userId');
  }
  await db
    .insert(patientCareTeam)
    .values({ tenantId: p.tenantId, patientId: input.patientId, userId: input.userId, role: input.role, addedBy: p.kind === 'user' ? p.id : null })
    .onConflictDoUpdate({ target: [patientCareTeam.tenantId, patientCareTeam.patientId, patientCareTeam.userId], set: { role: input.role } });
  await events(db, 'patient.updated', p.tenantId, input.patientId, { careTeamUserId: input.userId });
  return careTeamOf(db, p.tenantId, [input.patientId]);
}

export async function removeCareTeamMember(ctx: RequestContext, input: { patientId: string; userId: string }): Promise<CareTeamMember[]> {
  const p = requirePrincipal(ctx);
  await authorize(ctx, input.patientId, 'write');
  const db = await ctx.db();
  const removed = await db
    .delete(patientCareTeam)
    .where(and(eq(patientCareTeam.tenantId, p.tenantId), eq(patientCareTeam.patientId, input.patientId), eq(patientCareTeam.userId, input.userId)))
    .returning({ userId: patientCareTeam.userId });
  if (!removed.length) throw notFound('Care team member');
  await events(db, 'patient.updated', p.tenantId, input.patientId, { careTeamUserId: input.userId });
  return careTeamOf(db, p.tenantId, [input.patientId]);
}

// ------------------------------------------------------------------ patient account link

/** Links (or with userId null, unlinks) the PATIENT user account that may read this record. Tenant-wide writers only. */
export async function linkPatientUser(ctx: RequestContext, input: { patientId: string; userId: string | null }): Promise<PatientView> {
  const p = requirePrincipal(ctx);
  if (!scopesFor(p.roles, 'write').has('tenant')) throw forbidden('Only front desk and administrators link patient accounts');
  await authorize(ctx, input.patientId, 'write');
  const db = await ctx.db();
  if (input.userId) {
    const u = await activeUser(db, p.tenantId, input.userId);
    if (!u.roles.includes('PATIENT')) throw badInput('the user must have the PATIENT role', 'userId');
    const [other] = await db
      .select({ id: patients.id })
      .from(patients)
      .where(and(eq(patients.tenantId, p.tenantId), eq(patients.userId, input.userId), ne(patients.id, input.patientId)));
    if (other) throw conflict('This user account is already linked to another patient record');
  }
  const [row] = await db
    .update(patients)
    .set({ userId: input.userId, version: sql`${patients.version} + 1`, updatedAt: sql`now()`, updatedBy: p.kind === 'user' ? p.id : null })
    .where(and(eq(patients.tenantId, p.tenantId), eq(patients.id, input.patientId), ne(patients.status, 'merged')))
    .returning(patientReadColumns);
  if (!row) throw notFound('Patient');
  await events(db, 'patient.updated', p.tenantId, input.patientId, { version: row.version });
  return viewOf(ctx, row as PatientRecord);
}

// ------------------------------------------------------------------ merge

export interface MergeResult {
  target: PatientView;
  sourceId: string;
  mergeId: string;
}

/** Fields of the target that the source fills in when the target has none. */
const FILL_IN = ['preferredName', 'sexAtBirth', 'genderIdentity', 'email', 'address', 'language', 'emergencyContact', 'insurance'] as const;

/**
 * Merges a duplicate (source) into the record that stays (target): the
 * target keeps its values and gains what it lacks (contact fields, SSN,
 * phones), the care team and the account link move to the target, records
 * already merged into the source point to the target, and the source
 * becomes status merged with mergedInto = target. Nothing is deleted: the
 * source row, patient_merges and the audit log keep the trail. Other modules
 * redirect their own references on the `patient.merged` event.
 */
export async function mergePatients(
  ctx: RequestContext,
  input: { sourceId: string; targetId: string; sourceVersion: number; targetVersion: number; reason?: string | null },
): Promise<MergeResult> {
  const p = requirePrincipal(ctx);
  const reason = overrideReason(input.reason, 'reason');
  if (input.sourceId === input.targetId) throw badInput('a patient cannot be merged into itself', 'targetId');
  if (!scopesFor(p.roles, 'write').has('tenant')) throw forbidden('Only front desk and administrators merge patient records');
  await authorize(ctx, input.sourceId, 'write');
  await authorize(ctx, input.targetId, 'write');
  const db = await ctx.db();
  // lock both rows in id order (two concurrent merges of the same pair cannot deadlock)
  const rows = await db
    .select({ ...getColumns(patients) })
    .from(patients)
    .where(and(eq(patients.tenantId, p.tenantId), inArray(patients.id, [input.sourceId, input.targetId])))
    .orderBy(asc(patients.id))
    .for('update');
  const source = rows.find((r) => r.id === input.sourceId);
  const target = rows.find((r) => r.id === input.targetId);
  if (!source) throw notFound('Patient');
  if (!target) throw notFound('Patient');
  if (source.status === 'merged' || target.status === 'merged') throw conflict('A merged record cannot take part in another merge');
  if (source.version !== input.sourceVersion || target.version !== input.targetVersion) {
    throw new AppError(ErrorCode.CONFLICT, 'A patient was changed since you read it; reload and review the merge again', {
      sourceVersion: source.version,
      targetVersion: target.version,
    });
  }
  if (source.userId && target.userId && source.userId !== target.userId) {
    throw conflict('Both records are linked to different patient accounts; unlink one first');
  }

  const fill: Record<string, unknown> = {};
  for (const k of FILL_IN) if (target[k] === null && source[k] !== null) fill[k] = source[k];
  if (!target.ssn && source.ssn) Object.assign(fill, { ssn: source.ssn, ssnLast4: source.ssnLast4, ssnIndex: source.ssnIndex });
  const phones = [...target.phones];
  for (const ph of source.phones) if (!phones.some((x) => x.number === ph.number)) phones.push(ph);
  if (phones.length !== target.phones.length) Object.assign(fill, { phones: phones.slice(0, 10), phoneDigits: [...new Set(phones.slice(0, 10).map((x) => phoneDigits(x.number)))] });
  const moveLink = !!source.userId && !target.userId;

  const actor = p.kind === 'user' ? p.id : null;
  // the source first: it gives up its account link before the target takes it (unique per tenant)
  await db
    .update(patients)
    .set({ status: 'merged', mergedInto: target.id, mergedAt: sql`now()`, userId: null, version: sql`${patients.version} + 1`, updatedAt: sql`now()`, updatedBy: actor })
    .where(and(eq(patients.tenantId, p.tenantId), eq(patients.id, source.id)));
  const [teamMoved, , redirected] = await Promise.all([
    db.execute<{ n: number }>(sql`
      with moved as (
        insert into ${patientCareTeam} (tenant_id, patient_id, user_id, role, added_by, added_at)
        select tenant_id, ${target.id}, user_id, role, added_by, added_at from ${patientCareTeam}
         where tenant_id = ${p.tenantId} and patient_id = ${source.id}
        on conflict do nothing
        returning 1
      ), gone as (
        delete from ${patientCareTeam} where tenant_id = ${p.tenantId} and patient_id = ${source.id} returning 1
      )
      select (select count(*)::int from moved) as n, (select count(*) from gone) as removed`),
    db
      .update(patients)
      .set({ ...fill, ...(moveLink ? { userId: source.userId } : {}), version: sql`${patients.version} + 1`, updatedAt: sql`now()`, updatedBy: actor })
      .where(and(eq(patients.tenantId, p.tenantId), eq(patients.id, target.id))),
    db
      .update(patients)
      .set({ mergedInto: target.id })
      .where(and(eq(patients.tenantId, p.tenantId), eq(patients.mergedInto, source.id)))
      .returning({ id: patients.id }),
  ]);
  const moved = { careTeam: Number(teamMoved[0]?.n ?? 0), accountLink: moveLink ? 1 : 0, redirectedMerges: redirected.length, filledFields: Object.keys(fill).filter((k) => !['ssnLast4', 'ssnIndex', 'phoneDigits'].includes(k)).length };
  const [merge] = await db
    .insert(patientMerges)
    .values({ tenantId: p.tenantId, sourceId: source.id, targetId: target.id, actorId: actor, moved, reason: reason ?? null })
    .returning({ id: patientMerges.id });
  await events(db, 'patient.merged', p.tenantId, target.id, { mergedPatientId: source.id, mergeId: merge!.id });
  const [row] = await db
    .select(patientReadColumns)
    .from(patients)
    .where(and(eq(patients.tenantId, p.tenantId), eq(patients.id, target.id)));
  return { target: viewOf(ctx, row as PatientRecord), sourceId: source.id, mergeId: merge!.id };
}
