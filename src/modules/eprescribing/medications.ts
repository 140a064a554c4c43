import { and, asc, eq, sql } from 'drizzle-orm';
import type { Db } from '../../platform/db/index.js';
import { badInput, conflict, notFound } from '../../platform/errors.js';
import { resourceExists } from '../../platform/access/index.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { findDrug } from './prescriptions.js';
import { searchDrugPage } from './catalog/lookup.js';
import { dateArg } from '../../platform/args.js';
import { intArg, principalOf, requirePatientAccess, textArg, userIdOf, uuidArg } from './rx-common.js';
import {
  ALLERGEN_KINDS,
  ALLERGY_SEVERITIES,
  ALLERGY_STATUSES,
  ALLERGY_TYPES,
  MEDICATION_SOURCES,
  MEDICATION_STATUSES,
  rxDrugClasses,
  rxDrugs,
  rxIngredients,
  rxPatientAllergies,
  rxPatientMedications,
  type AllergenKind,
  type AllergySeverity,
  type AllergyStatus,
  type MedicationSource,
  type MedicationStatus,
  type PatientAllergy,
  type PatientMedication,
  type RxDrug,
} from './tables.js';

/**
 * A patient's medication list and drug allergies (PHI): read with rx:medication:read / rx:allergy:read and the patients
 * module's clinical:read scope for the patient, written with the :write permissions and clinical:write. An id of
 * another tenant (patient, entry) is NOT_FOUND before any access rule. Every read and write is audited through the
 * GraphQL fields (phi) and the entries' own records; entries are never deleted: they change status
 * (entered_in_error for a mistake) and carry a version for optimistic concurrency.
 */

const oneOf = <T extends string>(values: readonly T[], v: unknown, field: string): T => {
  if (typeof v !== 'string' || !values.includes(v as T)) throw badInput(`${field} must be one of ${values.join(', ')}`, field);
  return v as T;
};
/** medication and allergy dates: a day that exists, 1900 to 2200 */
const DATES = { min: '1900-01-01', max: '2200-12-31' };

async function patientIn(scope: RequestScope, db: Db, patientArg: unknown, action: 'clinical:read' | 'clinical:write', resourceType: string): Promise<string> {
  const patientId = uuidArg(patientArg, 'patientId');
  if (!(await resourceExists(scope, 'patient', db, patientId))) throw notFound('Patient');
  await requirePatientAccess(scope, db, patientId, action, resourceType);
  return patientId;
}

// ------------------------------------------------------------------ medication list

/** `drug` is null for a free-text entry (`drugText`), which the safety checks cannot match */
export type MedicationEntry = PatientMedication & { drug: RxDrug | null };

async function withDrugs(db: Db, rows: PatientMedication[]): Promise<MedicationEntry[]> {
  const ids = [...new Set(rows.map((r) => r.drugRxcui).filter((x): x is string => x !== null))];
  if (!ids.length) return rows.map((r) => ({ ...r, drug: null }));
  const drugs = await db.select().from(rxDrugs).where(sql`${rxDrugs.rxcui} in (${sql.join(ids.map((x) => sql`${x}`), sql`, `)})`);
  const byId = new Map(drugs.map((d) => [d.rxcui, d]));
  return rows.map((r) => ({ ...r, drug: r.drugRxcui === null ? null : byId.get(r.drugRxcui)! }));
}

export async function patientMedications(scope: RequestScope, args: { patientId: unknown; includeInactive?: unknown }): Promise<MedicationEntry[]> {
  const p = principalOf(scope, 'rx:medication:read');
  const db = await scope.db();
  const patientId = await patientIn(scope, db, args.patientId, 'clinical:read', 'MedicationStatement');
  const conds = [eq(rxPatientMedications.tenantId, p.tenantId), eq(rxPatientMedications.patientId, patientId)];
  if (args.includeInactive !== true) conds.push(sql`${rxPatientMedications.status} in ('active', 'on_hold')`);
  const rows = await db.select().from(rxPatientMedications).where(and(...conds)).orderBy(asc(rxPatientMedications.createdAt), asc(rxPatientMedications.id)).limit(500);
  return withDrugs(db, rows);
}

export interface MedicationInput {
  patientId: unknown;
  drugRxcui?: unknown;
  drugText?: unknown;
  sig?: unknown;
  doseAmount?: unknown;
  doseUnit?: unknown;
  frequencyPerDay?: unknown;
  startedOn?: unknown;
  source?: unknown;
  note?: unknown;
}

export async function addPatientMedication(scope: RequestScope, input: MedicationInput): Promise<MedicationEntry> {
  const p = principalOf(scope, 'rx:medication:write');
  const db = await scope.db();
  const patientId = await patientIn(scope, db, input.patientId, 'clinical:write', 'MedicationStatement');
  // a catalog drug or free text, exactly one
  const hasRxcui = input.drugRxcui !== undefined && input.drugRxcui !== null;
  const drugText = textArg(input.drugText, 'drugText', { max: 200, optional: true });
  if (hasRxcui === (drugText !== null)) throw badInput('Name the medication by drugRxcui (catalog) or drugText (free text), exactly one', 'drugRxcui');
  const drug = hasRxcui ? await findDrug(db, input.drugRxcui) : null;
  let doseAmount: number | null = null;
  if (input.doseAmount !== undefined && input.doseAmount !== null) {
    if (typeof input.doseAmount !== 'number' || !Number.isFinite(input.doseAmount) || input.doseAmount <= 0 || input.doseAmount > 10_000) throw badInput('doseAmount must be a positive number', 'doseAmount');
    doseAmount = input.doseAmount;
  }
  const [row] = await db
    .insert(rxPatientMedications)
    .values({
      tenantId: p.tenantId,
      patientId,
      drugRxcui: drug?.rxcui ?? null,
      drugText,
      source: input.source === undefined || input.source === null ? 'reported' : oneOf<MedicationSource>(MEDICATION_SOURCES, input.source, 'source'),
      sig: textArg(input.sig, 'sig', { max: 500, optional: true }),
      doseAmount,
      doseUnit: textArg(input.doseUnit, 'doseUnit', { max: 40, optional: true }),
      frequencyPerDay: intArg(input.frequencyPerDay, 'frequencyPerDay', 1, 48, true),
      startedOn: dateArg(input.startedOn, 'startedOn', DATES),
      note: textArg(input.note, 'note', { max: 1000, optional: true }),
      recordedBy: userIdOf(p),
    })
    .returning();
  return { ...row!, drug };
}

export async function setPatientMedicationStatus(scope: RequestScope, args: { id: unknown; version: unknown; status: unknown; stoppedOn?: unknown }): Promise<MedicationEntry> {
  const p = principalOf(scope, 'rx:medication:write');
  const db = await scope.db();
  const id = uuidArg(args.id, 'id');
  const version = intArg(args.version, 'version', 1, 1_000_000)!;
  const status = oneOf<MedicationStatus>(MEDICATION_STATUSES, args.status, 'status');
  const [current] = await db.select().from(rxPatientMedications).where(and(eq(rxPatientMedications.tenantId, p.tenantId), eq(rxPatientMedications.id, id))).for('update');
  if (!current) throw notFound('Medication');
  await requirePatientAccess(scope, db, current.patientId, 'clinical:write', 'MedicationStatement');
  if (current.version !== version) throw conflict('The medication entry was changed meanwhile; reload it');
  const stoppedOn = dateArg(args.stoppedOn, 'stoppedOn', DATES) ?? (status === 'stopped' || status === 'completed' ? new Date().toISOString().slice(0, 10) : current.stoppedOn);
  if (stoppedOn && current.startedOn && stoppedOn < current.startedOn) throw badInput('stoppedOn is before startedOn', 'stoppedOn');
  const [row] = await db
    .update(rxPatientMedications)
    .set({ status, stoppedOn, version: current.version + 1, updatedBy: userIdOf(p), updatedAt: new Date() })
    .where(and(eq(rxPatientMedications.tenantId, p.tenantId), eq(rxPatientMedications.id, id)))
    .returning();
  return (await withDrugs(db, [row!]))[0]!;
}

// ------------------------------------------------------------------ allergies

export async function patientAllergies(scope: RequestScope, args: { patientId: unknown; includeInactive?: unknown }): Promise<PatientAllergy[]> {
  const p = principalOf(scope, 'rx:allergy:read');
  const db = await scope.db();
  const patientId = await patientIn(scope, db, args.patientId, 'clinical:read', 'AllergyIntolerance');
  const conds = [eq(rxPatientAllergies.tenantId, p.tenantId), eq(rxPatientAllergies.patientId, patientId)];
  if (args.includeInactive !== true) conds.push(eq(rxPatientAllergies.status, 'active'));
  return db.select().from(rxPatientAllergies).where(and(...conds)).orderBy(asc(rxPatientAllergies.createdAt), asc(rxPatientAllergies.id)).limit(500);
}

export interface AllergyInput {
  patientId: unknown;
  allergenKind: unknown;
  allergenCode: unknown;
  type?: unknown;
  reaction?: unknown;
  severity: unknown;
  onsetOn?: unknown;
  note?: unknown;
}

/** The allergen's catalog name: a drug or an ingredient by RxCUI, or a class by id (BAD_USER_INPUT when unknown). */
async function allergenName(db: Db, kind: AllergenKind, code: unknown): Promise<{ code: string; name: string }> {
  if (typeof code !== 'string' || !code.trim() || code.length > 100) throw badInput('allergenCode is required', 'allergenCode');
  const c = code.trim();
  const [row] =
    kind === 'drug'
      ? await db.select({ name: rxDrugs.name }).from(rxDrugs).where(eq(rxDrugs.rxcui, c))
      : kind === 'ingredient'
        ? await db.select({ name: rxIngredients.name }).from(rxIngredients).where(eq(rxIngredients.rxcui, c))
        : await db.select({ name: rxDrugClasses.name }).from(rxDrugClasses).where(eq(rxDrugClasses.id, c));
  if (!row) throw badInput(`allergenCode names no ${kind} of the catalog`, 'allergenCode');
  return { code: c, name: row.name };
}

export async function addPatientAllergy(scope: RequestScope, input: AllergyInput): Promise<PatientAllergy> {
  const p = principalOf(scope, 'rx:allergy:write');
  const db = await scope.db();
  const patientId = await patientIn(scope, db, input.patientId, 'clinical:write', 'AllergyIntolerance');
  const kind = oneOf<AllergenKind>(ALLERGEN_KINDS, input.allergenKind, 'allergenKind');
  const allergen = await allergenName(db, kind, input.allergenCode);
  const [dup] = await db
    .select({ id: rxPatientAllergies.id })
    .from(rxPatientAllergies)
    .where(and(eq(rxPatientAllergies.tenantId, p.tenantId), eq(rxPatientAllergies.patientId, patientId), eq(rxPatientAllergies.allergenKind, kind), eq(rxPatientAllergies.allergenCode, allergen.code), eq(rxPatientAllergies.status, 'active')));
  if (dup) throw conflict('This allergy is already recorded for the patient');
  const [row] = await db
    .insert(rxPatientAllergies)
    .values({
      tenantId: p.tenantId,
      patientId,
      allergenKind: kind,
      allergenCode: allergen.code,
      allergenName: allergen.name,
      type: input.type === undefined || input.type === null ? 'allergy' : oneOf(ALLERGY_TYPES, input.type, 'type'),
      reaction: textArg(input.reaction, 'reaction', { max: 200, optional: true }),
      severity: oneOf<AllergySeverity>(ALLERGY_SEVERITIES, input.severity, 'severity'),
      onsetOn: dateArg(input.onsetOn, 'onsetOn', DATES),
      note: textArg(input.note, 'note', { max: 1000, optional: true }),
      recordedBy: userIdOf(p),
    })
    .returning();
  return row!;
}

export async function setPatientAllergyStatus(scope: RequestScope, args: { id: unknown; version: unknown; status: unknown }): Promise<PatientAllergy> {
  const p = principalOf(scope, 'rx:allergy:write');
  const db = await scope.db();
  const id = uuidArg(args.id, 'id');
  const version = intArg(args.version, 'version', 1, 1_000_000)!;
  const status = oneOf<AllergyStatus>(ALLERGY_STATUSES, args.status, 'status');
  const [current] = await db.select().from(rxPatientAllergies).where(and(eq(rxPatientAllergies.tenantId, p.tenantId), eq(rxPatientAllergies.id, id))).for('update');
  if (!current) throw notFound('Allergy');
  await requirePatientAccess(scope, db, current.patientId, 'clinical:write', 'AllergyIntolerance');
  if (current.version !== version) throw conflict('The allergy was changed meanwhile; reload it');
  const [row] = await db
    .update(rxPatientAllergies)
    .set({ status, version: current.version + 1, updatedBy: userIdOf(p), updatedAt: new Date() })
    .where(and(eq(rxPatientAllergies.tenantId, p.tenantId), eq(rxPatientAllergies.id, id)))
    .returning();
  return row!;
}

// ------------------------------------------------------------------ catalog search (reference data, not PHI)

/** Active drugs whose generic or brand name starts with `search` (case- and punctuation-insensitive), by name: the first page of catalog/lookup.ts's search. */
export async function searchDrugs(scope: RequestScope, args: { search: unknown; first?: unknown }): Promise<RxDrug[]> {
  return (await searchDrugPage(scope, args)).nodes;
}
