import { createHash, createPrivateKey, createPublicKey, generateKeyPairSync, sign as edSign, verify as edVerify } from 'node:crypto';
import { and, asc, eq, gte, isNull, lt, ne, sql } from 'drizzle-orm';
import type { Database, Db } from '../../platform/db/index.js';
import { withTenant } from '../../platform/db/index.js';
import { AppError, ErrorCode, conflict, notFound } from '../../platform/errors.js';
import { enqueueJob } from '../../platform/jobs/index.js';
import type { JobDefinition } from '../../platform/jobs/index.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { reauthenticate } from '../identity/index.js';
import { findPrescriber } from './directory.js';
import {
  rxDeaRegistrations,
  rxEpcsAccess,
  rxEpcsLog,
  rxEpcsReports,
  rxPrescriptions,
  rxSigningKeys,
  EPCS_SCHEDULES,
  type DeaRegistration,
  type EpcsAccess,
  type EpcsReport,
  type Pharmacy,
  type Prescriber,
  type Prescription,
} from './prescription-tables.js';
import { authorizePrescription, type SignInput } from './prescriptions.js';
import { badInputWith, forbiddenWith, isoDate, lifecycleOf, principalOf, textArg, userIdOf, uuidArg } from './rx-common.js';
import { isCalendarDate, isValidDeaNumber, type ScriptDigitalSignature } from './script/index.js';

/**
 * Electronic prescribing of controlled substances (21 CFR 1311):
 *
 * - a prescriber's DEA registrations and the schedules each covers (1311.100
 *   identity proofing recorded by an administrator);
 * - logical access control (1311.125): two different administrators, neither
 *   the prescriber, approve; one revokes; only then may the prescriber sign;
 * - at signing (1311.140): the DEA attestation text shown and confirmed (its
 *   sha256 recorded), two-factor re-authentication (password + a never-used
 *   TOTP code, identity's reauthenticate), and a digital signature with the
 *   prescriber's own Ed25519 key, whose private half is envelope encrypted by
 *   the crypto module (KMS or the local key ring) and never leaves the server
 *   unencrypted (1311.120(b)(17));
 * - the signature covers a canonical form of the prescription's content and
 *   is verifiable later with the stored public key: any change to the signed
 *   fields fails verification (tampering detected);
 * - every EPCS event, allowed or refused, goes to the append-only EPCS log
 *   (refusals in a transaction of their own, so they survive the request's
 *   rollback) and to the audit trail; a daily report per tenant (1311.215).
 * - no refills on schedule II (1306.12), at most 5 on III-V (1306.22).
 */

export const EPCS_ATTESTATION_TEXT =
  'By completing the two-factor authentication protocol at this time, you are legally signing the prescription(s) and authorizing the transmission of the above information to the pharmacy for dispensing. The two-factor authentication protocol may only be completed by the practitioner whose name and DEA registration number appear above.';
export const EPCS_ATTESTATION_SHA256 = createHash('sha256').update(EPCS_ATTESTATION_TEXT, 'utf8').digest('hex');
const SIGNATURE_VERSION = '1.0';

export type EpcsEvent =
  | 'dea_registered'
  | 'dea_revoked'
  | 'access_approved'
  | 'access_activated'
  | 'access_revoked'
  | 'key_created'
  | 'signed'
  | 'sign_refused'
  | 'signature_verified'
  | 'signature_invalid';

interface LogEntry {
  event: EpcsEvent;
  outcome: 'allowed' | 'denied';
  prescriberId?: string | null;
  prescriptionId?: string | null;
  detail?: Record<string, string | number | boolean | null>;
}

/** An EPCS event in the caller's transaction (it commits with the change it describes) and in the audit trail. */
async function logEpcs(scope: RequestScope, db: Db, e: LogEntry): Promise<void> {
  const p = principalOf(scope);
  await db.insert(rxEpcsLog).values({ tenantId: p.tenantId, event: e.event, outcome: e.outcome, prescriberId: e.prescriberId ?? null, actorId: userIdOf(p), prescriptionId: e.prescriptionId ?? null, detail: e.detail ?? {}, at: new Date(lifecycleOf(scope).now()) });
  auditEpcs(scope, e);
}

function auditEpcs(scope: RequestScope, e: LogEntry): void {
  scope.recordSecurityEvent({ type: `epcs_${e.event}`, outcome: e.outcome, detail: { ...(e.detail ?? {}), prescriberId: e.prescriberId ?? null, prescriptionId: e.prescriptionId ?? null } });
}

/** A refusal: logged in a transaction of its own (the request's rolls back), audited, then thrown. */
async function refuse(scope: RequestScope, e: Omit<LogEntry, 'outcome' | 'event'> & { reason: string }, error: AppError): Promise<never> {
  const p = principalOf(scope);
  const lc = lifecycleOf(scope);
  await withTenant(lc.database.sql, p.tenantId, (db) =>
    db.insert(rxEpcsLog).values({ tenantId: p.tenantId, event: 'sign_refused', outcome: 'denied', prescriberId: e.prescriberId ?? null, actorId: userIdOf(p), prescriptionId: e.prescriptionId ?? null, detail: { reason: e.reason, ...(e.detail ?? {}) }, at: new Date(lc.now()) }),
  );
  auditEpcs(scope, { event: 'sign_refused', outcome: 'denied', prescriberId: e.prescriberId, prescriptionId: e.prescriptionId, detail: { reason: e.reason } });
  throw error;
}

// ------------------------------------------------------------------ DEA registrations

export async function addDeaRegistration(scope: RequestScope, input: { prescriberId: unknown; deaNumber: unknown; schedules: unknown; state: unknown; expiresOn: unknown }): Promise<DeaRegistration> {
  const p = principalOf(scope, 'rx:prescriber:manage');
  const db = await scope.db();
  const prescriber = await findPrescriber(db, p.tenantId, uuidArg(input.prescriberId, 'prescriberId'));
  const deaNumber = typeof input.deaNumber === 'string' ? input.deaNumber.trim().toUpperCase() : '';
  if (!isValidDeaNumber(deaNumber)) throw badInputWith('deaNumber must be a DEA registration number with a valid check digit', 'deaNumber', 'INVALID_DEA_NUMBER');
  // the second letter is the registrant's last-name initial (9 for a business name)
  if (deaNumber[1] !== '9' && deaNumber[1] !== prescriber.lastName.trim()[0]?.toUpperCase()) throw badInputWith('The DEA number does not match the prescriber’s last name', 'deaNumber', 'DEA_NAME_MISMATCH');
  const schedules = Array.isArray(input.schedules) ? [...new Set(input.schedules as string[])] : [];
  if (!schedules.length || !schedules.every((s) => (EPCS_SCHEDULES as readonly string[]).includes(s))) throw badInputWith('schedules must be a non-empty list of CII, CIII, CIV, CV', 'schedules', 'INVALID_SCHEDULES');
  const state = textArg(input.state, 'state', { max: 2 })!.toUpperCase();
  if (!/^[A-Z]{2}$/.test(state)) throw badInputWith('state must be a two-letter state code', 'state', 'INVALID_STATE');
  const expiresOn = typeof input.expiresOn === 'string' && /^\d{4}-\d{2}-\d{2}$/.test(input.expiresOn) && isCalendarDate(input.expiresOn) ? input.expiresOn : '';
  if (!expiresOn || expiresOn <= isoDate(lifecycleOf(scope).now())) throw badInputWith('expiresOn must be a future date (YYYY-MM-DD)', 'expiresOn', 'DEA_EXPIRED');
  const [row] = await db
    .insert(rxDeaRegistrations)
    .values({ tenantId: p.tenantId, prescriberId: prescriber.id, deaNumber, schedules, state, expiresOn, recordedBy: p.id })
    .onConflictDoNothing()
    .returning();
  if (!row) throw new AppError(ErrorCode.CONFLICT, 'This DEA registration is already recorded for the prescriber', { reason: 'DEA_EXISTS' });
  await logEpcs(scope, db, { event: 'dea_registered', outcome: 'allowed', prescriberId: prescriber.id, detail: { registrationId: row.id, schedules: schedules.join(',') } });
  return row;
}

export async function revokeDeaRegistration(scope: RequestScope, idArg: unknown): Promise<DeaRegistration> {
  const p = principalOf(scope, 'rx:prescriber:manage');
  const db = await scope.db();
  const [row] = await db
    .update(rxDeaRegistrations)
    .set({ revokedAt: new Date(lifecycleOf(scope).now()), revokedBy: p.id })
    .where(and(eq(rxDeaRegistrations.tenantId, p.tenantId), eq(rxDeaRegistrations.id, uuidArg(idArg, 'id')), isNull(rxDeaRegistrations.revokedAt)))
    .returning();
  if (!row) throw notFound('DEA registration');
  await logEpcs(scope, db, { event: 'dea_revoked', outcome: 'allowed', prescriberId: row.prescriberId, detail: { registrationId: row.id } });
  return row;
}

async function liveRegistrations(db: Db, tenantId: string, prescriberId: string, today: string): Promise<DeaRegistration[]> {
  return db
    .select()
    .from(rxDeaRegistrations)
    .where(and(eq(rxDeaRegistrations.tenantId, tenantId), eq(rxDeaRegistrations.prescriberId, prescriberId), isNull(rxDeaRegistrations.revokedAt), sql`${rxDeaRegistrations.expiresOn} > ${today}`))
    .orderBy(asc(rxDeaRegistrations.createdAt));
}

// ------------------------------------------------------------------ logical access (two administrators)

async function liveAccess(db: Db, tenantId: string, prescriberId: string): Promise<EpcsAccess | undefined> {
  const [row] = await db
    .select()
    .from(rxEpcsAccess)
    .where(and(eq(rxEpcsAccess.tenantId, tenantId), eq(rxEpcsAccess.prescriberId, prescriberId), ne(rxEpcsAccess.status, 'revoked')))
    .for('update');
  return row;
}

/**
 * One administrator's approval of a prescriber's EPCS access: the first
 * opens it (pending), a second, different administrator activates it. The
 * prescriber cannot approve their own access; a live DEA registration is
 * needed first.
 */
export async function approveEpcsAccess(scope: RequestScope, prescriberIdArg: unknown): Promise<EpcsAccess> {
  const p = principalOf(scope, 'rx:epcs:approve');
  const db = await scope.db();
  const prescriber = await findPrescriber(db, p.tenantId, uuidArg(prescriberIdArg, 'prescriberId'));
  if (prescriber.userId === p.id) throw forbiddenWith('A prescriber cannot approve their own EPCS access', 'SELF_APPROVAL');
  const lc = lifecycleOf(scope);
  const now = lc.now();
  if (!(await liveRegistrations(db, p.tenantId, prescriber.id, isoDate(now))).length) throw badInputWith('Record the prescriber’s DEA registration first', 'prescriberId', 'NO_DEA_REGISTRATION');
  const current = await liveAccess(db, p.tenantId, prescriber.id);
  if (!current) {
    const [row] = await db.insert(rxEpcsAccess).values({ tenantId: p.tenantId, prescriberId: prescriber.id, status: 'pending', firstApproverId: p.id, firstApprovedAt: new Date(now) }).returning();
    await logEpcs(scope, db, { event: 'access_approved', outcome: 'allowed', prescriberId: prescriber.id, detail: { accessId: row!.id, approval: 1 } });
    return row!;
  }
  if (current.status === 'active') throw new AppError(ErrorCode.CONFLICT, 'EPCS access is already active', { reason: 'ALREADY_ACTIVE' });
  if (current.firstApproverId === p.id) throw new AppError(ErrorCode.CONFLICT, 'A second, different administrator must approve', { reason: 'SAME_APPROVER' });
  const [row] = await db
    .update(rxEpcsAccess)
    .set({ status: 'active', secondApproverId: p.id, secondApprovedAt: new Date(now), version: current.version + 1 })
    .where(and(eq(rxEpcsAccess.tenantId, p.tenantId), eq(rxEpcsAccess.id, current.id), eq(rxEpcsAccess.version, current.version)))
    .returning();
  if (!row) throw conflict('The access was changed by someone else; try again');
  await logEpcs(scope, db, { event: 'access_activated', outcome: 'allowed', prescriberId: prescriber.id, detail: { accessId: row.id, approval: 2 } });
  return row;
}

export async function revokeEpcsAccess(scope: RequestScope, prescriberIdArg: unknown): Promise<EpcsAccess> {
  const p = principalOf(scope, 'rx:epcs:approve');
  const db = await scope.db();
  const prescriber = await findPrescriber(db, p.tenantId, uuidArg(prescriberIdArg, 'prescriberId'));
  const current = await liveAccess(db, p.tenantId, prescriber.id);
  if (!current) throw notFound('EPCS access');
  const [row] = await db
    .update(rxEpcsAccess)
    .set({ status: 'revoked', revokedBy: p.id, revokedAt: new Date(lifecycleOf(scope).now()), version: current.version + 1 })
    .where(and(eq(rxEpcsAccess.tenantId, p.tenantId), eq(rxEpcsAccess.id, current.id)))
    .returning();
  await logEpcs(scope, db, { event: 'access_revoked', outcome: 'allowed', prescriberId: prescriber.id, detail: { accessId: current.id } });
  return row!;
}

export interface EpcsStatus {
  prescriber: Prescriber;
  registrations: DeaRegistration[];
  access: EpcsAccess | null;
  signingKeyFingerprint: string | null;
}

export async function epcsStatus(scope: RequestScope, prescriberIdArg: unknown): Promise<EpcsStatus> {
  const p = principalOf(scope);
  const db = await scope.db();
  const prescriber = await findPrescriber(db, p.tenantId, uuidArg(prescriberIdArg, 'prescriberId'));
  // the prescriber themself, or an EPCS administrator / reviewer
  if (prescriber.userId !== p.id && !p.permissions.has('rx:epcs:approve') && !p.permissions.has('rx:epcs:report')) throw forbiddenWith('Not allowed', 'EPCS_STATUS');
  const registrations = await db
    .select()
    .from(rxDeaRegistrations)
    .where(and(eq(rxDeaRegistrations.tenantId, p.tenantId), eq(rxDeaRegistrations.prescriberId, prescriber.id)))
    .orderBy(asc(rxDeaRegistrations.createdAt));
  const [access] = await db
    .select()
    .from(rxEpcsAccess)
    .where(and(eq(rxEpcsAccess.tenantId, p.tenantId), eq(rxEpcsAccess.prescriberId, prescriber.id)))
    .orderBy(sql`${rxEpcsAccess.firstApprovedAt} desc`)
    .limit(1);
  const [key] = await db
    .select({ fingerprint: rxSigningKeys.fingerprint })
    .from(rxSigningKeys)
    .where(and(eq(rxSigningKeys.tenantId, p.tenantId), eq(rxSigningKeys.prescriberId, prescriber.id), isNull(rxSigningKeys.retiredAt)));
  return { prescriber, registrations, access: access ?? null, signingKeyFingerprint: key?.fingerprint ?? null };
}

// ------------------------------------------------------------------ signing

/** The prescriber's current signing key, created (Ed25519, private key envelope encrypted) on first use. */
async function signingKey(scope: RequestScope, db: Db, prescriber: Prescriber): Promise<{ id: string; privateKeyPem: string }> {
  const lc = lifecycleOf(scope);
  const [key] = await db
    .select()
    .from(rxSigningKeys)
    .where(and(eq(rxSigningKeys.tenantId, prescriber.tenantId), eq(rxSigningKeys.prescriberId, prescriber.id), isNull(rxSigningKeys.retiredAt)));
  if (key) {
    const { privateKey } = await lc.crypto.decryptFields(rxSigningKeys, prescriber.tenantId, { privateKey: key.privateKey });
    return { id: key.id, privateKeyPem: privateKey };
  }
  const pair = generateKeyPairSync('ed25519');
  const publicKey = pair.publicKey.export({ type: 'spki', format: 'pem' }).toString();
  const privateKeyPem = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
  const fingerprint = createHash('sha256').update(pair.publicKey.export({ type: 'spki', format: 'der' })).digest('hex');
  const sealed = await lc.crypto.encryptFields(rxSigningKeys, prescriber.tenantId, { privateKey: privateKeyPem });
  const [row] = await db
    .insert(rxSigningKeys)
    .values({ tenantId: prescriber.tenantId, prescriberId: prescriber.id, algorithm: 'Ed25519', publicKey, privateKey: sealed.privateKey, fingerprint, createdAt: new Date(lc.now()) })
    .returning({ id: rxSigningKeys.id });
  await logEpcs(scope, db, { event: 'key_created', outcome: 'allowed', prescriberId: prescriber.id, detail: { keyId: row!.id, fingerprint: fingerprint.slice(0, 16) } });
  return { id: row!.id, privateKeyPem };
}

/**
 * The canonical form of what an EPCS signature covers: the prescription's
 * content and who signs it, as sorted-key JSON (1311.120(b)(17): the
 * information required by 21 CFR 1306.05).
 */
export function canonicalPrescription(rx: Pick<Prescription, 'id' | 'tenantId' | 'orderNumber' | 'patientId' | 'prescriberId' | 'pharmacyId' | 'drugRxcui' | 'drugDescription' | 'deaSchedule' | 'quantity' | 'quantityUnit' | 'daysSupply' | 'refills' | 'sig' | 'substitutionAllowed' | 'note' | 'writtenOn' | 'renewalOf'>, signer: { npi: string; deaNumber: string; signedAt: string; attestationSha256: string; signingKeyId: string }): string {
  const doc: Record<string, unknown> = {
    v: 1,
    prescriptionId: rx.id,
    tenantId: rx.tenantId,
    orderNumber: rx.orderNumber,
    patientId: rx.patientId,
    prescriberId: rx.prescriberId,
    prescriberNpi: signer.npi,
    deaNumber: signer.deaNumber,
    pharmacyId: rx.pharmacyId,
    drugRxcui: rx.drugRxcui,
    drugDescription: rx.drugDescription,
    deaSchedule: rx.deaSchedule,
    quantity: rx.quantity,
    quantityUnit: rx.quantityUnit,
    daysSupply: rx.daysSupply,
    refills: rx.refills,
    sig: rx.sig,
    substitutionAllowed: rx.substitutionAllowed,
    note: rx.note,
    writtenOn: rx.writtenOn,
    renewalOf: rx.renewalOf,
    signedAt: signer.signedAt,
    attestationSha256: signer.attestationSha256,
    signingKeyId: signer.signingKeyId,
  };
  return JSON.stringify(Object.fromEntries(Object.keys(doc).sort().map((k) => [k, doc[k] ?? null])));
}

/**
 * The EPCS step of signing a controlled substance (the lifecycle's
 * ControlledSigner): every requirement in order, each refusal typed, logged
 * and audited; on success the values the signed prescription stores.
 */
export async function signControlled(scope: RequestScope, db: Db, rx: Prescription, prescriber: Prescriber, pharmacy: Pharmacy, input: SignInput): Promise<Partial<typeof rxPrescriptions.$inferInsert>> {
  const lc = lifecycleOf(scope);
  const now = lc.now();
  const base = { prescriberId: prescriber.id, prescriptionId: rx.id };
  const schedule = rx.deaSchedule!;
  if (!pharmacy.epcsEnabled) return refuse(scope, { ...base, reason: 'PHARMACY_NOT_EPCS' }, badInputWith('The pharmacy does not accept electronic controlled-substance prescriptions', 'pharmacyId', 'PHARMACY_NOT_EPCS'));
  if (schedule === 'CII' && rx.refills > 0) return refuse(scope, { ...base, reason: 'SCHEDULE_II_REFILLS' }, badInputWith('Schedule II prescriptions cannot have refills (21 CFR 1306.12)', 'refills', 'SCHEDULE_II_REFILLS'));
  const registration = (await liveRegistrations(db, rx.tenantId, prescriber.id, isoDate(now))).find((r) => r.schedules.includes(schedule));
  if (!registration) return refuse(scope, { ...base, reason: 'EPCS_NO_DEA_SCHEDULE', detail: { schedule } }, forbiddenWith(`The prescriber has no DEA registration for schedule ${schedule}`, 'EPCS_NO_DEA_SCHEDULE'));
  const access = await liveAccess(db, rx.tenantId, prescriber.id);
  if (access?.status !== 'active') return refuse(scope, { ...base, reason: 'EPCS_ACCESS_NOT_GRANTED' }, forbiddenWith('EPCS access has not been granted by two administrators', 'EPCS_ACCESS_NOT_GRANTED'));
  if (typeof input.password !== 'string' || !input.password || typeof input.totpCode !== 'string' || !input.totpCode) {
    return refuse(scope, { ...base, reason: 'EPCS_TWO_FACTOR_REQUIRED' }, forbiddenWith('Signing a controlled substance needs your password and a one-time code', 'EPCS_TWO_FACTOR_REQUIRED'));
  }
  if (input.attestationSha256 !== EPCS_ATTESTATION_SHA256) return refuse(scope, { ...base, reason: 'EPCS_ATTESTATION_REQUIRED' }, badInputWith('Confirm the DEA attestation shown (its sha256, query epcsAttestation)', 'epcs.attestationSha256', 'EPCS_ATTESTATION_REQUIRED'));
  const second = await reauthenticate(scope, { password: input.password, code: input.totpCode.trim(), purpose: 'epcs_sign' });
  if (!second.ok) {
    const error =
      second.reason === 'locked'
        ? new AppError(ErrorCode.RATE_LIMITED, 'Too many failed attempts; try again later', { reason: 'EPCS_LOCKED', retryAfterSeconds: second.retryAfterSeconds ?? 60 })
        : forbiddenWith('The password or the one-time code is not valid', 'EPCS_TWO_FACTOR_FAILED');
    return refuse(scope, { ...base, reason: second.reason === 'locked' ? 'EPCS_LOCKED' : 'EPCS_TWO_FACTOR_FAILED' }, error);
  }
  const key = await signingKey(scope, db, prescriber);
  const signedAt = new Date(now);
  const canonical = canonicalPrescription(rx, { npi: prescriber.npi, deaNumber: registration.deaNumber, signedAt: signedAt.toISOString(), attestationSha256: EPCS_ATTESTATION_SHA256, signingKeyId: key.id });
  const digest = createHash('sha256').update(canonical, 'utf8').digest('base64');
  const signature = edSign(null, Buffer.from(canonical, 'utf8'), createPrivateKey(key.privateKeyPem)).toString('base64');
  await logEpcs(scope, db, { event: 'signed', outcome: 'allowed', ...base, detail: { schedule, keyId: key.id, registrationId: registration.id } });
  return { epcs: true, signature, signedDigest: digest, signingKeyId: key.id, attestationSha256: EPCS_ATTESTATION_SHA256, deaNumber: registration.deaNumber, signedAt };
}

/** Header/DigitalSignature and the DEA number of a signed controlled prescription (NewRx, CancelRx, RxRenewalResponse). */
export async function epcsSignatureHeader(_db: Db, rx: Prescription): Promise<{ header: ScriptDigitalSignature; deaNumber: string }> {
  if (!rx.epcs || !rx.signature || !rx.signedDigest || !rx.deaNumber) throw new AppError(ErrorCode.INVALID_STATE_TRANSITION, 'The controlled-substance prescription is not signed', { from: rx.status, action: 'transmit' });
  return { header: { version: SIGNATURE_VERSION, indicator: true, digestMethod: 'SHA256', digestValue: rx.signedDigest, signatureValue: rx.signature }, deaNumber: rx.deaNumber };
}

export interface SignatureCheck {
  valid: boolean;
  /** why not: NOT_SIGNED, KEY_MISSING, DIGEST_MISMATCH (content changed), SIGNATURE_INVALID */
  reason: string | null;
  keyFingerprint: string | null;
  signedAt: Date | null;
}

/**
 * Verifies an EPCS prescription's signature now: the canonical form of the
 * stored content must hash to the signed digest and the signature must
 * verify with the prescriber's public key. Audited and logged either way.
 */
export async function verifyPrescriptionSignature(scope: RequestScope, idArg: unknown): Promise<SignatureCheck> {
  const rx = await authorizePrescription(scope, idArg, 'clinical:read', 'rx:prescription:read');
  const db = await scope.db();
  const result = await checkSignature(db, rx);
  await logEpcs(scope, db, { event: result.valid ? 'signature_verified' : 'signature_invalid', outcome: result.valid ? 'allowed' : 'denied', prescriberId: rx.prescriberId, prescriptionId: rx.id, detail: { reason: result.reason } });
  scope.recordPhiAccess({ patientIds: [rx.patientId], resourceType: 'Prescription', resourceId: rx.id, fields: ['Prescription.signature'], action: 'read', outcome: 'allowed', detail: { verified: result.valid, reason: result.reason } });
  return result;
}

export async function checkSignature(db: Db, rx: Prescription): Promise<SignatureCheck> {
  if (!rx.epcs || !rx.signature || !rx.signingKeyId || !rx.signedAt || !rx.signedDigest || !rx.deaNumber || !rx.attestationSha256) return { valid: false, reason: 'NOT_SIGNED', keyFingerprint: null, signedAt: rx.signedAt };
  const [key] = await db.select().from(rxSigningKeys).where(and(eq(rxSigningKeys.tenantId, rx.tenantId), eq(rxSigningKeys.id, rx.signingKeyId)));
  if (!key) return { valid: false, reason: 'KEY_MISSING', keyFingerprint: null, signedAt: rx.signedAt };
  const prescriber = await findPrescriber(db, rx.tenantId, rx.prescriberId);
  const canonical = canonicalPrescription(rx, { npi: prescriber.npi, deaNumber: rx.deaNumber, signedAt: rx.signedAt.toISOString(), attestationSha256: rx.attestationSha256, signingKeyId: key.id });
  const digest = createHash('sha256').update(canonical, 'utf8').digest('base64');
  let signatureOk = false;
  try {
    signatureOk = edVerify(null, Buffer.from(canonical, 'utf8'), createPublicKey(key.publicKey), Buffer.from(rx.signature, 'base64'));
  } catch {
    signatureOk = false;
  }
  if (digest !== rx.signedDigest) return { valid: false, reason: 'DIGEST_MISMATCH', keyFingerprint: key.fingerprint, signedAt: rx.signedAt };
  if (!signatureOk) return { valid: false, reason: 'SIGNATURE_INVALID', keyFingerprint: key.fingerprint, signedAt: rx.signedAt };
  return { valid: true, reason: null, keyFingerprint: key.fingerprint, signedAt: rx.signedAt };
}

// ------------------------------------------------------------------ reports

export interface EpcsActivity {
  day: string;
  counts: Record<string, number>;
  signed: { prescriptionId: string; prescriberId: string; schedule: string | null }[];
  refusals: number;
  entries: (typeof rxEpcsLog.$inferSelect)[];
}

/** EPCS activity of one UTC day in the scope's tenant. */
export async function epcsActivity(db: Db, tenantId: string, day: string): Promise<EpcsActivity> {
  const from = new Date(`${day}T00:00:00.000Z`);
  const to = new Date(from.getTime() + 86_400_000);
  const entries = await db
    .select()
    .from(rxEpcsLog)
    .where(and(eq(rxEpcsLog.tenantId, tenantId), gte(rxEpcsLog.at, from), lt(rxEpcsLog.at, to)))
    .orderBy(asc(rxEpcsLog.at), asc(rxEpcsLog.id));
  const counts: Record<string, number> = {};
  for (const e of entries) counts[`${e.event}:${e.outcome}`] = (counts[`${e.event}:${e.outcome}`] ?? 0) + 1;
  const signedIds = entries.filter((e) => e.event === 'signed' && e.prescriptionId).map((e) => e.prescriptionId!);
  const schedules = signedIds.length
    ? await db
        .select({ id: rxPrescriptions.id, prescriberId: rxPrescriptions.prescriberId, schedule: rxPrescriptions.deaSchedule })
        .from(rxPrescriptions)
        .where(and(eq(rxPrescriptions.tenantId, tenantId), sql`${rxPrescriptions.id} = any(${`{${signedIds.join(',')}}`}::uuid[])`))
    : [];
  return {
    day,
    counts,
    signed: schedules.map((s) => ({ prescriptionId: s.id, prescriberId: s.prescriberId, schedule: s.schedule })),
    refusals: entries.filter((e) => e.outcome === 'denied').length,
    entries,
  };
}

function dayArg(v: unknown): string {
  if (typeof v !== 'string' || !/^\d{4}-\d{2}-\d{2}$/.test(v) || !isCalendarDate(v)) throw badInputWith('day must be a date (YYYY-MM-DD)', 'day', 'INVALID_DATE');
  return v;
}

/** The EPCS activity report of a day (live), for administrators and compliance reviewers. */
export async function epcsActivityReport(scope: RequestScope, dayArgValue: unknown): Promise<EpcsActivity> {
  const p = principalOf(scope, 'rx:epcs:report');
  const day = dayArg(dayArgValue);
  const activity = await epcsActivity(await scope.db(), p.tenantId, day);
  scope.recordPhiAccess({ patientIds: [], resourceType: 'EpcsReport', resourceId: null, fields: ['EpcsReport.entries'], action: 'read', outcome: 'allowed', detail: { day, entries: activity.entries.length } });
  return activity;
}

export async function epcsDailyReports(scope: RequestScope, fromArg: unknown, toArg: unknown): Promise<EpcsReport[]> {
  const p = principalOf(scope, 'rx:epcs:report');
  const from = dayArg(fromArg);
  const to = dayArg(toArg);
  return (await scope.db())
    .select()
    .from(rxEpcsReports)
    .where(and(eq(rxEpcsReports.tenantId, p.tenantId), gte(rxEpcsReports.day, from), sql`${rxEpcsReports.day} <= ${to}`))
    .orderBy(asc(rxEpcsReports.day));
}

/** Stores (or regenerates) the report of `day` for the tenant. */
export async function storeDailyReport(db: Db, tenantId: string, day: string): Promise<EpcsReport> {
  const a = await epcsActivity(db, tenantId, day);
  const values = { counts: a.counts, signed: a.signed, refusals: a.refusals, generatedAt: new Date() };
  const [row] = await db
    .insert(rxEpcsReports)
    .values({ tenantId, day, ...values })
    .onConflictDoUpdate({ target: [rxEpcsReports.tenantId, rxEpcsReports.day], set: values })
    .returning();
  return row!;
}

export const EPCS_DAILY_JOB = 'eprescribing.epcsDailyReport';
export const EPCS_TENANT_REPORT_JOB = 'eprescribing.epcsTenantReport';

/** The daily schedule (00:05 UTC): one tenant job per tenant with EPCS activity the day before. */
export const epcsDailySchedule: JobDefinition = {
  cron: '5 0 * * *',
  attempts: 3,
  backoffMs: 30_000,
  handler: async (_payload, ctx) => {
    const day = isoDate(Date.now() - 86_400_000);
    const n = await fanOutDailyReports(ctx.database, day);
    if (n) ctx.log.info({ tenants: n }, 'eprescribing: EPCS daily reports enqueued');
  },
};

export async function fanOutDailyReports(database: Database, day: string): Promise<number> {
  const from = new Date(`${day}T00:00:00.000Z`);
  const to = new Date(from.getTime() + 86_400_000);
  const rows = await database.sql<{ tenant_id: string }[]>`select tenant_id from rx_epcs_active_tenants(${from}, ${to})`;
  for (const r of rows) {
    await withTenant(database.sql, r.tenant_id, (db) => enqueueJob(db, { job: EPCS_TENANT_REPORT_JOB, tenantId: r.tenant_id, aggregateId: `epcs-${day}`, payload: { day } }));
  }
  return rows.length;
}

/** One tenant's report of a day, in the tenant's scope (entitlement checked, audited as the system). */
export const epcsTenantReportJob: JobDefinition = {
  attempts: 5,
  backoffMs: 5_000,
  handler: async (payload, ctx) => {
    const day = dayArg(payload.day);
    const p = ctx.scope.requirePermission(null);
    const report = await storeDailyReport(await ctx.scope.db(), p.tenantId, day);
    ctx.scope.recordPhiAccess({ patientIds: [], resourceType: 'EpcsReport', resourceId: report.id, fields: ['EpcsReport.counts'], action: 'create', outcome: 'allowed', detail: { day, refusals: report.refusals } });
  },
};
