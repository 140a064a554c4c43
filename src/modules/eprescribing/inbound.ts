import type { FastifyRequest } from 'fastify';
import { and, eq } from 'drizzle-orm';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode, isAppError, notFound } from '../../platform/errors.js';
import { defineRoute, type RequestScope } from '../../platform/scope/index.js';
import type { ModuleDeps, Principal } from '../../schema/index.js';
import { INBOUND_PATH, type LifecycleRuntime } from './lifecycle.js';
import { answerHeader, newMessageId } from './network/adapter.js';
import { rxChangeRequests, rxPrescriptions, rxRenewalRequests, rxScriptMessages, type Prescription } from './prescription-tables.js';
import { applyNetworkAnswer, loadPrescription, transition } from './prescriptions.js';
import { applyPaMessage, createPriorAuthFromChange } from './prior-auth.js';
import { EPRESCRIBING_MODULE, inSavepoint, principalOf, type LifecycleHolder } from './rx-common.js';
import { buildScriptMessage, parseScriptMessage, type ErrorMessage, type ScriptMessage, type StatusMessage } from './script/index.js';

/**
 * The pharmacy network's inbound route: `POST /eprescribing/network/inbound`,
 * SCRIPT 2017071 XML (Content-Type application/xml, kept raw), authenticated
 * by the adapter (built-in transport: X-Script-Signature HMAC over the raw
 * body). The module's authenticate hook refuses an unsigned or badly signed
 * message (401) and a malformed one (400) before anything runs, then turns
 * its PrescriberOrderNumber / RelatesToMessageID into the tenant (an unknown
 * one is 404); the route runs in that tenant's scope as the system principal
 * `system:pharmacy-network`, which holds only rx:network:inbound.
 *
 * Each message is stored once by MessageID (a redelivery gets the same
 * Status and changes nothing), applied in a savepoint, and answered with a
 * SCRIPT Status 010 (HTTP 200); a message that cannot apply (an RxFill for a
 * cancelled prescription) is answered with a SCRIPT Error 900 and HTTP 409,
 * and changes nothing but the record of its arrival.
 */
export const INBOUND_PERMISSION = 'rx:network:inbound';
export const NETWORK_PRINCIPAL_ID = 'system:pharmacy-network';
export const SCRIPT_CONTENT_TYPES = ['application/xml', 'text/xml'];

function runtimeOf(deps: ModuleDeps): LifecycleRuntime {
  return deps.instances.get<LifecycleHolder>(EPRESCRIBING_MODULE).lifecycle;
}

function rawBody(req: FastifyRequest): string {
  if (typeof req.body !== 'string') throw new AppError(ErrorCode.BAD_REQUEST, 'SCRIPT messages are sent as application/xml', { reason: 'SCRIPT_CONTENT_TYPE' });
  return req.body;
}

/** The manifest's authenticate hook: undefined for every other request. */
export async function authenticateInbound(req: FastifyRequest, deps: ModuleDeps): Promise<Principal | undefined> {
  if (req.routeOptions?.url !== INBOUND_PATH || req.method !== 'POST') return undefined;
  const runtime = runtimeOf(deps);
  const body = rawBody(req);
  const refusal = runtime.network.authenticateInbound(body, req.headers);
  if (refusal) throw new AppError(ErrorCode.UNAUTHENTICATED, 'The SCRIPT message is not signed by the pharmacy network', { reason: `SIGNATURE_${refusal.toUpperCase()}` });
  const message = parseScriptMessage(body); // ScriptParseError / ScriptValidationError: 400, nothing runs
  const order = message.header.prescriberOrderNumber ?? null;
  const relates = message.header.relatesToMessageId ?? null;
  const rows = order || relates ? await deps.database.sql<{ tenant_id: string }[]>`select tenant_id from rx_route_inbound(${order}, ${relates})` : [];
  if (rows.length !== 1) throw notFound('Prescription');
  runtime.inbound.set(req, message);
  // a system principal of the prescription's tenant (the scope accepts system principals)
  return { kind: 'system', id: NETWORK_PRINCIPAL_ID, tenantId: rows[0]!.tenant_id, roles: [], permissions: new Set([INBOUND_PERMISSION]) } as unknown as Principal;
}

export const inboundRoute = defineRoute({
  method: 'POST',
  url: INBOUND_PATH,
  permission: INBOUND_PERMISSION,
  idempotent: false,
  operationName: 'script:inbound',
  handler: async (scope, req, reply) => {
    const runtime = scope.module<LifecycleHolder>(EPRESCRIBING_MODULE).lifecycle;
    const message = runtime.inbound.get(req);
    if (!message) throw new AppError(ErrorCode.UNAUTHENTICATED, 'The SCRIPT message is not signed by the pharmacy network');
    const answer = await receive(scope, message, rawBody(req));
    reply.code(answer.type === 'Error' ? 409 : 200).header('content-type', 'application/xml; charset=utf-8');
    return buildScriptMessage(answer);
  },
});

const statusAnswer = (m: ScriptMessage): StatusMessage => ({ type: 'Status', header: answerHeader(m.header, newMessageId()), code: '010', description: 'Received by prescriber system' });
const errorAnswer = (m: ScriptMessage, description: string, descriptionCode = '008'): ErrorMessage => ({ type: 'Error', header: answerHeader(m.header, newMessageId()), code: '900', descriptionCode, description });

/** Stores an inbound message once and applies it; the SCRIPT answer to send back. */
export async function receive(scope: RequestScope, message: ScriptMessage, xml: string): Promise<StatusMessage | ErrorMessage> {
  const p = principalOf(scope, INBOUND_PERMISSION);
  const db = await scope.db();
  const lc = scope.module<LifecycleHolder>(EPRESCRIBING_MODULE).lifecycle;
  const rx = await prescriptionOf(db, p.tenantId, message);
  const { xml: sealed } = await lc.crypto.encryptFields(rxScriptMessages, p.tenantId, { xml });
  const [stored] = await db
    .insert(rxScriptMessages)
    .values({
      tenantId: p.tenantId,
      prescriptionId: rx?.id ?? null,
      direction: 'inbound',
      messageType: message.type,
      messageId: message.header.messageId,
      relatesToMessageId: message.header.relatesToMessageId ?? null,
      prescriberOrderNumber: message.header.prescriberOrderNumber ?? null,
      rxReferenceNumber: message.header.rxReferenceNumber ?? null,
      xml: sealed,
      createdAt: new Date(lc.now()),
    })
    .onConflictDoNothing()
    .returning({ id: rxScriptMessages.id });
  if (!stored) {
    // a redelivery: the answer it got the first time
    const [first] = await db
      .select({ answerType: rxScriptMessages.answerType, answerCode: rxScriptMessages.answerCode })
      .from(rxScriptMessages)
      .where(and(eq(rxScriptMessages.tenantId, p.tenantId), eq(rxScriptMessages.direction, 'inbound'), eq(rxScriptMessages.messageId, message.header.messageId)));
    return first?.answerType === 'Error' ? errorAnswer(message, 'Already refused') : statusAnswer(message);
  }
  let answer: StatusMessage | ErrorMessage;
  try {
    if (!rx) throw notFound('Prescription');
    await inSavepoint(db, () => apply(scope, db, rx, message));
    answer = statusAnswer(message);
  } catch (e) {
    if (!isAppError(e) || ![ErrorCode.INVALID_STATE_TRANSITION, ErrorCode.NOT_FOUND, ErrorCode.CONFLICT, ErrorCode.BAD_USER_INPUT].includes(e.code as never)) throw e;
    answer = errorAnswer(message, e.code === ErrorCode.INVALID_STATE_TRANSITION ? 'Not valid for the prescription in its current state' : e.code === ErrorCode.NOT_FOUND ? 'Prescription not found' : 'Could not be applied');
    if (rx) scope.recordPhiAccess({ patientIds: [rx.patientId], resourceType: 'Prescription', resourceId: rx.id, fields: ['Prescription.status'], action: 'update', outcome: 'denied', detail: { scriptMessage: message.type, reason: e.code } });
  }
  await db
    .update(rxScriptMessages)
    .set({ answerType: answer.type, answerCode: answer.code })
    .where(and(eq(rxScriptMessages.tenantId, p.tenantId), eq(rxScriptMessages.id, stored.id)));
  return answer;
}

/** The prescription a message is about: by PrescriberOrderNumber, else by the outbound message it answers. */
async function prescriptionOf(db: Db, tenantId: string, m: ScriptMessage): Promise<Prescription | undefined> {
  if (m.header.prescriberOrderNumber) {
    const [rx] = await db
      .select()
      .from(rxPrescriptions)
      .where(and(eq(rxPrescriptions.tenantId, tenantId), eq(rxPrescriptions.orderNumber, m.header.prescriberOrderNumber)))
      .for('update');
    if (rx) return rx;
  }
  if (m.header.relatesToMessageId) {
    const [msg] = await db
      .select({ prescriptionId: rxScriptMessages.prescriptionId })
      .from(rxScriptMessages)
      .where(and(eq(rxScriptMessages.tenantId, tenantId), eq(rxScriptMessages.direction, 'outbound'), eq(rxScriptMessages.messageId, m.header.relatesToMessageId)));
    if (msg?.prescriptionId) return loadPrescription(db, tenantId, msg.prescriptionId, { forUpdate: true });
  }
  return undefined;
}

async function apply(scope: RequestScope, db: Db, rx: Prescription, m: ScriptMessage): Promise<void> {
  const now = new Date(scope.module<LifecycleHolder>(EPRESCRIBING_MODULE).lifecycle.now());
  switch (m.type) {
    case 'RxFill': {
      const refills = m.medicationDispensed.numberOfRefills;
      const base = { pharmacyRxNumber: m.header.rxReferenceNumber ?? rx.pharmacyRxNumber };
      const detail = { fillStatus: m.fillStatus.status.toLowerCase(), messageId: m.header.messageId };
      if (m.fillStatus.status === 'Dispensed') {
        await transition(
          scope,
          db,
          rx,
          'fill',
          { ...base, dispensedAt: rx.dispensedAt ?? now, fills: rx.fills + 1, refillsRemaining: refills === undefined ? Math.max(0, rx.refillsRemaining - (rx.fills > 0 ? 1 : 0)) : Math.min(rx.refills, refills) },
          { detail, fields: ['Prescription.status', 'Prescription.fills'] },
        );
      } else if (m.fillStatus.status === 'PartiallyDispensed') await transition(scope, db, rx, 'partialFill', base, { detail });
      else await transition(scope, db, rx, 'notDispensed', base, { detail });
      return;
    }
    case 'CancelRxResponse': {
      if (m.response.status === 'Approved') await transition(scope, db, rx, 'cancelApproved', { cancelledAt: now }, { detail: { messageId: m.header.messageId } });
      else await transition(scope, db, rx, 'cancelDenied', { status: rx.statusBeforeCancel ?? 'accepted', statusBeforeCancel: null }, { detail: { reasonCode: m.response.reasonCode ?? null } });
      return;
    }
    case 'RxRenewalRequest': {
      const [req] = await db
        .insert(rxRenewalRequests)
        .values({ tenantId: rx.tenantId, prescriptionId: rx.id, patientId: rx.patientId, prescriberId: rx.prescriberId, requestMessageId: m.header.messageId, createdAt: now })
        .returning();
      await transition(scope, db, rx, 'renewalRequested', { pharmacyRxNumber: m.header.rxReferenceNumber ?? rx.pharmacyRxNumber }, { detail: { renewalRequestId: req!.id } });
      return;
    }
    case 'RxChangeRequest': {
      const [req] = await db
        .insert(rxChangeRequests)
        .values({
          tenantId: rx.tenantId,
          prescriptionId: rx.id,
          patientId: rx.patientId,
          prescriberId: rx.prescriberId,
          requestMessageId: m.header.messageId,
          requestCode: m.requestCode,
          requested: m.requested,
          createdAt: now,
        })
        .returning();
      await transition(scope, db, rx, 'changeRequested', {}, { detail: { changeRequestId: req!.id, requestCode: m.requestCode.toLowerCase() } });
      // P: the payer needs a prior authorization before the pharmacy can dispense
      if (m.requestCode === 'P') await createPriorAuthFromChange(scope, db, rx, req!.id);
      return;
    }
    case 'Status':
    case 'Error':
      // an answer sent later about the NewRx (e.g. the pharmacy refused it after the network accepted it)
      if (rx.newRxMessageId && m.header.relatesToMessageId === rx.newRxMessageId) {
        await applyNetworkAnswer(scope, db, rx, m);
        return;
      }
      // about another message (a CancelRx, a response): kept with the traffic, the prescription does not change
      return;
    case 'Verify':
      return;
    case 'PAInitiationResponse':
    case 'PAResponse':
    case 'PAAppealResponse':
      await applyPaMessage(scope, db, rx, m);
      return;
    default:
      throw new AppError(ErrorCode.BAD_USER_INPUT, `${m.type} is not accepted from the pharmacy network`, { reason: 'SCRIPT_DIRECTION' });
  }
}
