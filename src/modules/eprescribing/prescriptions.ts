import { randomBytes } from 'node:crypto';
import { and, desc, eq, inArray, lt, or, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../../platform/db/index.js';
import { resourceExists } from '../../platform/access/index.js';
import { AppError, ErrorCode, badInput, conflict, forbidden, notFound } from '../../platform/errors.js';
import { emitEvent } from '../../platform/jobs/index.js';
import type { RequestScope, ScopePrincipal } from '../../platform/scope/index.js';
import { patientAccess, patients } from '../patients/index.js';
import { findPharmacy, findPrescriber, prescriberOfUser } from './directory.js';
import { newMessageId, type NetworkExchange } from './network/adapter.js';
import {
  PRESCRIPTION_STATUSES,
  rxPrescriptionEvents,
  rxPrescriptions,
  rxScriptMessages,
  type Pharmacy,
  type Prescriber,
  type Prescription,
  type PrescriptionStatus,
} from './prescription-tables.js';
import {
  actorOf,
  asAccessPrincipal,
  badInputWith,
  forbiddenWith,
  intArg,
  isoDate,
  lifecycleOf,
  principalOf,
  requirePatientAccess,
  textArg,
  userIdOf,
  uuidArg,
} from './rx-common.js';
import { QUANTITY_UNIT_NCI, type ScriptMedication, type ScriptMessage, type ScriptPatient, type ScriptPharmacy, type ScriptPrescriber } from './script/index.js';
import { rxDrugs, type RxDrug } from './tables.js';

/**
 * The prescription lifecycle:
 *
 *   draft -> checked -> signed -> transmitted -> accepted -> dispensed
 *                                       \-> error      \-> cancel_requested -> cancelled
 *
 * - update: draft | checked -> draft (a changed prescription is checked again)
 * - check: draft | checked -> checked (the module's safety checks; a major or
 *   contraindicated alert needs an override reason, recorded and audited)
 * - sign: checked -> signed, by its prescriber (controlled substances: EPCS,
 *   epcs.ts: DEA schedule, two-admin access, two factors, attestation, key)
 * - transmit: signed | error -> transmitted (NewRx to the network), then
 *   accepted (Status 010) or error (Error) from the network's answer
 * - fill (RxFill from the pharmacy): transmitted | accepted | dispensed -> dispensed
 * - cancel: draft | checked | signed | error -> cancelled (never left Carebase);
 *   transmitted | accepted | dispensed -> cancel_requested (CancelRx), then
 *   cancelled (CancelRxResponse approved) or back (denied)
 *
 * Anything else is INVALID_STATE_TRANSITION and changes nothing. Every
 * change writes a history row, an outbox event (ids only) to the rooms
 * prescription:<id>, rxQueue:<prescriber user> and patient:<patient>, and an
 * audit entry, in the caller's transaction.
 */

export type PrescriptionAction =
  | 'create'
  | 'update'
  | 'check'
  | 'sign'
  | 'transmit'
  | 'accept'
  | 'reject'
  | 'fill'
  | 'partialFill'
  | 'notDispensed'
  | 'discard'
  | 'requestCancel'
  | 'cancelApproved'
  | 'cancelDenied'
  | 'renewalRequested'
  | 'renewalApproved'
  | 'renewalDenied'
  | 'changeRequested'
  | 'changeApproved'
  | 'changeDenied'
  | 'priorAuth';

/** Where each action may start, and where it leads (undefined: the status stays). */
export const TRANSITIONS: Readonly<Partial<Record<PrescriptionAction, { from: readonly PrescriptionStatus[]; to?: PrescriptionStatus }>>> = {
  update: { from: ['draft', 'checked'], to: 'draft' },
  check: { from: ['draft', 'checked'], to: 'checked' },
  sign: { from: ['checked'], to: 'signed' },
  transmit: { from: ['signed', 'error'], to: 'transmitted' },
  accept: { from: ['transmitted'], to: 'accepted' },
  reject: { from: ['transmitted', 'accepted'], to: 'error' },
  fill: { from: ['transmitted', 'accepted', 'dispensed'], to: 'dispensed' },
  partialFill: { from: ['transmitted', 'accepted', 'dispensed'] },
  notDispensed: { from: ['transmitted', 'accepted', 'dispensed'] },
  discard: { from: ['draft', 'checked', 'signed', 'error'], to: 'cancelled' },
  requestCancel: { from: ['transmitted', 'accepted', 'dispensed'], to: 'cancel_requested' },
  cancelApproved: { from: ['cancel_requested'], to: 'cancelled' },
  cancelDenied: { from: ['cancel_requested'] },
  renewalRequested: { from: ['accepted', 'dispensed'] },
  renewalApproved: { from: ['accepted', 'dispensed'] },
  renewalDenied: { from: ['accepted', 'dispensed', 'cancelled'] },
  changeRequested: { from: ['transmitted', 'accepted', 'dispensed'] },
  changeApproved: { from: ['transmitted', 'accepted', 'dispensed'] },
  changeDenied: { from: ['transmitted', 'accepted', 'dispensed', 'cancelled'] },
  priorAuth: { from: ['checked', 'signed', 'transmitted', 'accepted', 'dispensed', 'error', 'cancel_requested', 'cancelled'] },
};

export const invalidTransition = (from: PrescriptionStatus, action: PrescriptionAction) =>
  new AppError(ErrorCode.INVALID_STATE_TRANSITION, `A prescription that is ${from.replace('_', ' ')} cannot be changed this way (${action})`, { from, action });

/** The status `action` leads to from `from`, or INVALID_STATE_TRANSITION. */
export function nextStatus(from: PrescriptionStatus, action: PrescriptionAction): PrescriptionStatus {
  const t = TRANSITIONS[action];
  if (!t || !t.from.includes(from)) throw invalidTransition(from, action);
  return t.to ?? from;
}

/** Event types of the outbox for each action (what a clinician's screen hears live). */
const EVENT_OF: Partial<Record<PrescriptionAction, string>> = {
  create: 'prescription.drafted',
  update: 'prescription.updated',
  check: 'prescription.checked',
  sign: 'prescription.signed',
  transmit: 'prescription.transmitted',
  accept: 'prescription.accepted',
  reject: 'prescription.error',
  fill: 'prescription.dispensed',
  partialFill: 'prescription.partiallyDispensed',
  notDispensed: 'prescription.notDispensed',
  discard: 'prescription.cancelled',
  requestCancel: 'prescription.cancelRequested',
  cancelApproved: 'prescription.cancelled',
  cancelDenied: 'prescription.cancelDenied',
  renewalRequested: 'prescription.renewalRequested',
  renewalApproved: 'prescription.renewalApproved',
  renewalDenied: 'prescription.renewalDenied',
  changeRequested: 'prescription.changeRequested',
  changeApproved: 'prescription.changeApproved',
  changeDenied: 'prescription.changeDenied',
  priorAuth: 'prescription.priorAuthorization',
};

// ------------------------------------------------------------------ safety checks (port)

export type AlertSeverity = 'contraindicated' | 'major' | 'moderate' | 'minor';
export interface SafetyAlertRef {
  /** stable key of the alert (kind:codes), the one an override names */
  key: string;
  kind: string;
  severity: AlertSeverity;
}
/**
 * The module's safety checks as the lifecycle uses them (wired in index.ts
 * to safety.ts): the structured alerts for prescribing a drug to a patient,
 * and recording overrides (reason required for major / contraindicated;
 * audited).
 */
export interface PrescriptionSafety {
  check(scope: RequestScope, input: { patientId: string; drugRxcui: string; doseAmount: string | null; frequencyPerDay: number | null; prescriptionId: string }): Promise<SafetyAlertRef[]>;
  override(scope: RequestScope, input: { patientId: string; drugRxcui: string; prescriptionId: string; alert: SafetyAlertRef; reason: string | null }): Promise<void>;
}

export const needsReason = (a: SafetyAlertRef) => a.severity === 'major' || a.severity === 'contraindicated';

// ------------------------------------------------------------------ reading

export async function loadPrescription(db: Db, tenantId: string, id: string, opts: { forUpdate?: boolean } = {}): Promise<Prescription> {
  const q = db.select().from(rxPrescriptions).where(and(eq(rxPrescriptions.tenantId, tenantId), eq(rxPrescriptions.id, id)));
  const [row] = opts.forUpdate ? await q.for('update') : await q;
  if (!row) throw notFound('Prescription');
  return row;
}

/** The prescription if the caller may read (or write) its patient's clinical data; NOT_FOUND outside the tenant. */
export async function authorizePrescription(scope: RequestScope, idArg: unknown, action: 'clinical:read' | 'clinical:write', permission: string, opts: { forUpdate?: boolean } = {}): Promise<Prescription> {
  const p = principalOf(scope, permission);
  const id = uuidArg(idArg, 'id');
  const db = await scope.db();
  const rx = await loadPrescription(db, p.tenantId, id, opts);
  await requirePatientAccess(scope, db, rx.patientId, action);
  return rx;
}

export async function getPrescription(scope: RequestScope, idArg: unknown): Promise<Prescription> {
  return authorizePrescription(scope, idArg, 'clinical:read', 'rx:prescription:read');
}

export interface PrescriptionFilter {
  patientId?: unknown;
  statuses?: unknown;
  mine?: unknown;
  first?: unknown;
  /** cursor: the createdAt|id of the last row of the previous page */
  after?: unknown;
}

/** Prescriptions the caller may read, newest first: a patient's, or the caller's own as prescriber; filtered in SQL by the patient scope. */
export async function listPrescriptions(scope: RequestScope, f: PrescriptionFilter): Promise<{ items: Prescription[]; endCursor: string | null }> {
  const p = principalOf(scope, 'rx:prescription:read');
  const first = intArg(f.first, 'first', 1, 200, true) ?? 50;
  const db = await scope.db();
  const conds: (SQL | undefined)[] = [eq(rxPrescriptions.tenantId, p.tenantId)];
  if (f.patientId !== undefined && f.patientId !== null) {
    const patientId = uuidArg(f.patientId, 'patientId');
    // a patient the tenant does not have: NOT_FOUND before the access rules say anything about it
    if (!(await resourceExists(scope, 'patient', db, patientId))) throw notFound('Patient');
    await requirePatientAccess(scope, db, patientId, 'clinical:read');
    conds.push(eq(rxPrescriptions.patientId, patientId));
  }
  if (Array.isArray(f.statuses) && f.statuses.length) {
    for (const s of f.statuses) if (!PRESCRIPTION_STATUSES.includes(s as PrescriptionStatus)) throw badInput('statuses: unknown status', 'statuses');
    conds.push(inArray(rxPrescriptions.status, f.statuses as PrescriptionStatus[]));
  }
  if (f.mine === true) {
    const me = userIdOf(p) ? await prescriberOfUser(db, p.tenantId, p.id) : undefined;
    if (!me) return { items: [], endCursor: null };
    conds.push(eq(rxPrescriptions.prescriberId, me.id));
  }
  if (typeof f.after === 'string' && f.after) {
    const [at, id] = f.after.split('|');
    const ms = Number(at);
    if (!Number.isFinite(ms) || !id || !/^[0-9a-f-]{36}$/.test(id)) throw badInput('after is not a cursor of this list', 'after');
    conds.push(or(lt(rxPrescriptions.createdAt, new Date(ms)), and(eq(rxPrescriptions.createdAt, new Date(ms)), lt(rxPrescriptions.id, id))));
  } else if (f.after !== undefined && f.after !== null) throw badInput('after is not a cursor of this list', 'after');
  const ap = asAccessPrincipal(p);
  if (ap) conds.push(patientAccess.where(ap, 'clinical:read', sql`${rxPrescriptions.patientId}`));
  const items = await db
    .select()
    .from(rxPrescriptions)
    .where(and(...conds))
    .orderBy(desc(rxPrescriptions.createdAt), desc(rxPrescriptions.id))
    .limit(first);
  const last = items.at(-1);
  return { items, endCursor: items.length === first && last ? `${last.createdAt.getTime()}|${last.id}` : null };
}

export async function prescriptionHistory(db: Db, tenantId: string, prescriptionId: string) {
  return db
    .select()
    .from(rxPrescriptionEvents)
    .where(and(eq(rxPrescriptionEvents.tenantId, tenantId), eq(rxPrescriptionEvents.prescriptionId, prescriptionId)))
    .orderBy(rxPrescriptionEvents.at, rxPrescriptionEvents.id);
}

export async function prescriptionMessages(db: Db, tenantId: string, prescriptionId: string) {
  return db
    .select({
      id: rxScriptMessages.id,
      direction: rxScriptMessages.direction,
      messageType: rxScriptMessages.messageType,
      messageId: rxScriptMessages.messageId,
      relatesToMessageId: rxScriptMessages.relatesToMessageId,
      answerType: rxScriptMessages.answerType,
      answerCode: rxScriptMessages.answerCode,
      createdAt: rxScriptMessages.createdAt,
    })
    .from(rxScriptMessages)
    .where(and(eq(rxScriptMessages.tenantId, tenantId), eq(rxScriptMessages.prescriptionId, prescriptionId)))
    .orderBy(rxScriptMessages.createdAt, rxScriptMessages.id);
}

// ------------------------------------------------------------------ recording changes

/** Socket rooms that hear about a prescription. */
export function prescriptionRooms(rx: Pick<Prescription, 'id' | 'patientId'>, prescriberUserId: string): string[] {
  return [`prescription:${rx.id}`, `rxQueue:${prescriberUserId}`, `patient:${rx.patientId}`];
}

export interface ChangeRecord {
  from: PrescriptionStatus | null;
  action: PrescriptionAction;
  /** codes and ids only */
  detail?: Record<string, string | number | boolean | null>;
  auditAction?: 'create' | 'update' | 'read' | 'export';
  fields?: string[];
}

/** History row + outbox event + audit entry of one change, in the caller's transaction. */
export async function recordChange(scope: RequestScope, db: Db, rx: Prescription, c: ChangeRecord): Promise<void> {
  const p = principalOf(scope);
  const detail = c.detail ?? {};
  // clock_timestamp(): several changes in one transaction (transmit, then accept) keep their order (now() is the transaction's start)
  await db.insert(rxPrescriptionEvents).values({ tenantId: rx.tenantId, prescriptionId: rx.id, fromStatus: c.from, toStatus: rx.status, action: c.action, actor: actorOf(p), detail, at: sql`clock_timestamp()` });
  const prescriber = await findPrescriber(db, rx.tenantId, rx.prescriberId);
  const type = EVENT_OF[c.action];
  if (type) {
    await emitEvent(db, {
      type,
      tenantId: rx.tenantId,
      aggregateId: rx.id,
      payload: { prescriptionId: rx.id, patientId: rx.patientId, status: rx.status, fromStatus: c.from, action: c.action.toLowerCase(), version: rx.version, ...eventCodes(detail) },
      rooms: prescriptionRooms(rx, prescriber.userId),
    });
  }
  scope.recordPhiAccess({
    patientIds: [rx.patientId],
    resourceType: 'Prescription',
    resourceId: rx.id,
    fields: c.fields ?? ['Prescription.status'],
    action: c.auditAction ?? 'update',
    outcome: 'allowed',
    detail: { transition: c.action, from: c.from, to: rx.status, ...auditCodes(detail) },
  });
}

/** ids and short codes of a detail, for the event payload (free text never goes there). */
function eventCodes(detail: Record<string, unknown>): Record<string, string | number | boolean> {
  const out: Record<string, string | number | boolean> = {};
  for (const [k, v] of Object.entries(detail)) {
    if (typeof v === 'number' || typeof v === 'boolean') out[k] = v;
    else if (typeof v === 'string' && /^[a-z0-9][a-z0-9_.:-]{0,63}$/i.test(v) && /^[a-z][a-zA-Z0-9]{0,63}$/.test(k)) out[k] = v.toLowerCase() === v ? v : v.toLowerCase();
  }
  return out;
}
function auditCodes(detail: Record<string, string | number | boolean | null>): Record<string, string | number | boolean | null> {
  return detail;
}

/** Applies an action: the row (locked by the caller) moves to the next status with `set`, version + 1; history, event, audit. */
export async function transition(scope: RequestScope, db: Db, rx: Prescription, action: PrescriptionAction, set: Partial<typeof rxPrescriptions.$inferInsert> = {}, record: Omit<ChangeRecord, 'from' | 'action'> = {}): Promise<Prescription> {
  const to = nextStatus(rx.status, action);
  const [row] = await db
    .update(rxPrescriptions)
    .set({ ...set, status: set.status ?? to, version: rx.version + 1, updatedAt: new Date(lifecycleOf(scope).now()) })
    .where(and(eq(rxPrescriptions.tenantId, rx.tenantId), eq(rxPrescriptions.id, rx.id), eq(rxPrescriptions.version, rx.version)))
    .returning();
  if (!row) throw conflict('The prescription was changed by someone else; reload it');
  await recordChange(scope, db, row, { from: rx.status, action, ...record });
  return row;
}

// ------------------------------------------------------------------ writing drafts

export const QUANTITY_UNITS = ['tablet', 'capsule', 'milliliter', 'gram', 'each'] as const;
export type QuantityUnit = (typeof QUANTITY_UNITS)[number];
const NCI_UNIT: Record<QuantityUnit, string> = QUANTITY_UNIT_NCI;
export const unitOfNci = (code: string): QuantityUnit | undefined => (Object.entries(NCI_UNIT).find(([, v]) => v === code)?.[0] as QuantityUnit | undefined);

/** The units a dose form is dispensed in (a quantity in another unit is outside the drug's forms). */
export function unitsForDoseForm(doseForm: string): QuantityUnit[] {
  const f = doseForm.toLowerCase();
  if (/tablet|\btab\b|lozenge|troche/.test(f)) return ['tablet'];
  if (/capsule/.test(f)) return ['capsule'];
  if (/solution|suspension|syrup|elixir|liquid|drops|concentrate|injectable|injection|emulsion|lotion/.test(f)) return ['milliliter'];
  if (/cream|ointment|gel|paste|powder|foam/.test(f)) return ['gram'];
  if (/inhal|aerosol|spray/.test(f)) return ['each', 'gram'];
  return ['each'];
}

export interface DraftInput {
  patientId?: unknown;
  prescriberId?: unknown;
  pharmacyId?: unknown;
  drugRxcui?: unknown;
  quantity?: unknown;
  quantityUnit?: unknown;
  daysSupply?: unknown;
  refills?: unknown;
  sig?: unknown;
  substitutionAllowed?: unknown;
  note?: unknown;
  doseAmount?: unknown;
  frequencyPerDay?: unknown;
  encounterId?: unknown;
}

export async function findDrug(db: Db, rxcuiArg: unknown): Promise<RxDrug> {
  const rxcui = typeof rxcuiArg === 'string' ? rxcuiArg.trim() : '';
  if (!/^\d{1,10}$/.test(rxcui)) throw badInput('drugRxcui must be an RxNorm concept id', 'drugRxcui');
  const [drug] = await db.select().from(rxDrugs).where(eq(rxDrugs.rxcui, rxcui));
  if (!drug) throw notFound('Drug');
  return drug;
}

/** Validates the clinical content of a draft against the drug (dose form, refills by schedule). */
function clinicalValues(drug: RxDrug, input: DraftInput, current?: Prescription) {
  const quantity = typeof input.quantity === 'string' ? input.quantity.trim() : typeof input.quantity === 'number' ? String(input.quantity) : (current?.quantity ?? '');
  if (!/^\d{1,11}(\.\d{1,5})?$/.test(quantity) || Number(quantity) <= 0) throw badInputWith('quantity must be a positive decimal (up to 5 decimals)', 'quantity', 'INVALID_QUANTITY');
  const unit = (input.quantityUnit ?? (current ? unitOfNci(current.quantityUnit) : undefined)) as QuantityUnit | undefined;
  if (!unit || !QUANTITY_UNITS.includes(unit)) throw badInput('quantityUnit is required', 'quantityUnit');
  const allowed = unitsForDoseForm(drug.doseForm);
  if (!allowed.includes(unit)) throw badInputWith(`A ${drug.doseForm} is not dispensed in ${unit} units`, 'quantityUnit', 'DOSE_FORM_MISMATCH');
  const refills = input.refills === undefined ? (current?.refills ?? 0) : intArg(input.refills, 'refills', 0, 99)!;
  if (drug.deaSchedule === 'CII' && refills > 0) throw badInputWith('Schedule II prescriptions cannot have refills (21 CFR 1306.12)', 'refills', 'SCHEDULE_II_REFILLS');
  if (drug.deaSchedule && drug.deaSchedule !== 'CII' && refills > 5) throw badInputWith('Schedule III-V prescriptions allow at most 5 refills (21 CFR 1306.22)', 'refills', 'CONTROLLED_REFILLS');
  const daysSupply = input.daysSupply === undefined ? (current?.daysSupply ?? null) : intArg(input.daysSupply, 'daysSupply', 1, 365, true);
  const sig = input.sig === undefined && current ? current.sig : textArg(input.sig, 'sig', { max: 1000 })!;
  const note = input.note === undefined ? (current?.note ?? null) : textArg(input.note, 'note', { max: 210, optional: true });
  const doseAmount =
    input.doseAmount === undefined
      ? (current?.doseAmount ?? null)
      : input.doseAmount === null
        ? null
        : (() => {
            const v = typeof input.doseAmount === 'number' ? String(input.doseAmount) : typeof input.doseAmount === 'string' ? input.doseAmount.trim() : '';
            if (!/^\d{1,6}(\.\d{1,4})?$/.test(v) || Number(v) <= 0) throw badInputWith('doseAmount must be a positive decimal', 'doseAmount', 'INVALID_DOSE');
            return v;
          })();
  const frequencyPerDay = input.frequencyPerDay === undefined ? (current?.frequencyPerDay ?? null) : intArg(input.frequencyPerDay, 'frequencyPerDay', 1, 48, true);
  const substitutionAllowed = input.substitutionAllowed === undefined || input.substitutionAllowed === null ? (current?.substitutionAllowed ?? true) : input.substitutionAllowed === true;
  return {
    drugRxcui: drug.rxcui,
    drugDescription: drug.name.slice(0, 105),
    drugTty: drug.tty,
    deaSchedule: drug.deaSchedule,
    quantity,
    quantityUnit: NCI_UNIT[unit],
    daysSupply,
    refills,
    refillsRemaining: refills,
    sig,
    note,
    doseAmount,
    frequencyPerDay,
    substitutionAllowed,
  };
}

async function livePatient(db: Db, tenantId: string, patientId: string) {
  const [row] = await db.select({ id: patients.id, status: patients.status }).from(patients).where(and(eq(patients.tenantId, tenantId), eq(patients.id, patientId)));
  if (!row) throw notFound('Patient');
  if (row.status === 'merged' || row.status === 'deceased') throw badInputWith(`The patient record is ${row.status}`, 'patientId', 'PATIENT_INACTIVE');
  return row;
}

async function activePharmacy(db: Db, tenantId: string, idArg: unknown): Promise<Pharmacy> {
  const ph = await findPharmacy(db, tenantId, uuidArg(idArg, 'pharmacyId'));
  if (!ph.active) throw badInputWith('The pharmacy is not active in the directory', 'pharmacyId', 'PHARMACY_INACTIVE');
  return ph;
}

/** A new draft: the caller's own prescriber record, or (a nurse drafting) the prescriber named. */
export async function createPrescription(scope: RequestScope, input: DraftInput): Promise<Prescription> {
  const p = principalOf(scope, 'rx:prescription:write');
  const db = await scope.db();
  const patientId = uuidArg(input.patientId, 'patientId');
  const given = (v: unknown, field: string) => (v === undefined || v === null ? null : uuidArg(v, field));
  const prescriberId = given(input.prescriberId, 'prescriberId');
  const pharmacyId = given(input.pharmacyId, 'pharmacyId');
  const encounterId = given(input.encounterId, 'encounterId');
  // every id names a row of the caller's tenant (NOT_FOUND otherwise) before the access rules say anything about the patient
  await livePatient(db, p.tenantId, patientId);
  let prescriber = prescriberId ? await findPrescriber(db, p.tenantId, prescriberId) : undefined;
  const pharmacy = pharmacyId ? await findPharmacy(db, p.tenantId, pharmacyId) : null;
  // the visit it is written in: a record of the module that provides encounters (telehealth appointments); none enabled: unknown
  if (encounterId && !(await resourceExists(scope, 'encounter', db, encounterId))) throw notFound('Encounter');
  await requirePatientAccess(scope, db, patientId, 'clinical:write');
  if (!prescriber && userIdOf(p)) prescriber = await prescriberOfUser(db, p.tenantId, p.id);
  if (!prescriber) throw badInputWith('Name the prescriber (the caller is not a registered prescriber)', 'prescriberId', 'PRESCRIBER_REQUIRED');
  if (!prescriber.active) throw badInputWith('The prescriber is not active', 'prescriberId', 'PRESCRIBER_INACTIVE');
  const drug = await findDrug(db, input.drugRxcui);
  if (!drug.active) throw badInputWith('The drug is no longer offered', 'drugRxcui', 'DRUG_INACTIVE');
  if (pharmacy && !pharmacy.active) throw badInputWith('The pharmacy is not active in the directory', 'pharmacyId', 'PHARMACY_INACTIVE');
  const now = lifecycleOf(scope).now();
  const [rx] = await db
    .insert(rxPrescriptions)
    .values({
      tenantId: p.tenantId,
      patientId,
      prescriberId: prescriber.id,
      pharmacyId: pharmacy?.id ?? null,
      ...clinicalValues(drug, input),
      status: 'draft',
      writtenOn: isoDate(now),
      orderNumber: randomBytes(16).toString('hex'),
      encounterId,
      createdBy: p.kind === 'system' ? prescriber.userId : p.id,
      createdAt: new Date(now),
      updatedAt: new Date(now),
    })
    .returning();
  await recordChange(scope, db, rx!, { from: null, action: 'create', auditAction: 'create', fields: ['Prescription.drug', 'Prescription.sig', 'Prescription.quantity'] });
  return rx!;
}

/** Changes a draft (or a checked prescription, which then needs a new check). */
export async function updatePrescription(scope: RequestScope, idArg: unknown, version: unknown, input: DraftInput): Promise<Prescription> {
  const p = principalOf(scope, 'rx:prescription:write');
  const db = await scope.db();
  const rx = await loadPrescription(db, p.tenantId, uuidArg(idArg, 'id'), { forUpdate: true });
  // a pharmacy the tenant does not have: NOT_FOUND before the access rules say anything
  const pharmacy = input.pharmacyId === undefined || input.pharmacyId === null ? null : await findPharmacy(db, rx.tenantId, uuidArg(input.pharmacyId, 'pharmacyId'));
  await requirePatientAccess(scope, db, rx.patientId, 'clinical:write');
  if (rx.version !== version) throw conflict('The prescription was changed by someone else; reload it');
  nextStatus(rx.status, 'update');
  const drug = await findDrug(db, input.drugRxcui ?? rx.drugRxcui);
  if (pharmacy && !pharmacy.active) throw badInputWith('The pharmacy is not active in the directory', 'pharmacyId', 'PHARMACY_INACTIVE');
  const pharmacyId = input.pharmacyId === undefined ? rx.pharmacyId : (pharmacy?.id ?? null);
  return transition(scope, db, rx, 'update', { ...clinicalValues(drug, input, rx), pharmacyId, checkResult: null, checkedAt: null }, { fields: ['Prescription.drug', 'Prescription.sig', 'Prescription.quantity'] });
}

// ------------------------------------------------------------------ check

export interface CheckOutcome {
  prescription: Prescription;
  alerts: (SafetyAlertRef & { overridden: boolean; needsReason: boolean })[];
  /** alerts that still need an override reason: the prescription stays a draft */
  blocking: string[];
}

/**
 * Runs the safety checks. Every major or contraindicated alert needs an
 * override (`overrides`: alert key + reason, rx:alert:override): with all of
 * them the prescription becomes `checked`; otherwise it stays as it is and
 * the answer lists what blocks it. Overrides are recorded and audited.
 */
export async function checkPrescription(scope: RequestScope, idArg: unknown, overridesArg: unknown): Promise<CheckOutcome> {
  const rx = await authorizePrescription(scope, idArg, 'clinical:write', 'rx:prescription:write', { forUpdate: true });
  nextStatus(rx.status, 'check');
  const overrides = new Map<string, string | null>();
  if (overridesArg !== undefined && overridesArg !== null) {
    if (!Array.isArray(overridesArg) || overridesArg.length > 50) throw badInput('overrides must be a list', 'overrides');
    for (const o of overridesArg as { alertKey?: unknown; reason?: unknown }[]) {
      if (typeof o?.alertKey !== 'string' || !o.alertKey || o.alertKey.length > 200) throw badInput('overrides.alertKey is required', 'overrides.alertKey');
      overrides.set(o.alertKey, textArg(o.reason, 'overrides.reason', { max: 500, optional: true }));
    }
  }
  const safety = lifecycleOf(scope).safety;
  if (!safety) throw new AppError(ErrorCode.PROVIDER_UNAVAILABLE, 'The safety checks are not available; the prescription cannot be checked', { reason: 'SAFETY_CHECKS_UNAVAILABLE' });
  const alerts = await safety.check(scope, { patientId: rx.patientId, drugRxcui: rx.drugRxcui, doseAmount: rx.doseAmount, frequencyPerDay: rx.frequencyPerDay, prescriptionId: rx.id });
  const keys = new Set(alerts.map((a) => a.key));
  for (const k of overrides.keys()) if (!keys.has(k)) throw badInputWith('An override names an alert the check did not raise', 'overrides.alertKey', 'UNKNOWN_ALERT');
  const blocking: string[] = [];
  for (const a of alerts) {
    if (!needsReason(a)) continue;
    if (!overrides.has(a.key)) blocking.push(a.key);
    else if (!overrides.get(a.key)) throw badInputWith('Overriding a major or contraindicated alert needs a reason', 'overrides.reason', 'OVERRIDE_REASON_REQUIRED');
  }
  const db = await scope.db();
  const view = alerts.map((a) => ({ ...a, overridden: overrides.has(a.key), needsReason: needsReason(a) }));
  if (blocking.length) {
    scope.recordPhiAccess({ patientIds: [rx.patientId], resourceType: 'Prescription', resourceId: rx.id, fields: ['Prescription.checkResult'], action: 'read', outcome: 'allowed', detail: { check: 'blocked', alerts: alerts.length, blocking: blocking.length } });
    return { prescription: rx, alerts: view, blocking };
  }
  for (const a of alerts) if (overrides.has(a.key)) await safety.override(scope, { patientId: rx.patientId, drugRxcui: rx.drugRxcui, prescriptionId: rx.id, alert: a, reason: overrides.get(a.key) ?? null });
  const now = new Date(lifecycleOf(scope).now());
  const checked = await transition(
    scope,
    db,
    rx,
    'check',
    { checkResult: { alerts: view.map((a) => ({ key: a.key, kind: a.kind, severity: a.severity, overridden: a.overridden })) }, checkedAt: now },
    { detail: { alerts: alerts.length, overridden: overrides.size }, fields: ['Prescription.checkResult'] },
  );
  return { prescription: checked, alerts: view, blocking: [] };
}

// ------------------------------------------------------------------ sign

export interface SignInput {
  /** EPCS: the prescriber's password and a fresh TOTP code, and the attestation confirmed */
  password?: unknown;
  totpCode?: unknown;
  attestationSha256?: unknown;
}

/** The controlled-substance signing step (epcs.ts), wired in by index.ts so this file does not import it. */
export type ControlledSigner = (scope: RequestScope, db: Db, rx: Prescription, prescriber: Prescriber, pharmacy: Pharmacy, input: SignInput) => Promise<Partial<typeof rxPrescriptions.$inferInsert>>;

/** Signs a checked prescription, as its prescriber; a controlled substance goes through EPCS. */
export async function signPrescription(scope: RequestScope, idArg: unknown, input: SignInput): Promise<Prescription> {
  const rx = await authorizePrescription(scope, idArg, 'clinical:write', 'rx:prescription:sign', { forUpdate: true });
  nextStatus(rx.status, 'sign');
  const p = principalOf(scope);
  const db = await scope.db();
  const prescriber = await findPrescriber(db, rx.tenantId, rx.prescriberId);
  if (userIdOf(p) !== prescriber.userId) throw forbiddenWith('Only the prescriber named on the prescription can sign it', 'NOT_THE_PRESCRIBER');
  if (!prescriber.active) throw badInputWith('The prescriber is not active', 'prescriberId', 'PRESCRIBER_INACTIVE');
  if (!rx.pharmacyId) throw badInputWith('Choose a pharmacy before signing', 'pharmacyId', 'PHARMACY_REQUIRED');
  const pharmacy = await activePharmacy(db, rx.tenantId, rx.pharmacyId);
  const now = lifecycleOf(scope).now();
  let set: Partial<typeof rxPrescriptions.$inferInsert> = {};
  if (rx.deaSchedule) {
    const signer = lifecycleOf(scope).signControlled;
    if (!signer) throw forbiddenWith('Electronic prescribing of controlled substances is not available', 'EPCS_UNAVAILABLE');
    set = await signer(scope, db, rx, prescriber, pharmacy, input);
  }
  return transition(scope, db, rx, 'sign', { signedAt: new Date(now), signedBy: p.id, newRxMessageId: newMessageId(), ...set }, { detail: { epcs: !!rx.deaSchedule }, fields: ['Prescription.signature'] });
}

// ------------------------------------------------------------------ SCRIPT content

const scriptAddress = (a: { addressLine1: string; addressLine2: string | null; city: string; state: string; postalCode: string }) => ({
  line1: a.addressLine1,
  ...(a.addressLine2 ? { line2: a.addressLine2 } : {}),
  city: a.city,
  state: a.state,
  postalCode: a.postalCode,
  country: 'US',
});

export function scriptPharmacy(ph: Pharmacy): ScriptPharmacy {
  return { ncpdpId: ph.ncpdpId, ...(ph.npi ? { npi: ph.npi } : {}), businessName: ph.name, address: scriptAddress(ph), phone: ph.phone, ...(ph.fax ? { fax: ph.fax } : {}) };
}

export function scriptPrescriber(pr: Prescriber, deaNumber?: string | null): ScriptPrescriber {
  return {
    npi: pr.npi,
    ...(deaNumber ? { deaNumber } : {}),
    ...(pr.stateLicenseNumber ? { stateLicenseNumber: pr.stateLicenseNumber } : {}),
    name: { last: pr.lastName, first: pr.firstName, ...(pr.suffix ? { suffix: pr.suffix } : {}) },
    address: scriptAddress(pr),
    phone: pr.phone,
    ...(pr.fax ? { fax: pr.fax } : {}),
  };
}

/** The patient as SCRIPT carries it (demographics from the patients module's record). */
export async function scriptPatient(db: Db, tenantId: string, patientId: string): Promise<ScriptPatient> {
  const [pt] = await db.select().from(patients).where(and(eq(patients.tenantId, tenantId), eq(patients.id, patientId)));
  if (!pt) throw notFound('Patient');
  const addr = pt.address;
  const phone = pt.phones.find((x) => /^\+1\d{10}$/.test(x.number))?.number.slice(2);
  return {
    name: { last: pt.familyName.slice(0, 35), first: pt.givenName.slice(0, 35) },
    gender: pt.sexAtBirth === 'female' ? 'F' : pt.sexAtBirth === 'male' ? 'M' : 'U',
    birthDate: pt.dateOfBirth,
    medicalRecordNumber: pt.mrn,
    ...(addr && addr.state && /^[A-Z]{2}$/.test(addr.state) && addr.country === 'US'
      ? { address: { line1: addr.line1.slice(0, 40), ...(addr.line2 ? { line2: addr.line2.slice(0, 40) } : {}), city: addr.city.slice(0, 35), state: addr.state, postalCode: addr.postalCode.replace('-', ''), country: 'US' } }
      : {}),
    ...(phone ? { phone } : {}),
  };
}

export function scriptMedication(rx: Prescription, ndc?: string | null): ScriptMedication {
  return {
    description: rx.drugDescription,
    ...((ndc ?? rx.ndc) ? { ndc: (ndc ?? rx.ndc)! } : {}),
    rxnorm: { code: rx.drugRxcui, qualifier: (['SCD', 'SBD', 'GPCK', 'BPCK'].includes(rx.drugTty) ? rx.drugTty : 'SCD') as 'SCD' },
    ...(rx.deaSchedule ? { deaSchedule: rx.deaSchedule } : {}),
    quantity: { value: rx.quantity, codeListQualifier: '38', unitCode: rx.quantityUnit },
    ...(rx.daysSupply ? { daysSupply: rx.daysSupply } : {}),
    writtenDate: rx.writtenOn,
    substitutions: rx.substitutionAllowed ? '0' : '1',
    numberOfRefills: rx.refills,
    sig: rx.sig,
    ...(rx.note ? { note: rx.note } : {}),
  };
}

export interface ScriptParties {
  patient: ScriptPatient;
  pharmacy: ScriptPharmacy;
  prescriber: ScriptPrescriber;
  prescriberRow: Prescriber;
  pharmacyRow: Pharmacy;
}

export async function scriptParties(db: Db, rx: Prescription, deaNumber?: string | null): Promise<ScriptParties> {
  if (!rx.pharmacyId) throw badInputWith('The prescription has no pharmacy', 'pharmacyId', 'PHARMACY_REQUIRED');
  const prescriberRow = await findPrescriber(db, rx.tenantId, rx.prescriberId);
  const pharmacyRow = await findPharmacy(db, rx.tenantId, rx.pharmacyId);
  return { patient: await scriptPatient(db, rx.tenantId, rx.patientId), pharmacy: scriptPharmacy(pharmacyRow), prescriber: scriptPrescriber(prescriberRow, deaNumber), prescriberRow, pharmacyRow };
}

/** Sends one message through the adapter and records it (XML envelope encrypted) with its answer; PHI disclosed to the pharmacy is audited. */
export async function sendRecorded(scope: RequestScope, db: Db, rx: Prescription, message: ScriptMessage): Promise<NetworkExchange> {
  const lc = lifecycleOf(scope);
  const exchange = await lc.network.send(message);
  const { xml } = await lc.crypto.encryptFields(rxScriptMessages, rx.tenantId, { xml: exchange.sentXml });
  await db.insert(rxScriptMessages).values({
    tenantId: rx.tenantId,
    prescriptionId: rx.id,
    direction: 'outbound',
    messageType: message.type,
    messageId: message.header.messageId,
    relatesToMessageId: message.header.relatesToMessageId ?? null,
    prescriberOrderNumber: message.header.prescriberOrderNumber ?? null,
    rxReferenceNumber: message.header.rxReferenceNumber ?? null,
    xml,
    answerType: exchange.answer.type,
    answerCode: exchange.answer.code,
    createdAt: new Date(lc.now()),
  });
  scope.recordPhiAccess({
    patientIds: [rx.patientId],
    resourceType: 'Prescription',
    resourceId: rx.id,
    fields: ['Prescription.script'],
    action: 'export',
    outcome: 'allowed',
    detail: { scriptMessage: message.type, answer: exchange.answer.type, code: exchange.answer.code },
  });
  return exchange;
}

export function headerFor(rx: Prescription, pharmacy: Pharmacy, prescriber: Prescriber, messageId: string, now: number, over: Partial<ScriptMessage['header']> = {}): ScriptMessage['header'] {
  return {
    to: { qualifier: 'P', id: pharmacy.ncpdpId },
    from: { qualifier: 'D', id: prescriber.npi },
    messageId,
    sentTime: new Date(now).toISOString(),
    senderSoftware: { developer: 'Carebase', product: 'Carebase e-Prescribing', version: '1.0' },
    prescriberOrderNumber: rx.orderNumber,
    ...(rx.pharmacyRxNumber ? { rxReferenceNumber: rx.pharmacyRxNumber } : {}),
    ...over,
  };
}

// ------------------------------------------------------------------ transmit

/** Status codes that mean the pharmacy itself accepted the message (010); 000 = accepted by the network only. */
const ACCEPTED_BY_PHARMACY = new Set(['010']);

/**
 * Sends the NewRx of a signed prescription (again after an error) and
 * applies the network's answer: transmitted, then accepted (Status 010) or
 * error (Error). PROVIDER_UNAVAILABLE when the network did not answer:
 * nothing changed, transmit again.
 */
export async function transmitPrescription(scope: RequestScope, idArg: unknown): Promise<Prescription> {
  const rx = await authorizePrescription(scope, idArg, 'clinical:write', 'rx:prescription:write', { forUpdate: true });
  nextStatus(rx.status, 'transmit');
  const db = await scope.db();
  const lc = lifecycleOf(scope);
  const signature = rx.epcs && lc.epcsSignatureHeader ? await lc.epcsSignatureHeader(db, rx) : undefined;
  const parties = await scriptParties(db, rx, signature?.deaNumber);
  // the same MessageID for a retry after no answer (the network answers it once); a new one after an Error answer
  const messageId = rx.status === 'error' || !rx.newRxMessageId ? newMessageId() : rx.newRxMessageId;
  const now = lc.now();
  const message: ScriptMessage = {
    type: 'NewRx',
    header: headerFor(rx, parties.pharmacyRow, parties.prescriberRow, messageId, now, signature ? { digitalSignature: signature.header } : {}),
    patient: parties.patient,
    pharmacy: parties.pharmacy,
    prescriber: parties.prescriber,
    medication: scriptMedication(rx),
  };
  const exchange = await sendRecorded(scope, db, rx, message);
  let current = await transition(scope, db, rx, 'transmit', { transmittedAt: new Date(now), newRxMessageId: messageId, errorCode: null, errorDescriptionCode: null }, { detail: { messageId } });
  current = await applyNetworkAnswer(scope, db, current, exchange.answer);
  return current;
}

/** A Status / Error (synchronous answer, or sent later by the pharmacy) about the NewRx. */
export async function applyNetworkAnswer(scope: RequestScope, db: Db, rx: Prescription, answer: { type: 'Status' | 'Error' | 'Verify'; code: string; descriptionCode?: string }): Promise<Prescription> {
  const now = new Date(lifecycleOf(scope).now());
  if (answer.type === 'Error') return transition(scope, db, rx, 'reject', { errorCode: answer.code, errorDescriptionCode: answer.descriptionCode ?? null }, { detail: { code: answer.code, descriptionCode: answer.descriptionCode ?? null } });
  if (answer.type === 'Status' && ACCEPTED_BY_PHARMACY.has(answer.code) && rx.status === 'transmitted') return transition(scope, db, rx, 'accept', { acceptedAt: now }, { detail: { code: answer.code } });
  return rx;
}

// ------------------------------------------------------------------ cancel

/**
 * Cancels a prescription: one that never reached a pharmacy is cancelled at
 * once; one the pharmacy has gets a CancelRx (cancel_requested until the
 * pharmacy's CancelRxResponse). A refusal by the network is CONFLICT.
 */
export async function cancelPrescription(scope: RequestScope, idArg: unknown, reasonArg: unknown): Promise<Prescription> {
  const rx = await authorizePrescription(scope, idArg, 'clinical:write', 'rx:prescription:sign', { forUpdate: true });
  const reason = textArg(reasonArg, 'reason', { max: 140, optional: true });
  const db = await scope.db();
  const now = lifecycleOf(scope).now();
  if (TRANSITIONS.discard!.from.includes(rx.status)) return transition(scope, db, rx, 'discard', { cancelledAt: new Date(now), cancelReason: reason });
  nextStatus(rx.status, 'requestCancel');
  const lc = lifecycleOf(scope);
  const signature = rx.epcs && lc.epcsSignatureHeader ? await lc.epcsSignatureHeader(db, rx) : undefined;
  const parties = await scriptParties(db, rx, signature?.deaNumber);
  const message: ScriptMessage = {
    type: 'CancelRx',
    header: headerFor(rx, parties.pharmacyRow, parties.prescriberRow, newMessageId(), now),
    patient: parties.patient,
    pharmacy: parties.pharmacy,
    prescriber: parties.prescriber,
    medication: scriptMedication(rx),
  };
  const exchange = await sendRecorded(scope, db, rx, message);
  if (exchange.answer.type === 'Error') {
    throw new AppError(ErrorCode.CONFLICT, 'The pharmacy network refused the cancel request', { reason: 'CANCEL_REFUSED', scriptCode: exchange.answer.code });
  }
  return transition(scope, db, rx, 'requestCancel', { statusBeforeCancel: rx.status, cancelReason: reason }, { detail: { messageId: message.header.messageId } });
}

// ------------------------------------------------------------------ helpers for other files

export function requireSignedBy(p: ScopePrincipal, prescriber: Prescriber): void {
  if (userIdOf(p) !== prescriber.userId) throw forbiddenWith('Only the prescriber can do this', 'NOT_THE_PRESCRIBER');
}

export { forbidden };
