import { randomBytes } from 'node:crypto';
import path from 'node:path';
import Stripe from 'stripe';
import type { Config } from '../../config.js';
import { ConfigError } from '../../config.js';
import { AppError, ErrorCode } from '../../platform/errors.js';
import type { Logger } from '../../platform/logger.js';
import { StripeSimulator } from './stripe-simulator/server.js';

/**
 * The payment adapter: Stripe through the `stripe` SDK. With
 * STRIPE_SECRET_KEY it talks to api.stripe.com; without it, to the Stripe
 * simulator (an embedded one this process starts, or STRIPE_API_URL): the
 * same SDK calls, the same objects and errors, the same signed webhooks.
 * Carebase owns the invoices (proration to the minute, metered usage) and
 * collects each one with an off-session PaymentIntent on the customer's
 * default card, collected once through a SetupIntent.
 */
export const WEBHOOK_EVENTS = ['setup_intent.succeeded', 'setup_intent.setup_failed', 'payment_intent.succeeded', 'payment_intent.payment_failed'] as const;

export type ChargeResult =
  | { status: 'succeeded'; paymentIntentId: string; amountReceived: number; created: number }
  | { status: 'failed'; paymentIntentId: string | null; declineCode: string; created: number };

export interface CardDetails {
  id: string;
  brand: string;
  last4: string;
  expires: string;
}

export interface PaymentAdapter {
  readonly mode: 'stripe' | 'simulator';
  /** the SDK client (tests and the simulator's frontend stand-in use it too) */
  readonly stripe: Stripe;
  /** the signing secret webhooks are verified with */
  readonly webhookSecret: string;
  /** the embedded simulator, when this process runs one */
  readonly simulator?: StripeSimulator;
  createCustomer(tenantId: string, name: string): Promise<string>;
  createSetupIntent(customerId: string, tenantId: string, idempotencyKey: string): Promise<{ id: string; clientSecret: string; status: string }>;
  card(paymentMethodId: string): Promise<CardDetails>;
  setDefaultPaymentMethod(customerId: string, paymentMethodId: string): Promise<void>;
  charge(input: { tenantId: string; invoiceId: string; invoiceNumber: string; attempt: number; customerId: string; paymentMethodId: string; amount: number; currency: string }): Promise<ChargeResult>;
  /** verifies the Stripe-Signature of a raw body (throws StripeSignatureVerificationError) and parses the event */
  constructEvent(raw: Buffer | string, signature: string | undefined, receivedAtSec?: number): Stripe.Event;
  /** registers this app's webhook URL with the simulator (simulator mode only) */
  registerWebhookUrl?(url: string): Promise<void>;
  close(): Promise<void>;
}

function client(secretKey: string, apiUrl?: string): Stripe {
  if (!apiUrl) return new Stripe(secretKey, { maxNetworkRetries: 2, timeout: 20_000, telemetry: false, appInfo: { name: 'Carebase' } });
  const u = new URL(apiUrl);
  return new Stripe(secretKey, {
    host: u.hostname,
    port: u.port || (u.protocol === 'https:' ? 443 : 80),
    protocol: u.protocol === 'https:' ? 'https' : 'http',
    maxNetworkRetries: 2,
    timeout: 20_000,
    telemetry: false,
    appInfo: { name: 'Carebase' },
  });
}

/** Chooses and starts the adapter (once per process, at the billing module's init). */
export async function createPaymentAdapter(config: Config, log: Logger): Promise<PaymentAdapter> {
  const { secretKey, webhookSecret, apiUrl } = config.stripe;
  if (secretKey) return new StripeAdapter('stripe', client(secretKey, apiUrl), webhookSecret!, log);
  if (config.isProduction) throw new ConfigError('STRIPE_SECRET_KEY', 'is required when NODE_ENV=production (the Stripe simulator is refused)');
  if (apiUrl) {
    // a standalone simulator (npm run stripe:simulator): its key and endpoint secret are configured alike on both sides
    if (!webhookSecret) throw new ConfigError('STRIPE_WEBHOOK_SECRET', 'is required with STRIPE_API_URL (the endpoint secret the simulator signs with)');
    return new StripeAdapter('simulator', client(SIMULATOR_KEY, apiUrl), webhookSecret, log);
  }
  const secret = webhookSecret ?? `whsec_${randomBytes(24).toString('hex')}`;
  const simulator = new StripeSimulator({
    secretKey: SIMULATOR_KEY,
    endpointSecret: secret,
    // the embedded default keeps its customers and cards across restarts, as Stripe would; tests keep them in memory
    stateFile: config.nodeEnv === 'test' ? undefined : path.join(config.dataDir, 'stripe-simulator.json'),
    log: (line, msg) => log.warn(line, msg),
  });
  const url = await simulator.listen(0, '127.0.0.1');
  log.info({ url }, 'billing: Stripe simulator started (set STRIPE_SECRET_KEY for Stripe)');
  return new StripeAdapter('simulator', client(SIMULATOR_KEY, url), secret, log, simulator);
}

export const SIMULATOR_KEY = 'sk_test_carebasesimulator';

/**
 * A provider failure other than a card decline (connection, Stripe 5xx, rate limit, a refused request) becomes
 * PROVIDER_UNAVAILABLE: the caller's transaction rolls back (nothing changed), a job retries. The log line names
 * the Stripe error type and code only.
 */
export function providerUnavailable(e: unknown, log: Logger, op: string): AppError {
  const err = e as { type?: string; code?: string; statusCode?: number; requestId?: string };
  log.warn({ op, stripeErrorType: err?.type, stripeCode: err?.code, status: err?.statusCode, stripeRequestId: err?.requestId }, 'billing: payment provider call failed');
  return new AppError(ErrorCode.PROVIDER_UNAVAILABLE, 'The payment provider did not answer; nothing was changed', { provider: 'stripe' });
}

class StripeAdapter implements PaymentAdapter {
  constructor(
    readonly mode: 'stripe' | 'simulator',
    readonly stripe: Stripe,
    readonly webhookSecret: string,
    private readonly log: Logger,
    readonly simulator?: StripeSimulator,
  ) {}

  private async call<T>(op: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (e) {
      if (e instanceof AppError) throw e;
      throw providerUnavailable(e, this.log, op);
    }
  }

  async createCustomer(tenantId: string, name: string): Promise<string> {
    // one customer per tenant even if the transaction that records it is retried
    const c = await this.call('customers.create', () => this.stripe.customers.create({ name, metadata: { tenant_id: tenantId } }, { idempotencyKey: `carebase-customer-${tenantId}` }));
    return c.id;
  }

  async createSetupIntent(customerId: string, tenantId: string, idempotencyKey: string) {
    const si = await this.call('setupIntents.create', () => this.stripe.setupIntents.create({ customer: customerId, usage: 'off_session', metadata: { tenant_id: tenantId } }, { idempotencyKey }));
    return { id: si.id, clientSecret: si.client_secret ?? '', status: si.status };
  }

  async card(paymentMethodId: string): Promise<CardDetails> {
    const pm = await this.call('paymentMethods.retrieve', () => this.stripe.paymentMethods.retrieve(paymentMethodId));
    const card = pm.card;
    return {
      id: pm.id,
      brand: card?.brand ?? pm.type,
      last4: card?.last4 ?? '',
      expires: card ? `${String(card.exp_month).padStart(2, '0')}/${card.exp_year}` : '',
    };
  }

  async setDefaultPaymentMethod(customerId: string, paymentMethodId: string): Promise<void> {
    await this.call('customers.update', () => this.stripe.customers.update(customerId, { invoice_settings: { default_payment_method: paymentMethodId } }));
  }

  async charge(input: Parameters<PaymentAdapter['charge']>[0]): Promise<ChargeResult> {
    try {
      const pi = await this.stripe.paymentIntents.create(
        {
          amount: input.amount,
          currency: input.currency,
          customer: input.customerId,
          payment_method: input.paymentMethodId,
          off_session: true,
          confirm: true,
          description: `Carebase invoice ${input.invoiceNumber}`,
          metadata: { tenant_id: input.tenantId, invoice_id: input.invoiceId, attempt: String(input.attempt) },
        },
        // one PaymentIntent per invoice attempt, whatever the number of job retries
        { idempotencyKey: `carebase-invoice-${input.invoiceId}-attempt-${input.attempt}` },
      );
      if (pi.status === 'succeeded') return { status: 'succeeded', paymentIntentId: pi.id, amountReceived: pi.amount_received, created: pi.created };
      return { status: 'failed', paymentIntentId: pi.id, declineCode: pi.last_payment_error?.decline_code ?? pi.last_payment_error?.code ?? pi.status, created: pi.created };
    } catch (e) {
      if (e instanceof Stripe.errors.StripeCardError) {
        const pi = (e.raw as { payment_intent?: { id?: string; created?: number } }).payment_intent;
        return { status: 'failed', paymentIntentId: pi?.id ?? null, declineCode: e.decline_code ?? e.code ?? 'card_declined', created: pi?.created ?? Math.floor(Date.now() / 1000) };
      }
      throw providerUnavailable(e, this.log, 'paymentIntents.create');
    }
  }

  constructEvent(raw: Buffer | string, signature: string | undefined, receivedAtSec?: number): Stripe.Event {
    return this.stripe.webhooks.constructEvent(raw, signature ?? '', this.webhookSecret, undefined, undefined, receivedAtSec);
  }

  async registerWebhookUrl(url: string): Promise<void> {
    if (this.mode !== 'simulator') return;
    // replaces an endpoint left by an earlier run of this process at the same URL
    for await (const ep of this.stripe.webhookEndpoints.list()) if (ep.url === url) await this.stripe.webhookEndpoints.del(ep.id);
    await this.stripe.webhookEndpoints.create({ url, enabled_events: [...WEBHOOK_EVENTS] });
  }

  async close(): Promise<void> {
    await this.simulator?.close();
  }
}
