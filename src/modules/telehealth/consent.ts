import { and, desc, eq, inArray, isNull, or, sql } from 'drizzle-orm';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode, badInput, forbidden, notFound } from '../../platform/errors.js';
import { emitEvent } from '../../platform/jobs/index.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { authorizeAppointment } from './appointments.js';
import { actorOf, asAccessPrincipal, findPatient, inSavepoint, instanceOf, ownPatientIds, pgCode, principalOf, textArg, uuidArg } from './common.js';
import { isPatientOnly } from './policy.js';
import { stopRecordingsAfterWithdrawal } from './video.js';
import { CONSENT_KINDS, telehealthConsents, telehealthConsentTexts, type Appointment, type Consent, type ConsentKind, type ConsentText } from './tables.js';

/**
 * Consent: versioned texts per tenant (telehealth, recording) and the
 * consents given to them (who, when, which version, from where). A
 * participant joins a video visit only with a consent to the current
 * telehealth text; a recording starts only when every participant has
 * consented to the current recording text (for every visit, or for this one).
 */

function kindArg(v: unknown): ConsentKind {
  if (!CONSENT_KINDS.includes(v as ConsentKind)) throw badInput('kind must be telehealth or recording', 'kind');
  return v as ConsentKind;
}

/** The subject of a consent: a patient record, or a staff user for themselves. */
export type ConsentSubject = { patientId: string } | { userId: string };

const subjectLabel = (s: ConsentSubject) => ('patientId' in s ? 'patient' : 'participant');

/** The current (highest) version of a kind in the tenant, or undefined when none is published. */
export async function currentText(db: Db, tenantId: string, kind: ConsentKind): Promise<ConsentText | undefined> {
  const [row] = await db
    .select()
    .from(telehealthConsentTexts)
    .where(and(eq(telehealthConsentTexts.tenantId, tenantId), eq(telehealthConsentTexts.kind, kind)))
    .orderBy(desc(telehealthConsentTexts.version))
    .limit(1);
  return row;
}

/** Publishes a new version of a consent text (administrators); it becomes the current version at once. */
export async function publishConsentText(scope: RequestScope, input: { kind: unknown; title: unknown; body: unknown }): Promise<ConsentText> {
  const p = principalOf(scope, 'telehealth:settings:manage');
  const kind = kindArg(input.kind);
  const title = textArg(input.title, 'title', { max: 200 })!;
  const body = textArg(input.body, 'body', { min: 20, max: 50_000 })!;
  const db = await scope.db();
  try {
    const [row] = await inSavepoint(db, () =>
      db
        .insert(telehealthConsentTexts)
        .values({
          tenantId: p.tenantId,
          kind,
          title,
          body,
          publishedBy: p.kind === 'user' ? p.id : null,
          publishedAt: new Date(instanceOf(scope).now()),
          version: sql`coalesce((select max(v.version) from ${telehealthConsentTexts} v where v.tenant_id = ${p.tenantId} and v.kind = ${kind}), 0) + 1`,
        })
        .returning(),
    );
    await emitEvent(db, { type: 'consent.textPublished', tenantId: p.tenantId, aggregateId: row!.id, payload: { consentTextId: row!.id, kind, version: row!.version } });
    return row!;
  } catch (e) {
    if (pgCode(e) === '23505') throw new AppError(ErrorCode.CONFLICT, 'Another version was published at the same time; retry', { reason: 'CONCURRENT_PUBLISH' });
    throw e;
  }
}

/** The current text of a kind; NOT_FOUND when the tenant has published none. */
export async function getCurrentConsentText(scope: RequestScope, kindIn: unknown): Promise<ConsentText> {
  const p = principalOf(scope);
  if (!p.permissions.has('telehealth:consent:read') && !p.permissions.has('telehealth:consent:record')) throw forbidden();
  const text = await currentText(await scope.db(), p.tenantId, kindArg(kindIn));
  if (!text) throw notFound('Consent text');
  return text;
}

export interface RecordConsentInput {
  kind: unknown;
  /** the version the person read and accepted: must be the current one */
  version: unknown;
  /** whose consent: omit for the caller (a PATIENT user: their record; staff: themselves) */
  patientId?: unknown;
  /** recording consents only: limited to this appointment */
  appointmentId?: unknown;
}

/**
 * Records a consent to the current version of a text, with the caller's IP
 * and user agent. A PATIENT user consents for their own record; staff record
 * a patient's consent on their behalf (patientId) or their own. Recording
 * the same consent again returns the first one.
 */
export async function recordConsent(scope: RequestScope, input: RecordConsentInput): Promise<Consent> {
  const p = principalOf(scope, 'telehealth:consent:record');
  const db = await scope.db();
  const kind = kindArg(input.kind);
  const ap = asAccessPrincipal(p);
  let subject: ConsentSubject;
  let onBehalf = false;
  if (ap && isPatientOnly(ap, 'read')) {
    const own = await ownPatientIds(db, p.tenantId, p.id);
    if (!own.length) throw new AppError(ErrorCode.FORBIDDEN, 'No patient record is linked to this account', { reason: 'NO_PATIENT_RECORD' });
    const patientId = input.patientId === undefined || input.patientId === null ? own[0]! : uuidArg(input.patientId, 'patientId');
    if (!own.includes(patientId)) throw new AppError(ErrorCode.FORBIDDEN, 'Not allowed for this patient', { reason: 'PATIENT_ACCESS' });
    subject = { patientId };
  } else if (input.patientId !== undefined && input.patientId !== null) {
    const patientId = uuidArg(input.patientId, 'patientId');
    if (!(await findPatient(db, p.tenantId, patientId))) throw notFound('Patient');
    subject = { patientId };
    onBehalf = true;
  } else {
    if (p.kind !== 'user') throw badInput('patientId is required for an API key', 'patientId');
    subject = { userId: p.id };
  }
  let appointment: Appointment | undefined;
  if (input.appointmentId !== undefined && input.appointmentId !== null) {
    appointment = await authorizeAppointment(scope, input.appointmentId, 'read');
    if (kind !== 'recording') throw badInput('only a recording consent can be limited to one appointment', 'appointmentId');
    const takesPart = 'patientId' in subject ? appointment.patientId === subject.patientId : appointment.providerId === subject.userId;
    if (!takesPart) throw badInput(`the ${subjectLabel(subject)} does not take part in this appointment`, 'appointmentId');
  }
  const current = await currentText(db, p.tenantId, kind);
  if (!current) throw notFound('Consent text');
  if (input.version !== current.version) {
    if (typeof input.version !== 'number' || !Number.isInteger(input.version)) throw badInput('version must be a whole number', 'version');
    throw new AppError(ErrorCode.CONFLICT, 'This is not the current version of the consent text: read the current one', { reason: 'CONSENT_VERSION_OUTDATED', currentVersion: current.version });
  }
  const existing = await findActiveConsent(db, p.tenantId, kind, current.version, subject, appointment?.id ?? null, true);
  if (existing) return existing;
  const row = await inSavepoint(db, async () => {
    const [r] = await db
      .insert(telehealthConsents)
      .values({
        tenantId: p.tenantId,
        kind,
        consentTextId: current.id,
        version: current.version,
        patientId: 'patientId' in subject ? subject.patientId : null,
        userId: 'userId' in subject ? subject.userId : null,
        appointmentId: appointment?.id ?? null,
        recordedBy: actorOf(p),
        onBehalf,
        ip: scope.ip ?? null,
        userAgent: scope.userAgent ? scope.userAgent.slice(0, 512) : null,
        consentedAt: new Date(instanceOf(scope).now()),
      })
      .returning();
    return r!;
  }).catch(async (e) => {
    // the same consent recorded concurrently: the other one counts
    if (pgCode(e) === '23505') return (await findActiveConsent(db, p.tenantId, kind, current.version, subject, appointment?.id ?? null, true))!;
    throw e;
  });
  await emitEvent(db, {
    type: 'consent.recorded',
    tenantId: p.tenantId,
    aggregateId: row.id,
    payload: { consentId: row.id, kind, version: row.version, patientId: row.patientId, userId: row.userId, appointmentId: row.appointmentId },
    rooms: appointment ? [`visit:${appointment.id}`] : [],
  });
  if (row.patientId) {
    scope.recordPhiAccess({ patientIds: [row.patientId], resourceType: 'TelehealthConsent', resourceId: row.id, fields: ['TelehealthConsent.kind', 'TelehealthConsent.version'], action: 'create', outcome: 'allowed', detail: { kind, version: row.version, onBehalf } });
  }
  return row;
}

/** Withdraws a consent (the subject, or staff who record consents); it no longer counts from now on. */
export async function withdrawConsent(scope: RequestScope, idArg: unknown): Promise<Consent> {
  const id = uuidArg(idArg, 'id');
  const p = principalOf(scope, 'telehealth:consent:record');
  const db = await scope.db();
  const [row] = await db.select().from(telehealthConsents).where(and(eq(telehealthConsents.tenantId, p.tenantId), eq(telehealthConsents.id, id)));
  if (!row) throw notFound('Consent');
  const ap = asAccessPrincipal(p);
  if (ap && isPatientOnly(ap, 'read')) {
    const own = await ownPatientIds(db, p.tenantId, p.id);
    if (!row.patientId || !own.includes(row.patientId)) throw new AppError(ErrorCode.FORBIDDEN, 'Not allowed for this patient', { reason: 'PATIENT_ACCESS' });
  } else if (row.userId && row.userId !== p.id) {
    throw new AppError(ErrorCode.FORBIDDEN, 'Only the person who consented may withdraw it', { reason: 'NOT_THE_SUBJECT' });
  }
  if (row.withdrawnAt) return row;
  const [updated] = await db
    .update(telehealthConsents)
    .set({ withdrawnAt: new Date(instanceOf(scope).now()), withdrawnBy: actorOf(p) })
    .where(and(eq(telehealthConsents.tenantId, p.tenantId), eq(telehealthConsents.id, id), isNull(telehealthConsents.withdrawnAt)))
    .returning();
  const out = updated ?? row;
  await emitEvent(db, {
    type: 'consent.withdrawn',
    tenantId: p.tenantId,
    aggregateId: out.id,
    payload: { consentId: out.id, kind: out.kind, version: out.version, patientId: out.patientId, userId: out.userId, appointmentId: out.appointmentId },
    rooms: out.appointmentId ? [`visit:${out.appointmentId}`] : [],
  });
  if (out.patientId) scope.recordPhiAccess({ patientIds: [out.patientId], resourceType: 'TelehealthConsent', resourceId: out.id, fields: ['TelehealthConsent.withdrawnAt'], action: 'update', outcome: 'allowed' });
  // a withdrawn recording consent stops the recordings it covered, now
  if (updated) await stopRecordingsAfterWithdrawal(scope, db, updated);
  return out;
}

/** Consents of a patient (staff) or the caller's own (a PATIENT user: their record; staff: their own consents). */
export async function listConsents(scope: RequestScope, input: { patientId?: unknown }): Promise<Consent[]> {
  const p = principalOf(scope, 'telehealth:consent:read');
  const db = await scope.db();
  const ap = asAccessPrincipal(p);
  let cond;
  if (ap && isPatientOnly(ap, 'read')) {
    const own = await ownPatientIds(db, p.tenantId, p.id);
    if (input.patientId !== undefined && input.patientId !== null && !own.includes(uuidArg(input.patientId, 'patientId'))) return [];
    if (!own.length) return [];
    cond = inArray(telehealthConsents.patientId, own);
  } else if (input.patientId !== undefined && input.patientId !== null) {
    cond = eq(telehealthConsents.patientId, uuidArg(input.patientId, 'patientId'));
  } else {
    cond = eq(telehealthConsents.userId, p.id);
  }
  return db
    .select()
    .from(telehealthConsents)
    .where(and(eq(telehealthConsents.tenantId, p.tenantId), cond))
    .orderBy(desc(telehealthConsents.consentedAt), desc(telehealthConsents.id))
    .limit(500);
}

/** An active consent of the subject to `version` (for `appointmentId`, a general one counts too unless `exact`). */
async function findActiveConsent(db: Db, tenantId: string, kind: ConsentKind, version: number, subject: ConsentSubject, appointmentId: string | null, exact = false): Promise<Consent | undefined> {
  const [row] = await db
    .select()
    .from(telehealthConsents)
    .where(
      and(
        eq(telehealthConsents.tenantId, tenantId),
        eq(telehealthConsents.kind, kind),
        eq(telehealthConsents.version, version),
        'patientId' in subject ? eq(telehealthConsents.patientId, subject.patientId) : eq(telehealthConsents.userId, subject.userId),
        isNull(telehealthConsents.withdrawnAt),
        appointmentId === null
          ? isNull(telehealthConsents.appointmentId)
          : exact
            ? eq(telehealthConsents.appointmentId, appointmentId)
            : or(isNull(telehealthConsents.appointmentId), eq(telehealthConsents.appointmentId, appointmentId)),
      ),
    )
    .limit(1);
  return row;
}

/** Whether the subject has consented to the current text of `kind` (for this appointment, when given). */
export async function hasCurrentConsent(db: Db, tenantId: string, kind: ConsentKind, subject: ConsentSubject, appointmentId: string | null = null): Promise<boolean> {
  const current = await currentText(db, tenantId, kind);
  if (!current) return false;
  return !!(await findActiveConsent(db, tenantId, kind, current.version, subject, appointmentId));
}

const consentRequired = (kind: ConsentKind, who: string, extra: Record<string, unknown> = {}) =>
  new AppError(ErrorCode.FORBIDDEN, `The ${who} has not given the current ${kind} consent`, { reason: 'CONSENT_REQUIRED', kind, ...extra });

/** FORBIDDEN (reason CONSENT_REQUIRED) unless the subject consented to the current telehealth text. */
export async function requireTelehealthConsent(db: Db, tenantId: string, subject: ConsentSubject): Promise<void> {
  const current = await currentText(db, tenantId, 'telehealth');
  if (!current) throw new AppError(ErrorCode.FORBIDDEN, 'The clinic has not published a telehealth consent text', { reason: 'CONSENT_TEXT_MISSING', kind: 'telehealth' });
  if (!(await findActiveConsent(db, tenantId, 'telehealth', current.version, subject, null))) throw consentRequired('telehealth', subjectLabel(subject), { version: current.version });
}

/**
 * FORBIDDEN (reason CONSENT_REQUIRED, `missing`: how many) unless every
 * participant of the visit consented to the current recording text: the
 * patient, the provider, and every other user who joined its room.
 */
export async function requireRecordingConsents(db: Db, appointment: Appointment, otherUserIds: readonly string[]): Promise<void> {
  const current = await currentText(db, appointment.tenantId, 'recording');
  if (!current) throw new AppError(ErrorCode.FORBIDDEN, 'The clinic has not published a recording consent text', { reason: 'CONSENT_TEXT_MISSING', kind: 'recording' });
  const subjects: ConsentSubject[] = [{ patientId: appointment.patientId }, ...[...new Set([appointment.providerId, ...otherUserIds])].map((userId) => ({ userId }))];
  let missing = 0;
  for (const s of subjects) if (!(await findActiveConsent(db, appointment.tenantId, 'recording', current.version, s, appointment.id))) missing++;
  if (missing) throw new AppError(ErrorCode.FORBIDDEN, 'Not every participant has given the current recording consent', { reason: 'CONSENT_REQUIRED', kind: 'recording', version: current.version, missing });
}
