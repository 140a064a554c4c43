import { Readable } from 'node:stream';
import { and, eq } from 'drizzle-orm';
import type { FastifyInstance, FastifyRequest, RouteOptions } from 'fastify';
import Stripe from 'stripe';
import type { Db } from '../../platform/db/index.js';
import { AppError, ErrorCode, badInput } from '../../platform/errors.js';
import { enqueueJob } from '../../platform/jobs/index.js';
import type { Logger } from '../../platform/logger.js';
import { defineRoute, systemPrincipal, type RequestScope } from '../../platform/scope/index.js';
import type { ModuleDeps, Principal } from '../../schema/index.js';
import { BILLING, ensureAccount, instanceOf, isUuid, tenantOf, type BillingInstance } from './common.js';
import { markFailed, markPaid } from './collection.js';
import { applySetupFailed, applySetupSucceeded, type Outcome } from './payment-methods.js';
import { billingInvoices, billingWebhookEvents } from './tables.js';

/**
 * Stripe webhooks at POST /webhooks/stripe, on the module route adapter:
 *   1. the billing module's authenticate hook verifies the Stripe-Signature on
 *      the raw body with the SDK (stripe.webhooks.constructEvent: HMAC-SHA256,
 *      5-minute tolerance); a missing or bad signature or a stale timestamp is
 *      a 400 and nothing is stored. A verified event acts as the system
 *      principal `system:billing.stripeWebhook` of the tenant owning the
 *      event's customer (404 for a customer Carebase did not create);
 *   2. the route stores the event by its id (unique: a replay stores nothing
 *      and queues nothing) and queues billing.processWebhook in the same
 *      transaction, then answers 200;
 *   3. the job applies it exactly once (processed_at under a row lock), with
 *      retries by the job system. Order of arrival does not matter: each
 *      event is judged by its object's state and `created` (a payment that
 *      succeeded is never undone by an older failure; an older card setup
 *      never replaces a newer card).
 */
export const WEBHOOK_PATH = '/webhooks/stripe';
export const PROCESS_WEBHOOK_JOB = 'billing.processWebhook';
const WEBHOOK_PRINCIPAL = 'billing.stripeWebhook';
const RAW_BODY = Symbol('carebase.rawBody');
const MAX_WEBHOOK_BYTES = 512 * 1024;

type RawRequest = FastifyRequest & { [RAW_BODY]?: Buffer };

/**
 * Keeps the exact bytes of /webhooks/stripe requests (the signature covers them, not a re-serialized JSON):
 * a preParsing hook on that route only, added as the route is registered.
 */
export function captureRawBody(app: FastifyInstance): void {
  app.addHook('onRoute', (route: RouteOptions) => {
    if (route.url !== WEBHOOK_PATH) return;
    const own = async (req: FastifyRequest, _reply: unknown, payload: NodeJS.ReadableStream & { receivedEncodedLength?: number }) => {
      const chunks: Buffer[] = [];
      let size = 0;
      for await (const chunk of payload as AsyncIterable<Buffer | string>) {
        const b = typeof chunk === 'string' ? Buffer.from(chunk) : chunk;
        size += b.length;
        if (size > MAX_WEBHOOK_BYTES) throw Object.assign(new Error('Webhook body too large'), { statusCode: 413 });
        chunks.push(b);
      }
      const raw = Buffer.concat(chunks);
      (req as RawRequest)[RAW_BODY] = raw;
      const out = Readable.from([raw]) as Readable & { receivedEncodedLength?: number };
      out.receivedEncodedLength = payload.receivedEncodedLength ?? raw.length;
      return out;
    };
    const existing = route.preParsing ? (Array.isArray(route.preParsing) ? route.preParsing : [route.preParsing]) : [];
    route.preParsing = [...existing, own as never];
  });
}

const signatureError = (reason: string, message: string) => new AppError(ErrorCode.BAD_REQUEST, message, { reason });

/** Verifies the signature; the parsed event (throws BAD_REQUEST: nothing is stored). */
function verified(req: FastifyRequest, instance: BillingInstance): Stripe.Event {
  const raw = (req as RawRequest)[RAW_BODY];
  const header = req.headers['stripe-signature'];
  if (typeof header !== 'string' || !header) throw signatureError('missing_signature', 'Missing Stripe-Signature header');
  if (!raw) throw signatureError('invalid_signature', 'Missing body');
  try {
    return instance.payments.constructEvent(raw, header);
  } catch (e) {
    if (e instanceof Stripe.errors.StripeSignatureVerificationError) {
      const stale = /tolerance/i.test(e.message);
      throw signatureError(stale ? 'stale_timestamp' : 'invalid_signature', stale ? 'Stripe signature timestamp outside the tolerance' : 'Invalid Stripe signature');
    }
    throw signatureError('invalid_payload', 'Invalid webhook payload');
  }
}

function customerOf(event: Stripe.Event): string | null {
  const obj = event.data?.object as { customer?: unknown; object?: unknown; id?: unknown };
  if (typeof obj?.customer === 'string') return obj.customer;
  if (obj?.customer && typeof (obj.customer as { id?: unknown }).id === 'string') return (obj.customer as { id: string }).id;
  if (obj?.object === 'customer' && typeof obj.id === 'string') return obj.id;
  return null;
}

/**
 * The billing module's authenticate hook: only for POST /webhooks/stripe (any other request: undefined, at
 * the cost of one comparison). A verified event authenticates as the webhook's system principal of the tenant
 * owning its customer.
 */
export async function authenticateWebhook(req: FastifyRequest, deps: ModuleDeps): Promise<Principal | undefined> {
  if (req.routeOptions?.url !== WEBHOOK_PATH) return undefined;
  const event = verified(req, deps.instances.get<BillingInstance>(BILLING));
  const customer = customerOf(event);
  const rows = customer ? await deps.database.sql<{ tenant_id: string | null }[]>`select billing_tenant_of_customer(${customer}) as tenant_id` : [];
  const tenantId = rows[0]?.tenant_id;
  if (!tenantId) throw new AppError(ErrorCode.NOT_FOUND, 'The event is not about a Carebase customer', { reason: 'unknown_customer' });
  // the schema's Principal names users and API keys; a webhook acts as a named system principal (audit actor type system)
  return systemPrincipal(WEBHOOK_PRINCIPAL, tenantId) as unknown as Principal;
}

/** Amounts in an event's object must be integers of minor units (anything else is refused, nothing stored). */
function checkAmounts(obj: Record<string, unknown>): void {
  for (const k of ['amount', 'amount_received', 'amount_capturable', 'amount_due', 'amount_paid']) {
    const v = obj[k];
    if (v !== undefined && v !== null && !(typeof v === 'number' && Number.isSafeInteger(v) && v >= 0)) throw badInput(`${k} must be an integer of minor units`, `data.object.${k}`);
  }
}

export const stripeWebhookRoute = defineRoute({
  method: 'POST',
  url: WEBHOOK_PATH,
  permission: null,
  idempotent: false, // deduplicated by the event id
  operationName: 'stripe webhook',
  handler: async (scope, req) => {
    const principal = scope.requirePermission(null);
    if (principal.kind !== 'system' || principal.id !== `system:${WEBHOOK_PRINCIPAL}`) throw new AppError(ErrorCode.FORBIDDEN, 'Only Stripe may call this route');
    const event = verified(req, instanceOf(scope));
    const obj = event.data.object as unknown as Record<string, unknown>;
    if (typeof obj.id !== 'string' || typeof event.created !== 'number' || !Number.isSafeInteger(event.created)) throw badInput('Malformed event', 'data.object');
    checkAmounts(obj);
    const db = await scope.db();
    const stored = await db
      .insert(billingWebhookEvents)
      .values({ id: event.id, tenantId: principal.tenantId, type: event.type, objectId: obj.id, eventCreated: event.created, payload: event as unknown as Record<string, unknown> })
      .onConflictDoNothing({ target: billingWebhookEvents.id })
      .returning({ id: billingWebhookEvents.id });
    if (stored.length) await enqueueJob(db, { job: PROCESS_WEBHOOK_JOB, tenantId: principal.tenantId, aggregateId: event.id, payload: { eventId: event.id } });
    return { received: true, duplicate: stored.length === 0 };
  },
});

/** billing.processWebhook: applies a stored event once. */
export async function processWebhookEvent(scope: RequestScope, eventId: unknown, log: Logger): Promise<Outcome | 'already_processed'> {
  const tenantId = tenantOf(scope);
  if (typeof eventId !== 'string' || !/^evt_[A-Za-z0-9]{1,64}$/.test(eventId)) throw badInput('eventId must be a Stripe event id', 'eventId');
  const db = await scope.db();
  const acct = await ensureAccount(db, tenantId, true); // the tenant's billing changes happen one at a time
  const [row] = await db
    .select()
    .from(billingWebhookEvents)
    .where(and(eq(billingWebhookEvents.tenantId, tenantId), eq(billingWebhookEvents.id, eventId)))
    .for('update');
  if (!row) throw badInput('Unknown event', 'eventId');
  if (row.processedAt) return 'already_processed';
  const event = row.payload as unknown as Stripe.Event;
  let outcome: Outcome;
  switch (event.type) {
    case 'setup_intent.succeeded':
      outcome = await applySetupSucceeded(scope, db, acct, event.data.object);
      break;
    case 'setup_intent.setup_failed':
      outcome = await applySetupFailed(scope, db, acct, event.data.object);
      break;
    case 'payment_intent.succeeded':
    case 'payment_intent.payment_failed':
      outcome = await applyPaymentIntent(scope, db, tenantId, event.type, event.data.object, log);
      break;
    default:
      outcome = 'ignored';
  }
  await db
    .update(billingWebhookEvents)
    .set({ processedAt: instanceOf(scope).now(), outcome })
    .where(and(eq(billingWebhookEvents.tenantId, tenantId), eq(billingWebhookEvents.id, eventId)));
  return outcome;
}

async function applyPaymentIntent(scope: RequestScope, db: Db, tenantId: string, type: string, pi: Stripe.PaymentIntent, log: Logger): Promise<Outcome> {
  const invoiceId = pi.metadata?.invoice_id;
  if (!isUuid(invoiceId) || pi.metadata?.tenant_id !== tenantId) return 'ignored';
  const [inv] = await db
    .select()
    .from(billingInvoices)
    .where(and(eq(billingInvoices.tenantId, tenantId), eq(billingInvoices.id, invoiceId)))
    .for('update');
  if (!inv) return 'ignored';
  const settled = inv.status === 'paid' || inv.status === 'void';
  if (type === 'payment_intent.succeeded') {
    if (settled) return inv.paymentIntentId === pi.id ? 'already_applied' : 'stale';
    if (pi.status !== 'succeeded' || pi.currency !== inv.currency || pi.amount_received < inv.amountDue) {
      log.warn({ tenantId, invoiceId, paymentIntentId: pi.id }, 'billing: payment does not match the invoice; not applied');
      return 'ignored';
    }
    await markPaid(scope, db, inv, pi.id, pi.amount_received);
    return 'applied';
  }
  // payment_failed: a succeeded payment is final, whatever arrives after it
  if (settled) return 'stale';
  if (inv.paymentIntentId === pi.id && inv.lastPaymentError) return 'already_applied'; // the collect job saw it first
  if (inv.paymentIntentId && inv.paymentIntentId !== pi.id) return 'stale'; // an earlier attempt's failure
  const err = pi.last_payment_error;
  await markFailed(scope, db, inv, pi.id, err?.decline_code ?? err?.code ?? 'card_declined');
  return 'applied';
}
