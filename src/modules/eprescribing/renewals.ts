import { randomBytes } from 'node:crypto';
import { and, asc, eq, inArray } from 'drizzle-orm';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode, conflict, notFound } from '../../platform/errors.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { prescriberOfUser } from './directory.js';
import { newMessageId } from './network/adapter.js';
import { rxChangeRequests, rxPrescriptions, rxRenewalRequests, type ChangeRequest, type Prescription, type RenewalRequest } from './prescription-tables.js';
import {
  applyNetworkAnswer,
  headerFor,
  loadPrescription,
  needsReason,
  nextStatus,
  recordChange,
  requireSignedBy,
  scriptMedication,
  scriptParties,
  sendRecorded,
  transition,
  type SignInput,
} from './prescriptions.js';
import { badInputWith, intArg, isoDate, lifecycleOf, principalOf, requirePatientAccess, textArg, userIdOf, uuidArg } from './rx-common.js';
import type { ScriptMedication, ScriptMessage } from './script/index.js';

/**
 * The prescriber's answers to pharmacy requests:
 * - RxRenewalRequest -> approve (a new prescription, `renewal_of` the
 *   original, with the refills granted; a controlled substance is signed
 *   through EPCS like any other) or deny (a reason code) -> RxRenewalResponse.
 * - RxChangeRequest -> approve (one of the proposed medications, or the
 *   request as asked for a prior authorization / clarification) or deny ->
 *   RxChangeResponse.
 * Only the prescriber of the original prescription answers; a request is
 * answered once (CONFLICT afterwards).
 */

/** RxRenewalResponse / RxChangeResponse denial reason codes (NCPDP code list). */
export const DENIAL_REASONS = {
  AA: 'Patient unknown to the prescriber',
  AB: 'Patient never under prescriber care',
  AC: 'Patient no longer under prescriber care',
  AD: 'Patient has requested refill too soon',
  AE: 'Medication never prescribed for the patient',
  AF: 'Patient should contact prescriber first',
  AG: 'Fill/refill not appropriate',
  AM: 'Patient needs appointment',
} as const;
export type DenialReasonCode = keyof typeof DENIAL_REASONS;

async function loadRenewal(scope: RequestScope, idArg: unknown, forUpdate = false): Promise<RenewalRequest> {
  const p = principalOf(scope, 'rx:prescription:read');
  const id = uuidArg(idArg, 'id');
  const db = await scope.db();
  const q = db.select().from(rxRenewalRequests).where(and(eq(rxRenewalRequests.tenantId, p.tenantId), eq(rxRenewalRequests.id, id)));
  const [row] = forUpdate ? await q.for('update') : await q;
  if (!row) throw notFound('Renewal request');
  await requirePatientAccess(scope, db, row.patientId, forUpdate ? 'clinical:write' : 'clinical:read', 'RenewalRequest');
  return row;
}

async function loadChange(scope: RequestScope, idArg: unknown, forUpdate = false): Promise<ChangeRequest> {
  const p = principalOf(scope, 'rx:prescription:read');
  const id = uuidArg(idArg, 'id');
  const db = await scope.db();
  const q = db.select().from(rxChangeRequests).where(and(eq(rxChangeRequests.tenantId, p.tenantId), eq(rxChangeRequests.id, id)));
  const [row] = forUpdate ? await q.for('update') : await q;
  if (!row) throw notFound('Change request');
  await requirePatientAccess(scope, db, row.patientId, forUpdate ? 'clinical:write' : 'clinical:read', 'ChangeRequest');
  return row;
}

export const getRenewalRequest = (scope: RequestScope, id: unknown) => loadRenewal(scope, id);
export const getChangeRequest = (scope: RequestScope, id: unknown) => loadChange(scope, id);

/** The caller's pending renewal and change requests (as prescriber), oldest first. */
export async function myPendingRequests(scope: RequestScope): Promise<{ renewals: RenewalRequest[]; changes: ChangeRequest[] }> {
  const p = principalOf(scope, 'rx:prescription:sign');
  const db = await scope.db();
  const me = userIdOf(p) ? await prescriberOfUser(db, p.tenantId, p.id) : undefined;
  if (!me) return { renewals: [], changes: [] };
  const renewals = await db
    .select()
    .from(rxRenewalRequests)
    .where(and(eq(rxRenewalRequests.tenantId, p.tenantId), eq(rxRenewalRequests.prescriberId, me.id), eq(rxRenewalRequests.status, 'pending')))
    .orderBy(asc(rxRenewalRequests.createdAt));
  const changes = await db
    .select()
    .from(rxChangeRequests)
    .where(and(eq(rxChangeRequests.tenantId, p.tenantId), eq(rxChangeRequests.prescriberId, me.id), eq(rxChangeRequests.status, 'pending')))
    .orderBy(asc(rxChangeRequests.createdAt));
  if (renewals.length || changes.length) {
    scope.recordPhiAccess({ patientIds: [...new Set([...renewals, ...changes].map((r) => r.patientId))], resourceType: 'PrescriptionRequest', resourceId: null, fields: ['PrescriptionRequest.status'], action: 'read', outcome: 'allowed', detail: { renewals: renewals.length, changes: changes.length } });
  }
  return { renewals, changes };
}

export async function requestsOfPrescription(db: Db, tenantId: string, prescriptionIds: string[]) {
  if (!prescriptionIds.length) return { renewals: [], changes: [] };
  const renewals = await db.select().from(rxRenewalRequests).where(and(eq(rxRenewalRequests.tenantId, tenantId), inArray(rxRenewalRequests.prescriptionId, prescriptionIds)));
  const changes = await db.select().from(rxChangeRequests).where(and(eq(rxChangeRequests.tenantId, tenantId), inArray(rxChangeRequests.prescriptionId, prescriptionIds)));
  return { renewals, changes };
}

function denialArgs(codeArg: unknown, reasonArg: unknown): { code: DenialReasonCode; reason: string | null } {
  if (typeof codeArg !== 'string' || !(codeArg in DENIAL_REASONS)) throw badInputWith('reasonCode must be one of the NCPDP denial reason codes', 'reasonCode', 'INVALID_REASON_CODE');
  return { code: codeArg as DenialReasonCode, reason: textArg(reasonArg, 'reason', { max: 200, optional: true }) };
}

async function originalFor(scope: RequestScope, db: Db, req: { prescriptionId: string; tenantId: string; status: string }) {
  if (req.status !== 'pending') throw new AppError(ErrorCode.CONFLICT, 'The request was already answered', { reason: 'ALREADY_ANSWERED' });
  const rx = await loadPrescription(db, req.tenantId, req.prescriptionId, { forUpdate: true });
  const parties = await scriptParties(db, rx, rx.epcs ? await deaNumberFor(scope, db, rx) : null);
  requireSignedBy(principalOf(scope), parties.prescriberRow);
  return { rx, parties };
}

async function deaNumberFor(scope: RequestScope, db: Db, rx: Prescription): Promise<string | null> {
  const header = lifecycleOf(scope).epcsSignatureHeader;
  return header ? (await header(db, rx)).deaNumber : null;
}

export interface ApproveRenewalInput extends SignInput {
  refills?: unknown;
  note?: unknown;
}

/**
 * Approves a renewal: a new prescription (same drug and directions, the
 * refills granted) signed now by the prescriber (EPCS for a controlled
 * substance), sent as the RxRenewalResponse. The network's Verify / Status
 * 010 makes it accepted.
 */
export async function approveRenewal(scope: RequestScope, idArg: unknown, input: ApproveRenewalInput): Promise<RenewalRequest> {
  const p = principalOf(scope, 'rx:prescription:sign');
  const req = await loadRenewal(scope, idArg, true);
  const db = await scope.db();
  const { rx, parties } = await originalFor(scope, db, req);
  nextStatus(rx.status, 'renewalApproved');
  const refills = intArg(input.refills, 'refills', 0, 99)!;
  if (rx.deaSchedule === 'CII' && refills > 0) throw badInputWith('Schedule II prescriptions cannot have refills (21 CFR 1306.12)', 'refills', 'SCHEDULE_II_REFILLS');
  if (rx.deaSchedule && refills > 5) throw badInputWith('Schedule III-V prescriptions allow at most 5 refills (21 CFR 1306.22)', 'refills', 'CONTROLLED_REFILLS');
  const note = textArg(input.note, 'note', { max: 210, optional: true });
  const lc = lifecycleOf(scope);
  const now = lc.now();
  // safety checks again: the patient's lists may have changed since the original; a blocking alert stops the renewal
  if (lc.safety) {
    const alerts = await lc.safety.check(scope, { patientId: rx.patientId, drugRxcui: rx.drugRxcui, doseAmount: rx.doseAmount, frequencyPerDay: rx.frequencyPerDay, prescriptionId: rx.id });
    const blocking = alerts.filter(needsReason);
    if (blocking.length) throw new AppError(ErrorCode.CONFLICT, 'The renewal raises major safety alerts: write a new prescription instead', { reason: 'SAFETY_ALERTS', alerts: blocking.map((a) => a.key) });
  }
  const [renewed] = await db
    .insert(rxPrescriptions)
    .values({
      tenantId: rx.tenantId,
      patientId: rx.patientId,
      prescriberId: rx.prescriberId,
      pharmacyId: rx.pharmacyId,
      drugRxcui: rx.drugRxcui,
      drugDescription: rx.drugDescription,
      drugTty: rx.drugTty,
      ndc: rx.ndc,
      deaSchedule: rx.deaSchedule,
      quantity: rx.quantity,
      quantityUnit: rx.quantityUnit,
      daysSupply: rx.daysSupply,
      refills,
      refillsRemaining: refills,
      sig: rx.sig,
      substitutionAllowed: rx.substitutionAllowed,
      note,
      doseAmount: rx.doseAmount,
      frequencyPerDay: rx.frequencyPerDay,
      status: 'checked',
      writtenOn: isoDate(now),
      orderNumber: randomBytes(16).toString('hex'),
      pharmacyRxNumber: rx.pharmacyRxNumber,
      renewalOf: rx.id,
      checkResult: { alerts: [] },
      checkedAt: new Date(now),
      createdBy: p.id,
      createdAt: new Date(now),
      updatedAt: new Date(now),
    })
    .returning();
  await recordChange(scope, db, renewed!, { from: null, action: 'create', auditAction: 'create', detail: { renewalOf: rx.id }, fields: ['Prescription.drug', 'Prescription.sig', 'Prescription.quantity'] });
  let signedSet = {};
  if (renewed!.deaSchedule) {
    if (!lc.signControlled) throw new AppError(ErrorCode.FORBIDDEN, 'Electronic prescribing of controlled substances is not available', { reason: 'EPCS_UNAVAILABLE' });
    signedSet = await lc.signControlled(scope, db, renewed!, parties.prescriberRow, parties.pharmacyRow, input);
  }
  let current = await transition(scope, db, renewed!, 'sign', { signedAt: new Date(now), signedBy: p.id, newRxMessageId: newMessageId(), ...signedSet }, { detail: { epcs: !!renewed!.deaSchedule, renewal: true } });
  const signature = current.epcs && lc.epcsSignatureHeader ? await lc.epcsSignatureHeader(db, current) : undefined;
  const medication: ScriptMedication = scriptMedication(current);
  const message: ScriptMessage = {
    type: 'RxRenewalResponse',
    header: headerFor(current, parties.pharmacyRow, parties.prescriberRow, current.newRxMessageId!, now, {
      relatesToMessageId: req.requestMessageId,
      ...(signature ? { digitalSignature: signature.header } : {}),
    }),
    response: { status: 'Approved', ...(note ? { note } : {}) },
    patient: parties.patient,
    pharmacy: parties.pharmacy,
    prescriber: signature ? { ...parties.prescriber, deaNumber: signature.deaNumber } : parties.prescriber,
    medication,
  };
  const exchange = await sendRecorded(scope, db, current, message);
  current = await transition(scope, db, current, 'transmit', { transmittedAt: new Date(now) }, { detail: { messageId: message.header.messageId, renewal: true } });
  // Verify 010 (the pharmacy processed the response) accepts it like a Status 010
  const answer = exchange.answer.type === 'Verify' && exchange.answer.code === '010' ? { type: 'Status' as const, code: '010' } : exchange.answer;
  current = await applyNetworkAnswer(scope, db, current, answer);
  await transition(scope, db, rx, 'renewalApproved', {}, { detail: { renewalRequestId: req.id, newPrescriptionId: current.id, refills } });
  return answerRequest(db, rxRenewalRequests, req, { status: 'approved', refillsApproved: refills, decidedBy: p.id, decidedAt: new Date(now), responseMessageId: message.header.messageId, newPrescriptionId: current.id });
}

export async function denyRenewal(scope: RequestScope, idArg: unknown, codeArg: unknown, reasonArg: unknown): Promise<RenewalRequest> {
  const p = principalOf(scope, 'rx:prescription:sign');
  const req = await loadRenewal(scope, idArg, true);
  const { code, reason } = denialArgs(codeArg, reasonArg);
  const db = await scope.db();
  const { rx, parties } = await originalFor(scope, db, req);
  nextStatus(rx.status, 'renewalDenied');
  const now = lifecycleOf(scope).now();
  const message: ScriptMessage = {
    type: 'RxRenewalResponse',
    header: headerFor(rx, parties.pharmacyRow, parties.prescriberRow, newMessageId(), now, { relatesToMessageId: req.requestMessageId }),
    response: { status: 'Denied', reasonCode: code, ...(reason ? { reason } : {}) },
    patient: parties.patient,
    pharmacy: parties.pharmacy,
    prescriber: parties.prescriber,
    medication: { ...scriptMedication(rx), numberOfRefills: 0 },
  };
  const exchange = await sendRecorded(scope, db, rx, message);
  if (exchange.answer.type === 'Error') throw new AppError(ErrorCode.CONFLICT, 'The pharmacy network refused the renewal response', { reason: 'RESPONSE_REFUSED', scriptCode: exchange.answer.code });
  await transition(scope, db, rx, 'renewalDenied', {}, { detail: { renewalRequestId: req.id, reasonCode: code.toLowerCase() } });
  return answerRequest(db, rxRenewalRequests, req, { status: 'denied', denialCode: code, denialReason: reason, decidedBy: p.id, decidedAt: new Date(now), responseMessageId: message.header.messageId });
}

/** Approves a change request: `option` picks one of the proposed medications (none: approve as asked, e.g. a prior authorization). */
export async function approveChange(scope: RequestScope, idArg: unknown, optionArg: unknown): Promise<ChangeRequest> {
  const p = principalOf(scope, 'rx:prescription:sign');
  const req = await loadChange(scope, idArg, true);
  const db = await scope.db();
  const { rx, parties } = await originalFor(scope, db, req);
  nextStatus(rx.status, 'changeApproved');
  const options = req.requested as ScriptMedication[];
  const option = optionArg === undefined || optionArg === null ? null : intArg(optionArg, 'option', 0, Math.max(0, options.length - 1))!;
  if (option === null && options.length) throw badInputWith('Choose one of the proposed medications', 'option', 'OPTION_REQUIRED');
  if (option !== null && !options.length) throw badInputWith('The request proposes no medication', 'option', 'NO_OPTIONS');
  const chosen = option === null ? null : options[option]!;
  if (chosen && rx.epcs) throw badInputWith('A signed controlled-substance prescription cannot be changed: deny the request and write a new prescription', 'option', 'CONTROLLED_CHANGE');
  const now = lifecycleOf(scope).now();
  const medication = chosen ? { ...chosen, writtenDate: isoDate(now), numberOfRefills: chosen.numberOfRefills ?? rx.refills } : scriptMedication(rx);
  if (rx.deaSchedule === 'CII' && (medication.numberOfRefills ?? 0) > 0) medication.numberOfRefills = 0;
  const message: ScriptMessage = {
    type: 'RxChangeResponse',
    header: headerFor(rx, parties.pharmacyRow, parties.prescriberRow, newMessageId(), now, { relatesToMessageId: req.requestMessageId }),
    requestCode: req.requestCode as 'G',
    response: { status: chosen ? 'Approved' : req.requestCode === 'P' || req.requestCode === 'U' ? 'Validated' : 'Approved' },
    patient: parties.patient,
    pharmacy: parties.pharmacy,
    prescriber: parties.prescriber,
    medication,
  };
  const exchange = await sendRecorded(scope, db, rx, message);
  if (exchange.answer.type === 'Error') throw new AppError(ErrorCode.CONFLICT, 'The pharmacy network refused the change response', { reason: 'RESPONSE_REFUSED', scriptCode: exchange.answer.code });
  const set = chosen
    ? {
        drugDescription: chosen.description,
        ndc: chosen.ndc ?? null,
        quantity: chosen.quantity.value,
        quantityUnit: chosen.quantity.unitCode,
        daysSupply: chosen.daysSupply ?? rx.daysSupply,
        sig: chosen.sig,
        substitutionAllowed: chosen.substitutions === '0',
      }
    : {};
  await transition(scope, db, rx, 'changeApproved', set, { detail: { changeRequestId: req.id, option: option ?? -1 }, fields: chosen ? ['Prescription.drug', 'Prescription.quantity', 'Prescription.sig'] : ['Prescription.status'] });
  return answerRequest(db, rxChangeRequests, req, { status: 'approved', chosenIndex: option, decidedBy: p.id, decidedAt: new Date(now), responseMessageId: message.header.messageId });
}

export async function denyChange(scope: RequestScope, idArg: unknown, codeArg: unknown, reasonArg: unknown): Promise<ChangeRequest> {
  const p = principalOf(scope, 'rx:prescription:sign');
  const req = await loadChange(scope, idArg, true);
  const { code, reason } = denialArgs(codeArg, reasonArg);
  const db = await scope.db();
  const { rx, parties } = await originalFor(scope, db, req);
  nextStatus(rx.status, 'changeDenied');
  const now = lifecycleOf(scope).now();
  const message: ScriptMessage = {
    type: 'RxChangeResponse',
    header: headerFor(rx, parties.pharmacyRow, parties.prescriberRow, newMessageId(), now, { relatesToMessageId: req.requestMessageId }),
    requestCode: req.requestCode as 'G',
    response: { status: 'Denied', reasonCode: code, ...(reason ? { reason } : {}) },
    patient: parties.patient,
    pharmacy: parties.pharmacy,
    prescriber: parties.prescriber,
    medication: scriptMedication(rx),
  };
  const exchange = await sendRecorded(scope, db, rx, message);
  if (exchange.answer.type === 'Error') throw new AppError(ErrorCode.CONFLICT, 'The pharmacy network refused the change response', { reason: 'RESPONSE_REFUSED', scriptCode: exchange.answer.code });
  await transition(scope, db, rx, 'changeDenied', {}, { detail: { changeRequestId: req.id, reasonCode: code.toLowerCase() } });
  return answerRequest(db, rxChangeRequests, req, { status: 'denied', denialCode: code, denialReason: reason, decidedBy: p.id, decidedAt: new Date(now), responseMessageId: message.header.messageId });
}

async function answerRequest<R extends RenewalRequest | ChangeRequest>(db: Db, table: typeof rxRenewalRequests | typeof rxChangeRequests, req: R, set: Record<string, unknown>): Promise<R> {
  const t = table as typeof rxRenewalRequests;
  const rows = (await db
    .update(t)
    .set({ ...set, version: req.version + 1 } as never)
    .where(and(eq(t.tenantId, req.tenantId), eq(t.id, req.id), eq(t.version, req.version), eq(t.status, 'pending')))
    .returning()) as unknown as R[];
  if (!rows[0]) throw conflict('The request was already answered');
  return rows[0];
}
