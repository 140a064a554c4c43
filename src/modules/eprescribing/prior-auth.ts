import { and, asc, eq, notInArray } from 'drizzle-orm';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode, badInput, conflict, notFound } from '../../platform/errors.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { newMessageId } from './network/adapter.js';
import { rxPriorAuths, type Prescription, type PriorAuth, type PriorAuthStatus } from './prescription-tables.js';
import { authorizePrescription, loadPrescription, nextStatus, recordChange, scriptMedication, scriptParties, sendRecorded } from './prescriptions.js';
import { badInputWith, isoDate, lifecycleOf, principalOf, requirePatientAccess, textArg, uuidArg } from './rx-common.js';
import { isCalendarDate, type PAAttachment, type PAQuestionSet, type ScriptMessage } from './script/index.js';

/**
 * Electronic prior authorization (ePA) of a prescription, over the same
 * network adapter with the SCRIPT ePA transactions:
 *
 *   required --request (PAInitiationRequest)--> requested
 *   requested --PAInitiationResponse Open: the payer's question set--> requested (questions to answer)
 *   requested | more_info --answer (PARequest: answers + attachment metadata)--> pending
 *   pending --PAResponse--> approved | denied | more_info (Pended: another question set)
 *   denied --appeal (PAAppealRequest)--> appealed --PAAppealResponse--> approved | denied
 *   any open state --PAInitiationResponse/PAResponse Closed--> cancelled
 *
 * A pharmacy's RxChangeRequest with code P opens one as `required`; a
 * prescriber may open one too. Each change is a history row of the
 * prescription, an outbox event (prescription.priorAuthorization, ids and
 * the PA status only) and an audit entry. Illegal steps are
 * INVALID_STATE_TRANSITION and change nothing.
 */

type PaAction = 'request' | 'open' | 'answer' | 'approve' | 'deny' | 'pend' | 'appeal' | 'close';
const PA_TRANSITIONS: Record<PaAction, { from: readonly PriorAuthStatus[]; to: PriorAuthStatus }> = {
  request: { from: ['required'], to: 'requested' },
  open: { from: ['requested'], to: 'requested' },
  answer: { from: ['requested', 'more_info'], to: 'pending' },
  approve: { from: ['pending', 'appealed'], to: 'approved' },
  deny: { from: ['pending', 'appealed'], to: 'denied' },
  pend: { from: ['pending'], to: 'more_info' },
  appeal: { from: ['denied'], to: 'appealed' },
  close: { from: ['required', 'requested', 'pending', 'more_info', 'appealed'], to: 'cancelled' },
};
const OPEN_STATUSES: PriorAuthStatus[] = ['required', 'requested', 'pending', 'more_info', 'appealed'];

function paNext(pa: PriorAuth, action: PaAction): PriorAuthStatus {
  const t = PA_TRANSITIONS[action];
  if (!t.from.includes(pa.status)) throw new AppError(ErrorCode.INVALID_STATE_TRANSITION, `A prior authorization that is ${pa.status.replace('_', ' ')} cannot be changed this way (${action})`, { from: pa.status, action });
  return t.to;
}

/** The PAReferenceID of a PA (its id without hyphens: SCRIPT ids are at most 35 characters). */
export const paReference = (id: string) => id.replace(/-/g, '');
const idOfReference = (ref: string) => (/^[0-9a-f]{32}$/.test(ref) ? `${ref.slice(0, 8)}-${ref.slice(8, 12)}-${ref.slice(12, 16)}-${ref.slice(16, 20)}-${ref.slice(20)}` : null);

/** The payer the network routes ePA to (SCRIPT Header/To, mutually defined qualifier). */
const PAYER = { qualifier: 'ZZ' as const, id: 'PBM' };

async function paChanged(scope: RequestScope, db: Db, rx: Prescription, pa: PriorAuth, from: PriorAuthStatus | null, detail: Record<string, string | number | boolean | null> = {}): Promise<void> {
  await recordChange(scope, db, rx, {
    from: rx.status,
    action: 'priorAuth',
    detail: { priorAuthId: pa.id, paStatus: pa.status, paFrom: from, ...detail },
    fields: ['PriorAuthorization.status'],
    auditAction: from === null ? 'create' : 'update',
  });
}

async function updatePa(db: Db, pa: PriorAuth, set: Partial<typeof rxPriorAuths.$inferInsert>, now: number): Promise<PriorAuth> {
  const [row] = await db
    .update(rxPriorAuths)
    .set({ ...set, version: pa.version + 1, updatedAt: new Date(now) })
    .where(and(eq(rxPriorAuths.tenantId, pa.tenantId), eq(rxPriorAuths.id, pa.id), eq(rxPriorAuths.version, pa.version)))
    .returning();
  if (!row) throw conflict('The prior authorization was changed by someone else; reload it');
  return row;
}

async function openPaOf(db: Db, rx: Prescription): Promise<PriorAuth | undefined> {
  const [row] = await db
    .select()
    .from(rxPriorAuths)
    .where(and(eq(rxPriorAuths.tenantId, rx.tenantId), eq(rxPriorAuths.prescriptionId, rx.id), notInArray(rxPriorAuths.status, ['approved', 'denied', 'cancelled'])));
  return row;
}

async function insertPa(scope: RequestScope, db: Db, rx: Prescription, detail: Record<string, string | null>): Promise<PriorAuth> {
  const now = lifecycleOf(scope).now();
  const [pa] = await db.insert(rxPriorAuths).values({ tenantId: rx.tenantId, prescriptionId: rx.id, patientId: rx.patientId, status: 'required', createdAt: new Date(now), updatedAt: new Date(now) }).returning();
  await paChanged(scope, db, rx, pa!, null, detail);
  return pa!;
}

/** Opens a prior authorization for the prescription (a pharmacy's RxChangeRequest P); an open one is reused. */
export async function createPriorAuthFromChange(scope: RequestScope, db: Db, rx: Prescription, changeRequestId: string): Promise<PriorAuth> {
  return (await openPaOf(db, rx)) ?? insertPa(scope, db, rx, { changeRequestId });
}

/** A prescriber opens a prior authorization (the payer is known to require one). */
export async function createPriorAuth(scope: RequestScope, prescriptionIdArg: unknown): Promise<PriorAuth> {
  const rx = await authorizePrescription(scope, prescriptionIdArg, 'clinical:write', 'rx:prescription:write', { forUpdate: true });
  nextStatus(rx.status, 'priorAuth');
  const db = await scope.db();
  if (await openPaOf(db, rx)) throw new AppError(ErrorCode.CONFLICT, 'The prescription already has an open prior authorization', { reason: 'PRIOR_AUTH_OPEN' });
  return insertPa(scope, db, rx, { changeRequestId: null });
}

async function authorizePa(scope: RequestScope, idArg: unknown, action: 'clinical:read' | 'clinical:write'): Promise<PriorAuth> {
  const p = principalOf(scope, action === 'clinical:read' ? 'rx:prescription:read' : 'rx:prescription:write');
  const db = await scope.db();
  const id = uuidArg(idArg, 'id');
  const q = () => db.select().from(rxPriorAuths).where(and(eq(rxPriorAuths.tenantId, p.tenantId), eq(rxPriorAuths.id, id)));
  const [found] = await q();
  if (!found) throw notFound('Prior authorization');
  await requirePatientAccess(scope, db, found.patientId, action, 'PriorAuthorization');
  if (action === 'clinical:read') return found;
  // a change locks the prescription, then the PA (the order the inbound route locks them in)
  await loadPrescription(db, found.tenantId, found.prescriptionId, { forUpdate: true });
  const [pa] = await q().for('update');
  return pa!;
}

export const getPriorAuth = (scope: RequestScope, id: unknown) => authorizePa(scope, id, 'clinical:read');

export async function priorAuthsOf(db: Db, tenantId: string, prescriptionId: string): Promise<PriorAuth[]> {
  return db
    .select()
    .from(rxPriorAuths)
    .where(and(eq(rxPriorAuths.tenantId, tenantId), eq(rxPriorAuths.prescriptionId, prescriptionId)))
    .orderBy(asc(rxPriorAuths.createdAt));
}

async function paContext(scope: RequestScope, db: Db, pa: PriorAuth) {
  const rx = await loadPrescription(db, pa.tenantId, pa.prescriptionId, { forUpdate: true });
  const parties = await scriptParties(db, rx, rx.deaNumber);
  const header = (messageId: string) => ({
    to: PAYER,
    from: { qualifier: 'D' as const, id: parties.prescriberRow.npi },
    messageId,
    sentTime: new Date(lifecycleOf(scope).now()).toISOString(),
    prescriberOrderNumber: rx.orderNumber,
  });
  return { rx, parties, header, medication: scriptMedication(rx) };
}

/** Sends an ePA message; the network's Error leaves everything as it was (CONFLICT). */
async function sendPa(scope: RequestScope, db: Db, rx: Prescription, message: ScriptMessage): Promise<void> {
  const exchange = await sendRecorded(scope, db, rx, message);
  if (exchange.answer.type === 'Error') throw new AppError(ErrorCode.CONFLICT, 'The network refused the prior authorization message', { reason: 'PA_REFUSED', scriptCode: exchange.answer.code });
}

/** required -> requested: PAInitiationRequest to the payer. */
export async function requestPriorAuth(scope: RequestScope, idArg: unknown): Promise<PriorAuth> {
  const pa = await authorizePa(scope, idArg, 'clinical:write');
  const to = paNext(pa, 'request');
  const db = await scope.db();
  const { rx, parties, header, medication } = await paContext(scope, db, pa);
  await sendPa(scope, db, rx, { type: 'PAInitiationRequest', header: header(newMessageId()), paReferenceId: paReference(pa.id), patient: parties.patient, prescriber: parties.prescriber, medication });
  const row = await updatePa(db, pa, { status: to }, lifecycleOf(scope).now());
  await paChanged(scope, db, rx, row, pa.status);
  return row;
}

export interface PaAnswerInput {
  questionId: unknown;
  answer: unknown;
}
export interface PaAttachmentInput {
  fileName: unknown;
  contentType: unknown;
  sizeBytes: unknown;
  sha256: unknown;
  description?: unknown;
}

function attachmentsArg(list: unknown): PAAttachment[] {
  if (list === undefined || list === null) return [];
  if (!Array.isArray(list) || list.length > 20) throw badInput('attachments must be a list of at most 20', 'attachments');
  return (list as PaAttachmentInput[]).map((a) => {
    const sha = typeof a.sha256 === 'string' ? a.sha256.toLowerCase() : '';
    if (!/^[0-9a-f]{64}$/.test(sha)) throw badInputWith('attachments.sha256 must be the document’s sha256 (64 hex)', 'attachments.sha256', 'INVALID_ATTACHMENT');
    const mime = typeof a.contentType === 'string' ? a.contentType.trim() : '';
    if (!/^(application\/pdf|image\/(png|jpeg|tiff)|text\/plain)$/.test(mime)) throw badInputWith('attachments.contentType must be application/pdf, image/png, image/jpeg, image/tiff or text/plain', 'attachments.contentType', 'INVALID_ATTACHMENT');
    if (typeof a.sizeBytes !== 'number' || !Number.isInteger(a.sizeBytes) || a.sizeBytes < 1 || a.sizeBytes > 25 * 1024 * 1024) throw badInputWith('attachments.sizeBytes must be 1 byte to 25 MiB', 'attachments.sizeBytes', 'INVALID_ATTACHMENT');
    const description = textArg(a.description, 'attachments.description', { max: 200, optional: true });
    return { controlNumber: sha, fileName: textArg(a.fileName, 'attachments.fileName', { max: 255 })!, mimeType: mime, sizeBytes: a.sizeBytes, ...(description ? { description } : {}) };
  });
}

/** The payer's latest question set with the answers given, each checked against its question. */
function answeredSet(set: PAQuestionSet, answersArg: unknown): PAQuestionSet {
  if (!Array.isArray(answersArg) || answersArg.length > 100) throw badInput('answers must be a list', 'answers');
  const given = new Map<string, string>();
  for (const a of answersArg as PaAnswerInput[]) {
    if (typeof a?.questionId !== 'string' || !set.questions.some((q) => q.id === a.questionId)) throw badInputWith('An answer names a question the payer did not ask', 'answers.questionId', 'UNKNOWN_QUESTION');
    given.set(a.questionId, textArg(a.answer, 'answers.answer', { max: 2000 })!);
  }
  const questions = set.questions.map((q) => {
    const answer = given.get(q.id);
    if (answer === undefined) {
      if (q.required) throw badInputWith(`Question ${q.id} needs an answer`, 'answers', 'ANSWER_REQUIRED');
      return { ...q };
    }
    const ok =
      q.type === 'Numeric' ? /^-?\d{1,12}(\.\d{1,6})?$/.test(answer) : q.type === 'Date' ? /^\d{4}-\d{2}-\d{2}$/.test(answer) && isCalendarDate(answer) : q.type === 'Boolean' ? /^(true|false)$/.test(answer) : q.type === 'Select' ? (q.choices ?? []).some((c) => c.id === answer) : true;
    if (!ok) throw badInputWith(`The answer to ${q.id} is not a valid ${q.type} answer`, 'answers.answer', 'INVALID_ANSWER');
    return { ...q, answer };
  });
  return { id: set.id, questions };
}

/** requested (questions received) | more_info -> pending: PARequest with the answers and attachment metadata. */
export async function answerPriorAuth(scope: RequestScope, idArg: unknown, answersArg: unknown, attachmentsArgValue: unknown): Promise<PriorAuth> {
  const pa = await authorizePa(scope, idArg, 'clinical:write');
  const to = paNext(pa, 'answer');
  const sets = pa.questionSets as PAQuestionSet[];
  const current = sets.at(-1);
  if (!pa.caseId || !current) throw new AppError(ErrorCode.INVALID_STATE_TRANSITION, 'The payer has not sent its questions yet', { from: pa.status, action: 'answer' });
  const answered = answeredSet(current, answersArg);
  const attachments = attachmentsArg(attachmentsArgValue);
  const db = await scope.db();
  const { rx, parties, header, medication } = await paContext(scope, db, pa);
  await sendPa(scope, db, rx, { type: 'PARequest', header: header(newMessageId()), paReferenceId: paReference(pa.id), caseId: pa.caseId, patient: parties.patient, prescriber: parties.prescriber, medication, questionSet: answered, attachments });
  const answers = { ...pa.answers, ...Object.fromEntries(answered.questions.filter((q) => q.answer !== undefined).map((q) => [q.id, q.answer])) };
  const row = await updatePa(db, pa, { status: to, answers, attachments: [...(pa.attachments as PAAttachment[]), ...attachments] }, lifecycleOf(scope).now());
  await paChanged(scope, db, rx, row, pa.status, { answers: answered.questions.filter((q) => q.answer !== undefined).length, attachments: attachments.length });
  return row;
}

/** denied -> appealed: PAAppealRequest with the reason and attachment metadata. */
export async function appealPriorAuth(scope: RequestScope, idArg: unknown, reasonArg: unknown, attachmentsArgValue: unknown): Promise<PriorAuth> {
  const pa = await authorizePa(scope, idArg, 'clinical:write');
  const to = paNext(pa, 'appeal');
  const reason = textArg(reasonArg, 'reason', { min: 10, max: 2000 })!;
  const attachments = attachmentsArg(attachmentsArgValue);
  const db = await scope.db();
  const { rx, parties, header, medication } = await paContext(scope, db, pa);
  await sendPa(scope, db, rx, { type: 'PAAppealRequest', header: header(newMessageId()), paReferenceId: paReference(pa.id), caseId: pa.caseId!, patient: parties.patient, prescriber: parties.prescriber, medication, reason, attachments });
  const row = await updatePa(db, pa, { status: to, appealReason: reason, attachments: [...(pa.attachments as PAAttachment[]), ...attachments] }, lifecycleOf(scope).now());
  await paChanged(scope, db, rx, row, pa.status, { attachments: attachments.length });
  return row;
}

/** Applies a payer's ePA message that arrived on the inbound route (the caller found its prescription). */
export async function applyPaMessage(scope: RequestScope, db: Db, rx: Prescription, m: Extract<ScriptMessage, { type: 'PAInitiationResponse' | 'PAResponse' | 'PAAppealResponse' }>): Promise<void> {
  const id = idOfReference(m.paReferenceId);
  const [pa] = id ? await db.select().from(rxPriorAuths).where(and(eq(rxPriorAuths.tenantId, rx.tenantId), eq(rxPriorAuths.id, id), eq(rxPriorAuths.prescriptionId, rx.id))).for('update') : [];
  if (!pa) throw notFound('Prior authorization');
  const now = lifecycleOf(scope).now();
  let action: PaAction;
  let set: Partial<typeof rxPriorAuths.$inferInsert> = {};
  const r = m.response as
    | { status: 'Open'; caseId: string; questionSet: PAQuestionSet }
    | { status: 'Closed' | 'Denied'; reasonCode: string }
    | { status: 'Approved'; expirationDate: string }
    | { status: 'Pended'; questionSet: PAQuestionSet };
  if (r.status === 'Open') {
    // a case opens once
    if (pa.caseId) throw new AppError(ErrorCode.INVALID_STATE_TRANSITION, 'The payer case is already open', { from: pa.status, action: 'open' });
    action = 'open';
    set = { caseId: r.caseId, questionSets: [...(pa.questionSets as PAQuestionSet[]), r.questionSet] };
  } else if (r.status === 'Approved') {
    action = 'approve';
    set = { approvedUntil: r.expirationDate, determinationReason: null };
  } else if (r.status === 'Denied') {
    action = 'deny';
    set = { determinationReason: r.reasonCode };
  } else if (r.status === 'Pended') {
    action = 'pend';
    set = { questionSets: [...(pa.questionSets as PAQuestionSet[]), r.questionSet] };
  } else {
    action = 'close';
    set = { determinationReason: r.reasonCode };
  }
  if (m.type !== 'PAInitiationResponse' && pa.caseId && m.caseId !== pa.caseId) throw badInputWith('The payer case id does not match', 'caseId', 'CASE_MISMATCH');
  const to = paNext(pa, action);
  const row = await updatePa(db, pa, { ...set, status: to }, now);
  await paChanged(scope, db, rx, row, pa.status, { determination: action, ...(set.approvedUntil ? { approvedUntil: isoDate(Date.parse(set.approvedUntil)) } : {}) });
}

export { OPEN_STATUSES as PRIOR_AUTH_OPEN_STATUSES };

/** The prior authorizations of a prescription the caller may read, oldest first. */
export async function listPriorAuths(scope: RequestScope, prescriptionIdArg: unknown): Promise<PriorAuth[]> {
  const rx = await authorizePrescription(scope, prescriptionIdArg, 'clinical:read', 'rx:prescription:read');
  return priorAuthsOf(await scope.db(), rx.tenantId, rx.id);
}

/** The question sets of a PA with the answers given so far filled in. */
export function questionSetsOf(pa: PriorAuth): PAQuestionSet[] {
  const answers = pa.answers as Record<string, string>;
  return (pa.questionSets as PAQuestionSet[]).map((set) => ({ id: set.id, questions: set.questions.map((q) => (answers[q.id] === undefined ? { ...q } : { ...q, answer: answers[q.id] })) }));
}

/** True when the payer's latest question set waits for the prescriber's answers. */
export const awaitingAnswers = (pa: PriorAuth): boolean => PA_TRANSITIONS.answer.from.includes(pa.status) && !!pa.caseId && (pa.questionSets as unknown[]).length > 0;
