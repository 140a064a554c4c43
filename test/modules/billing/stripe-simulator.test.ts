import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import Stripe from 'stripe';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createPaymentAdapter, SIMULATOR_KEY } from '../../../src/modules/billing/payments.js';
import { StripeSimulator } from '../../../src/modules/billing/stripe-simulator/server.js';
import { loadConfig } from '../../../src/config.js';
import { createLogger } from '../../../src/platform/logger.js';
import { until } from '../../helpers/realtime.js';

/**
 * The Stripe simulator driven by the real `stripe` SDK (host/port/protocol
 * options): objects, errors, idempotency and signed webhooks as the SDK
 * expects them from Stripe.
 */
let sim: StripeSimulator;
let stripe: Stripe;
let receiver: Server;
let receiverUrl: string;
const received: { body: string; signature: string }[] = [];
let failNext = 0;

beforeAll(async () => {
  sim = new StripeSimulator({ secretKey: 'sk_test_sim_123', retryDelaysMs: [50, 50] });
  const url = new URL(await sim.listen());
  stripe = new Stripe('sk_test_sim_123', { host: url.hostname, port: url.port, protocol: 'http', telemetry: false, maxNetworkRetries: 0 });
  receiver = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      if (failNext > 0) {
        failNext--;
        res.writeHead(500).end();
        return;
      }
      received.push({ body: Buffer.concat(chunks).toString('utf8'), signature: String(req.headers['stripe-signature']) });
      res.writeHead(200).end('{}');
    });
  });
  await new Promise<void>((r) => receiver.listen(0, '127.0.0.1', () => r()));
  receiverUrl = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
});

afterAll(async () => {
  await sim?.close();
  await new Promise((r) => receiver?.close(r));
});

describe('Stripe simulator through the stripe SDK', () => {
  it('refuses a wrong secret key with Stripe\u2019s authentication error', async () => {
    const url = new URL(sim.url);
    const bad = new Stripe('sk_test_wrong_999', { host: url.hostname, port: url.port, protocol: 'http', telemetry: false, maxNetworkRetries: 0 });
    const err = await bad.customers.create({}).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(Stripe.errors.StripeAuthenticationError);
    expect((err as Stripe.errors.StripeError).statusCode).toBe(401);
  });

  it('creates customers, collects a card with a SetupIntent and charges it with a PaymentIntent', async () => {
    const customer = await stripe.customers.create({ name: 'Clinic', metadata: { tenant_id: 't1' } });
    expect(customer).toMatchObject({ object: 'customer', metadata: { tenant_id: 't1' }, livemode: false });
    expect(customer.id).toMatch(/^cus_/);
    const si = await stripe.setupIntents.create({ customer: customer.id, usage: 'off_session' });
    expect(si).toMatchObject({ object: 'setup_intent', status: 'requires_payment_method', customer: customer.id });
    expect(si.client_secret).toMatch(new RegExp(`^${si.id}_secret_`));
    const confirmed = await stripe.setupIntents.confirm(si.id, { payment_method: 'pm_card_visa' });
    expect(confirmed.status).toBe('succeeded');
    const pm = await stripe.paymentMethods.retrieve(String(confirmed.payment_method));
    expect(pm).toMatchObject({ customer: customer.id, card: { brand: 'visa', last4: '4242' } });
    const pi = await stripe.paymentIntents.create({ amount: 49_900, currency: 'usd', customer: customer.id, payment_method: pm.id, off_session: true, confirm: true, metadata: { invoice_id: 'inv1' } });
    expect(pi).toMatchObject({ object: 'payment_intent', status: 'succeeded', amount: 49_900, amount_received: 49_900, metadata: { invoice_id: 'inv1' } });
  });

  it('declines like Stripe: a 402 card error carrying the PaymentIntent', async () => {
    const customer = await stripe.customers.create({});
    const si = await stripe.setupIntents.create({ customer: customer.id });
    const { payment_method } = await stripe.setupIntents.confirm(si.id, { payment_method: 'pm_card_chargeCustomerFail' });
    const err = (await stripe.paymentIntents.create({ amount: 1000, currency: 'usd', customer: customer.id, payment_method: String(payment_method), off_session: true, confirm: true }).catch((e: unknown) => e)) as Stripe.errors.StripeCardError;
    expect(err).toBeInstanceOf(Stripe.errors.StripeCardError);
    expect([err.statusCode, err.code, err.decline_code]).toEqual([402, 'card_declined', 'generic_decline']);
    expect((err.raw as { payment_intent?: { status?: string } }).payment_intent?.status).toBe('requires_payment_method');
    // declined at setup
    const si2 = await stripe.setupIntents.create({ customer: customer.id });
    const setupErr = (await stripe.setupIntents.confirm(si2.id, { payment_method: 'pm_card_chargeDeclined' }).catch((e: unknown) => e)) as Stripe.errors.StripeCardError;
    expect(setupErr).toBeInstanceOf(Stripe.errors.StripeCardError);
    expect((await stripe.setupIntents.retrieve(si2.id)).status).toBe('requires_payment_method');
  });

  it('answers invalid requests with Stripe\u2019s error shape (missing object, bad integer, unknown URL)', async () => {
    const nf = (await stripe.customers.retrieve('cus_nope').catch((e: unknown) => e)) as Stripe.errors.StripeError;
    expect(nf).toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
    expect([nf.statusCode, nf.code, nf.param]).toEqual([404, 'resource_missing', 'id']);
    const badAmount = (await stripe.paymentIntents.create({ amount: 12.5, currency: 'usd' }).catch((e: unknown) => e)) as Stripe.errors.StripeError;
    expect([badAmount.statusCode, badAmount.param]).toEqual([400, 'amount']);
    const small = (await stripe.paymentIntents.create({ amount: 49, currency: 'usd' }).catch((e: unknown) => e)) as Stripe.errors.StripeError;
    expect(small.code).toBe('amount_too_small');
  });

  it('honours Idempotency-Key: a replay gets the same object, other parameters an idempotency error', async () => {
    const key = `k-${Date.now()}`;
    const a = await stripe.customers.create({ name: 'A' }, { idempotencyKey: key });
    const b = await stripe.customers.create({ name: 'A' }, { idempotencyKey: key });
    expect(b.id).toBe(a.id);
    expect(b.lastResponse.headers['idempotent-replayed']).toBe('true');
    const err = (await stripe.customers.create({ name: 'B' }, { idempotencyKey: key }).catch((e: unknown) => e)) as Stripe.errors.StripeError;
    expect(err).toBeInstanceOf(Stripe.errors.StripeIdempotencyError);
  });

  it('sends webhooks signed as Stripe does (constructEvent verifies them), retried until a 2xx', async () => {
    const ep = await stripe.webhookEndpoints.create({ url: receiverUrl, enabled_events: ['customer.created', 'payment_intent.succeeded'] });
    expect(ep.secret).toMatch(/^whsec_/);
    failNext = 1; // the first delivery fails: Stripe retries
    const customer = await stripe.customers.create({ name: 'Hooked' });
    const got = await until(() => received.find((r) => r.body.includes(customer.id)));
    expect(got.signature).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    const event = stripe.webhooks.constructEvent(got.body, got.signature, ep.secret!);
    expect(event).toMatchObject({ type: 'customer.created', object: 'event', data: { object: { id: customer.id } } });
    expect(() => stripe.webhooks.constructEvent(got.body.replace('Hooked', 'Hacked'), got.signature, ep.secret!)).toThrow(Stripe.errors.StripeSignatureVerificationError);
    // the delivery is recorded once its response is read
    await until(() => sim.deliveries.filter((d) => d.eventId === event.id).length === 2);
    expect(sim.deliveries.filter((d) => d.eventId === event.id).map((d) => d.status)).toEqual([500, 200]);
    // the SDK's own test header matches what the simulator sends
    const t = Number(/t=(\d+)/.exec(got.signature)![1]);
    expect(stripe.webhooks.generateTestHeaderString({ payload: got.body, secret: ep.secret!, timestamp: t })).toBe(got.signature);
    await stripe.webhookEndpoints.del(ep.id);
  });
});

describe('payment adapter selection', () => {
  const log = createLogger('silent');

  it('uses Stripe with STRIPE_SECRET_KEY, and refuses the simulator in production', async () => {
    const live = await createPaymentAdapter(loadConfig({ NODE_ENV: 'test', STRIPE_SECRET_KEY: 'sk_test_abcdefgh1234', STRIPE_WEBHOOK_SECRET: 'whsec_abcdefghijklmnop1234' }), log);
    expect([live.mode, live.simulator, live.webhookSecret]).toEqual(['stripe', undefined, 'whsec_abcdefghijklmnop1234']);
    await live.close();
    await expect(createPaymentAdapter(loadConfig({ NODE_ENV: 'production', KMS_KEY_ID: 'k', DATABASE_URL: 'postgres://x@h/db' }), log)).rejects.toThrow(/STRIPE_SECRET_KEY is required when NODE_ENV=production/);
    expect(() => loadConfig({ STRIPE_SECRET_KEY: 'sk_test_abcdefgh1234' })).toThrow(/STRIPE_WEBHOOK_SECRET/);
    expect(() => loadConfig({ STRIPE_SECRET_KEY: 'pk_test_notasecret' })).toThrow(/STRIPE_SECRET_KEY/);
  });

  it('turns a provider that does not answer into PROVIDER_UNAVAILABLE (a typed error, logged by type only)', async () => {
    const adapter = await createPaymentAdapter(loadConfig({ NODE_ENV: 'test', STRIPE_API_URL: 'http://127.0.0.1:1', STRIPE_WEBHOOK_SECRET: 'whsec_standalone0123456789abcd' }), log);
    const err = (await adapter.createCustomer('00000000-0000-4000-8000-000000000002', 'Clinic').catch((e: unknown) => e)) as { extensions?: { code?: string } };
    expect(err.extensions?.code).toBe('PROVIDER_UNAVAILABLE');
    await adapter.close();
  });

  it('talks to a standalone simulator at STRIPE_API_URL with the configured endpoint secret', async () => {
    const standalone = new StripeSimulator({ secretKey: SIMULATOR_KEY, endpointSecret: 'whsec_standalone0123456789abcd' });
    const url = await standalone.listen();
    try {
      const adapter = await createPaymentAdapter(loadConfig({ NODE_ENV: 'test', STRIPE_API_URL: url, STRIPE_WEBHOOK_SECRET: 'whsec_standalone0123456789abcd' }), log);
      expect([adapter.mode, adapter.simulator]).toEqual(['simulator', undefined]);
      const customer = await adapter.createCustomer('00000000-0000-4000-8000-000000000001', 'Clinic');
      expect(customer).toMatch(/^cus_/);
      // the same tenant gets the same customer (idempotency key)
      expect(await adapter.createCustomer('00000000-0000-4000-8000-000000000001', 'Clinic')).toBe(customer);
      const payload = JSON.stringify({ id: 'evt_1', object: 'event', type: 'customer.updated', data: { object: { id: customer } } });
      const header = StripeSimulator.signature(payload, 'whsec_standalone0123456789abcd', Math.floor(Date.now() / 1000));
      expect(adapter.constructEvent(payload, header).id).toBe('evt_1');
      await adapter.close();
    } finally {
      await standalone.close();
    }
  });
});
