import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import { FormError, parseForm, type FormObject, type FormValue } from './form.js';

/**
 * A local Stripe: an HTTP server speaking the subset of Stripe's REST API
 * that Carebase uses, so the real `stripe` SDK (pointed at it with its
 * host/port/protocol options) runs against it in tests and in the embedded
 * default. Wire-compatible where Carebase relies on it:
 *   - form-encoded request bodies with bracketed keys, Bearer secret-key auth;
 *   - Stripe JSON objects (customer, setup_intent, payment_method,
 *     payment_intent, webhook_endpoint, event, list) and Stripe's error shape
 *     `{ error: { type, code, decline_code, message, param } }` with its HTTP
 *     statuses (400, 401, 402 card errors, 404);
 *   - the Idempotency-Key header (a replay answers the stored response with
 *     `Idempotent-Replayed: true`; other parameters with the same key are an
 *     `idempotency_error`), Request-Id and Stripe-Version headers;
 *   - webhook endpoints created through the API (their `whsec_` secret is
 *     returned once, at creation) receive events signed exactly as Stripe
 *     signs them: `Stripe-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256 of
 *     "<t>.<raw body>" keyed with the endpoint secret>`, retried with backoff
 *     until a 2xx.
 * Test payment methods are Stripe's: `pm_card_visa`, `pm_card_mastercard`,
 * `pm_card_amex` (succeed), `pm_card_chargeCustomerFail` (attaches, every
 * charge is declined), `pm_card_visa_chargeDeclinedInsufficientFunds`
 * (attaches, charges fail with insufficient_funds), `pm_card_chargeDeclined`
 * (declined at setup).
 */

export interface StripeSimulatorOptions {
  /** the secret key clients must present (Bearer); default sk_test_simulator */
  secretKey?: string;
  /**
   * the secret of every webhook endpoint created (Stripe generates one per endpoint; a fixed one lets an operator
   * configure STRIPE_WEBHOOK_SECRET for a standalone simulator); default: a random whsec_ per endpoint
   */
  endpointSecret?: string;
  /** JSON file keeping the simulator's objects across restarts (the embedded default); none: memory only */
  stateFile?: string;
  /** delays between webhook delivery attempts (ms); default 500, 2000, 5000, 15000, 60000 */
  retryDelaysMs?: readonly number[];
  /** epoch ms (object `created`, signature timestamps); default Date.now */
  now?: () => number;
  log?: (line: Record<string, unknown>, msg: string) => void;
}

type Obj = Record<string, unknown> & { id: string; object: string };

interface TestCard {
  brand: string;
  last4: string;
  /** charges: succeed, or fail with this decline code */
  charge: 'succeed' | { code: string; decline: string };
  /** setup: succeed, or fail with this decline code */
  setup: 'succeed' | { code: string; decline: string };
}

const DECLINED = { code: 'card_declined', decline: 'generic_decline' };
const TEST_CARDS: Record<string, TestCard> = {
  pm_card_visa: { brand: 'visa', last4: '4242', charge: 'succeed', setup: 'succeed' },
  pm_card_mastercard: { brand: 'mastercard', last4: '4444', charge: 'succeed', setup: 'succeed' },
  pm_card_amex: { brand: 'amex', last4: '8431', charge: 'succeed', setup: 'succeed' },
  pm_card_chargeCustomerFail: { brand: 'visa', last4: '0341', charge: DECLINED, setup: 'succeed' },
  pm_card_visa_chargeDeclinedInsufficientFunds: { brand: 'visa', last4: '9995', charge: { code: 'card_declined', decline: 'insufficient_funds' }, setup: 'succeed' },
  pm_card_chargeDeclined: { brand: 'visa', last4: '0002', charge: DECLINED, setup: DECLINED },
};

const DECLINE_MESSAGES: Record<string, string> = {
  generic_decline: 'Your card was declined.',
  insufficient_funds: 'Your card has insufficient funds.',
};

class StripeApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.message));
  }
}

const invalid = (message: string, param?: string, code?: string, status = 400) =>
  new StripeApiError(status, { type: 'invalid_request_error', message, ...(param ? { param } : {}), ...(code ? { code, doc_url: `https://stripe.com/docs/error-codes/${code.replace(/_/g, '-')}` } : {}) });
const missing = (what: string, id: string, param = 'id') => invalid(`No such ${what}: '${id}'`, param, 'resource_missing', 404);

interface IdempotentEntry {
  fingerprint: string;
  status: number;
  body: string;
  at: number;
}

interface State {
  objects: Record<string, Obj>;
  /** payment method id -> test card behaviour */
  cards: Record<string, TestCard>;
  /** webhook endpoint id -> secret */
  secrets: Record<string, string>;
  events: string[];
  idempotency: Record<string, IdempotentEntry>;
}

export interface DeliveryRecord {
  eventId: string;
  type: string;
  endpointId: string;
  attempt: number;
  status: number | 'error';
}

const API_VERSION = '2026-10-28.endive';
const MAX_EVENTS = 1000;
const IDEMPOTENCY_TTL_MS = 24 * 3600_000;
const MAX_BODY = 256 * 1024;

export class StripeSimulator {
  private server?: Server;
  private readonly state: State = { objects: {}, cards: {}, secrets: {}, events: [], idempotency: {} };
  private readonly secretKey: string;
  private readonly now: () => number;
  private readonly retryDelays: readonly number[];
  private readonly pending = new Set<Promise<void>>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private closed = false;
  private saveTimer?: NodeJS.Timeout;
  private held: (() => void)[] | null = null;
  /** every delivery attempt (tests and the operator's `GET /_simulator/deliveries` read it) */
  readonly deliveries: DeliveryRecord[] = [];

  constructor(private readonly opts: StripeSimulatorOptions = {}) {
    this.secretKey = opts.secretKey ?? 'sk_test_simulator';
    this.now = opts.now ?? Date.now;
    this.retryDelays = opts.retryDelaysMs ?? [500, 2_000, 5_000, 15_000, 60_000];
    if (opts.stateFile) this.load(opts.stateFile);
  }

  /** Starts listening (port 0: a free port); resolves to the base URL. */
  async listen(port = 0, host = '127.0.0.1'): Promise<string> {
    const server = createServer((req, res) => void this.handle(req, res));
    server.keepAliveTimeout = 5_000;
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, host, () => resolve());
    });
    this.server = server;
    return this.url;
  }

  get url(): string {
    const a = this.server?.address() as AddressInfo | null | undefined;
    if (!a) throw new Error('stripe simulator: not listening');
    return `http://${a.address.includes(':') ? `[${a.address}]` : a.address}:${a.port}`;
  }

  get port(): number {
    return (this.server!.address() as AddressInfo).port;
  }

  /** Waits for webhook deliveries in flight (not the ones waiting for a retry). */
  async settle(): Promise<void> {
    while (this.pending.size) await Promise.allSettled([...this.pending]);
  }

  /** Holds webhook deliveries until release(order): a test delivers them in the order it wants (e.g. reversed). */
  holdWebhooks(): void {
    this.held ??= [];
  }

  releaseWebhooks(order: 'fifo' | 'reverse' = 'fifo'): void {
    const held = this.held ?? [];
    this.held = null;
    for (const send of order === 'reverse' ? held.reverse() : held) send();
  }

  /** Registers a webhook endpoint without the API (the standalone CLI's --webhook-url); returns its id and secret. */
  addEndpoint(url: string, events: readonly string[]): { id: string; secret: string } {
    const ep = this.createEndpoint({ url, enabled_events: [...events] });
    return { id: ep.id, secret: String(ep.secret) };
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    await this.settle();
    if (this.saveTimer) {
      clearTimeout(this.saveTimer);
      this.saveNow();
    }
    const server = this.server;
    if (server) {
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    }
  }

  // ------------------------------------------------------------------ HTTP

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const requestId = `req_${randomBytes(7).toString('hex')}`;
    res.setHeader('request-id', requestId);
    res.setHeader('stripe-version', typeof req.headers['stripe-version'] === 'string' ? req.headers['stripe-version'] : API_VERSION);
    try {
      const body = await readBody(req);
      const url = new URL(req.url ?? '/', 'http://simulator');
      const method = (req.method ?? 'GET').toUpperCase();
      if (url.pathname === '/_simulator/deliveries' && method === 'GET') return send(res, 200, { object: 'list', data: this.deliveries.slice(-100) });
      this.authenticate(req);
      let params: FormObject;
      try {
        params = method === 'GET' || method === 'DELETE' ? parseForm(url.search.slice(1)) : parseForm(body);
      } catch (e) {
        throw invalid(e instanceof FormError ? e.message : 'Invalid request body', e instanceof FormError ? e.param : undefined);
      }
      const key = req.headers['idempotency-key'];
      if (method === 'POST' && typeof key === 'string' && key) {
        return this.idempotent(res, key, method, url.pathname, body, () => this.route(method, url.pathname, params, requestId, key));
      }
      const result = this.route(method, url.pathname, params, requestId, null);
      return send(res, 200, result);
    } catch (e) {
      if (e instanceof StripeApiError) return send(res, e.status, { error: e.body });
      this.opts.log?.({ err: e instanceof Error ? e.message : String(e) }, 'stripe simulator: internal error');
      return send(res, 500, { error: { type: 'api_error', message: 'An unknown error occurred' } });
    }
  }

  private authenticate(req: IncomingMessage): void {
    const h = req.headers.authorization ?? '';
    let presented = '';
    const bearer = /^Bearer\s+(\S+)$/i.exec(h);
    if (bearer) presented = bearer[1]!;
    const basic = /^Basic\s+(\S+)$/i.exec(h);
    if (basic) presented = Buffer.from(basic[1]!, 'base64').toString('utf8').split(':')[0] ?? '';
    const a = Buffer.from(presented);
    const b = Buffer.from(this.secretKey);
    if (!presented) throw new StripeApiError(401, { type: 'invalid_request_error', message: 'You did not provide an API key. You need to provide your API key in the Authorization header, using Bearer auth (e.g. \'Authorization: Bearer YOUR_SECRET_KEY\').' });
    if (a.length !== b.length || !timingSafeEqual(a, b)) {
      throw new StripeApiError(401, { type: 'invalid_request_error', message: `Invalid API Key provided: ${presented.slice(0, 8)}****${presented.slice(-4)}` });
    }
  }

  private idempotent(res: ServerResponse, key: string, method: string, pathname: string, body: string, run: () => unknown): void {
    const now = this.now();
    for (const [k, v] of Object.entries(this.state.idempotency)) if (now - v.at > IDEMPOTENCY_TTL_MS) delete this.state.idempotency[k];
    const fingerprint = createHash('sha256').update(`${method} ${pathname}\n${canonicalBody(body)}`).digest('hex');
    const seen = this.state.idempotency[key];
    if (seen) {
      if (seen.fingerprint !== fingerprint) {
        return send(res, 400, {
          error: {
            type: 'idempotency_error',
            message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${key}' if you meant to execute a different request.`,
          },
        });
      }
      res.setHeader('idempotent-replayed', 'true');
      res.setHeader('idempotency-key', key);
      return sendRaw(res, seen.status, seen.body);
    }
    let status = 200;
    let out: unknown;
    try {
      out = run();
    } catch (e) {
      if (!(e instanceof StripeApiError)) throw e;
      status = e.status;
      out = { error: e.body };
    }
    const text = JSON.stringify(out, null, 2);
    // Stripe keeps the outcome of a request that reached its API, errors included (not 5xx)
    this.state.idempotency[key] = { fingerprint, status, body: text, at: now };
    this.save();
    res.setHeader('idempotency-key', key);
    return sendRaw(res, status, text);
  }

  private route(method: string, pathname: string, p: FormObject, requestId: string, idemKey: string | null): unknown {
    const ctx = { requestId, idemKey };
    const seg = pathname.split('/').filter(Boolean);
    if (seg[0] !== 'v1') throw notRoute(method, pathname);
    const [, resource, id, action] = seg;
    if (seg.length > 4) throw notRoute(method, pathname);
    switch (`${method} ${resource}${id ? '/:id' : ''}${action ? `/${action}` : ''}`) {
      case 'POST customers':
        return this.createCustomer(p, ctx);
      case 'GET customers/:id':
        return this.get('customer', id!);
      case 'POST customers/:id':
        return this.updateCustomer(id!, p, ctx);
      case 'GET customers/:id/payment_methods':
        return this.list(Object.values(this.state.objects).filter((o) => o.object === 'payment_method' && o.customer === this.get('customer', id!).id), pathname);
      case 'POST setup_intents':
        return this.createSetupIntent(p, ctx);
      case 'GET setup_intents/:id':
        return this.get('setup_intent', id!);
      case 'POST setup_intents/:id/confirm':
        return this.confirmSetupIntent(id!, p, ctx);
      case 'GET payment_methods/:id':
        return this.get('payment_method', id!);
      case 'POST payment_intents':
        return this.createPaymentIntent(p, ctx);
      case 'GET payment_intents/:id':
        return this.get('payment_intent', id!);
      case 'POST payment_intents/:id/confirm':
        return this.confirmPaymentIntent(id!, p, ctx);
      case 'POST webhook_endpoints':
        return this.createEndpoint(p);
      case 'GET webhook_endpoints':
        return this.list(Object.values(this.state.objects).filter((o) => o.object === 'webhook_endpoint'), pathname);
      case 'GET webhook_endpoints/:id':
        return this.get('webhook_endpoint', id!);
      case 'DELETE webhook_endpoints/:id': {
        const ep = this.get('webhook_endpoint', id!);
        delete this.state.objects[ep.id];
        delete this.state.secrets[ep.id];
        this.save();
        return { id: ep.id, object: 'webhook_endpoint', deleted: true };
      }
      case 'GET events':
        return this.list(
          this.state.events
            .map((eid) => this.state.objects[eid]!)
            .filter((e) => !p.type || e.type === p.type)
            .reverse()
            .slice(0, intParam(p.limit, 'limit', 1, 100) ?? 10),
          pathname,
        );
      case 'GET events/:id':
        return this.get('event', id!);
      default:
        throw notRoute(method, pathname);
    }
  }

  // --------------------------------------------------------------- objects

  private newId(prefix: string): string {
    return `${prefix}_${randomBytes(12).toString('base64url').replace(/[-_]/g, 'x')}`;
  }

  private created(): number {
    return Math.floor(this.now() / 1000);
  }

  private get(object: string, id: string): Obj {
    const o = this.state.objects[id];
    const names: Record<string, string> = { customer: 'customer', setup_intent: 'setupintent', payment_method: 'PaymentMethod', payment_intent: 'payment_intent', webhook_endpoint: 'webhook endpoint', event: 'event' };
    if (!o || o.object !== object || o.deleted) throw missing(names[object] ?? object, id);
    return o;
  }

  private put(o: Obj): Obj {
    this.state.objects[o.id] = o;
    this.save();
    return o;
  }

  private list(data: Obj[], url: string) {
    return { object: 'list', data, has_more: false, url };
  }

  private createCustomer(p: FormObject, ctx: Ctx): Obj {
    const c = this.put({
      id: this.newId('cus'),
      object: 'customer',
      created: this.created(),
      email: strParam(p.email, 'email') ?? null,
      name: strParam(p.name, 'name') ?? null,
      description: strParam(p.description, 'description') ?? null,
      metadata: metadataParam(p.metadata),
      balance: 0,
      currency: null,
      delinquent: false,
      invoice_settings: { custom_fields: null, default_payment_method: null, footer: null, rendering_options: null },
      livemode: false,
    });
    this.emit('customer.created', c, ctx);
    return c;
  }

  private updateCustomer(id: string, p: FormObject, ctx: Ctx): Obj {
    const c = this.get('customer', id);
    if (p.email !== undefined) c.email = strParam(p.email, 'email') ?? null;
    if (p.name !== undefined) c.name = strParam(p.name, 'name') ?? null;
    if (p.metadata !== undefined) c.metadata = { ...(c.metadata as object), ...metadataParam(p.metadata) };
    const settings = p.invoice_settings;
    if (settings !== undefined) {
      if (typeof settings !== 'object' || Array.isArray(settings)) throw invalid('Invalid invoice_settings', 'invoice_settings');
      const pm = settings.default_payment_method;
      if (pm !== undefined) {
        const pmId = strParam(pm, 'invoice_settings[default_payment_method]');
        if (pmId) {
          const method = this.get('payment_method', pmId);
          if (method.customer !== c.id) throw invalid(`The customer does not have a payment method with the ID ${pmId}. The payment method must be attached to the customer.`, 'invoice_settings[default_payment_method]', 'resource_missing');
        }
        c.invoice_settings = { ...(c.invoice_settings as object), default_payment_method: pmId || null };
      }
    }
    this.put(c);
    this.emit('customer.updated', c, ctx);
    return c;
  }

  private createSetupIntent(p: FormObject, ctx: Ctx): Obj {
    const customer = strParam(p.customer, 'customer');
    if (customer) this.get('customer', customer);
    const usage = strParam(p.usage, 'usage') ?? 'off_session';
    if (usage !== 'off_session' && usage !== 'on_session') throw invalid(`Invalid usage: must be one of off_session or on_session`, 'usage');
    const id = this.newId('seti');
    const si = this.put({
      id,
      object: 'setup_intent',
      client_secret: `${id}_secret_${randomBytes(12).toString('hex')}`,
      created: this.created(),
      customer: customer ?? null,
      description: strParam(p.description, 'description') ?? null,
      last_setup_error: null,
      livemode: false,
      metadata: metadataParam(p.metadata),
      next_action: null,
      payment_method: null,
      payment_method_types: arrayParam(p.payment_method_types, 'payment_method_types') ?? ['card'],
      status: 'requires_payment_method',
      usage,
      cancellation_reason: null,
    });
    this.emit('setup_intent.created', si, ctx);
    if (p.confirm === 'true') return this.confirmSetupIntent(id, p, ctx);
    return si;
  }

  /** A test payment method id (pm_card_*) becomes a new PaymentMethod; an existing pm_ id is used as is. */
  private paymentMethodFrom(value: string, param: string): Obj {
    const card = TEST_CARDS[value];
    if (!card) return this.get('payment_method', value);
    const pm = this.put({
      id: this.newId('pm'),
      object: 'payment_method',
      created: this.created(),
      customer: null,
      type: 'card',
      card: { brand: card.brand, last4: card.last4, exp_month: 12, exp_year: new Date(this.now()).getUTCFullYear() + 3, funding: 'credit', country: 'US', fingerprint: createHash('sha256').update(value).digest('hex').slice(0, 16) },
      billing_details: { address: null, email: null, name: null, phone: null },
      livemode: false,
      metadata: {},
    });
    this.state.cards[pm.id] = card;
    void param;
    return pm;
  }

  private confirmSetupIntent(id: string, p: FormObject, ctx: Ctx): Obj {
    const si = this.get('setup_intent', id);
    if (si.status === 'succeeded' || si.status === 'canceled') {
      throw invalid(`You cannot confirm this SetupIntent because it has a status of ${si.status}.`, undefined, 'setup_intent_unexpected_state');
    }
    const pmParam = strParam(p.payment_method, 'payment_method');
    if (!pmParam) throw invalid('You must provide a payment_method to confirm this SetupIntent.', 'payment_method', 'parameter_missing');
    const pm = this.paymentMethodFrom(pmParam, 'payment_method');
    const card = this.state.cards[pm.id];
    if (card && card.setup !== 'succeed') {
      const error = cardError(card.setup, pm);
      si.status = 'requires_payment_method';
      si.last_setup_error = error;
      si.payment_method = null;
      this.put(si);
      this.emit('setup_intent.setup_failed', si, ctx);
      throw new StripeApiError(402, { ...error, setup_intent: clone(si) });
    }
    if (si.customer) {
      pm.customer = si.customer;
      this.put(pm);
      this.emit('payment_method.attached', pm, ctx);
    }
    si.status = 'succeeded';
    si.payment_method = pm.id;
    si.last_setup_error = null;
    this.put(si);
    this.emit('setup_intent.succeeded', si, ctx);
    return si;
  }

  private createPaymentIntent(p: FormObject, ctx: Ctx): Obj {
    const amount = intParam(p.amount, 'amount', 1, 99_999_999);
    if (amount === undefined) throw invalid('Missing required param: amount.', 'amount', 'parameter_missing');
    const currency = strParam(p.currency, 'currency');
    if (!currency) throw invalid('Missing required param: currency.', 'currency', 'parameter_missing');
    if (!/^[a-z]{3}$/.test(currency)) throw invalid(`Invalid currency: ${currency}.`, 'currency');
    if (currency === 'usd' && amount < 50) throw invalid('Amount must be at least $0.50 usd', 'amount', 'amount_too_small');
    const customer = strParam(p.customer, 'customer');
    if (customer) this.get('customer', customer);
    const pmId = strParam(p.payment_method, 'payment_method');
    const id = this.newId('pi');
    const pi = this.put({
      id,
      object: 'payment_intent',
      amount,
      amount_capturable: 0,
      amount_received: 0,
      capture_method: 'automatic',
      client_secret: `${id}_secret_${randomBytes(12).toString('hex')}`,
      confirmation_method: 'automatic',
      created: this.created(),
      currency,
      customer: customer ?? null,
      description: strParam(p.description, 'description') ?? null,
      last_payment_error: null,
      latest_charge: null,
      livemode: false,
      metadata: metadataParam(p.metadata),
      payment_method: null,
      payment_method_types: ['card'],
      status: 'requires_payment_method',
      setup_future_usage: null,
    });
    if (pmId) {
      const pm = this.paymentMethodFrom(pmId, 'payment_method');
      if (customer && pm.customer && pm.customer !== customer) throw invalid(`The provided PaymentMethod belongs to another customer.`, 'payment_method');
      pi.payment_method = pm.id;
      pi.status = 'requires_confirmation';
      this.put(pi);
    }
    this.emit('payment_intent.created', pi, ctx);
    if (p.confirm === 'true') return this.confirmPaymentIntent(id, { ...p, payment_method: (pi.payment_method as string | null) ?? '' }, ctx);
    return pi;
  }

  private confirmPaymentIntent(id: string, p: FormObject, ctx: Ctx): Obj {
    const pi = this.get('payment_intent', id);
    if (pi.status === 'succeeded' || pi.status === 'canceled') {
      throw new StripeApiError(400, {
        type: 'invalid_request_error',
        code: 'payment_intent_unexpected_state',
        message: `You cannot confirm this PaymentIntent because it has a status of ${pi.status}.`,
        payment_intent: clone(pi),
      });
    }
    const pmParam = strParam(p.payment_method, 'payment_method') || (pi.payment_method as string | null);
    if (!pmParam) throw invalid('You cannot confirm this PaymentIntent because it\u2019s missing a payment method.', 'payment_method', 'payment_intent_unexpected_state');
    const pm = this.paymentMethodFrom(pmParam, 'payment_method');
    if (pi.customer && pm.customer && pm.customer !== pi.customer) throw invalid('The provided PaymentMethod belongs to another customer.', 'payment_method');
    pi.payment_method = pm.id;
    const card = this.state.cards[pm.id];
    const charge = this.newId('ch');
    pi.latest_charge = charge;
    if (card && card.charge !== 'succeed') {
      const error = cardError(card.charge, pm, charge);
      pi.status = 'requires_payment_method';
      pi.last_payment_error = error;
      this.put(pi);
      this.emit('payment_intent.payment_failed', pi, ctx);
      throw new StripeApiError(402, { ...error, payment_intent: clone(pi) });
    }
    pi.status = 'succeeded';
    pi.amount_received = pi.amount;
    pi.last_payment_error = null;
    this.put(pi);
    this.emit('payment_intent.succeeded', pi, ctx);
    return pi;
  }

  private createEndpoint(p: FormObject): Obj {
    const url = strParam(p.url, 'url');
    if (!url) throw invalid('Missing required param: url.', 'url', 'parameter_missing');
    try {
      const u = new URL(url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error();
    } catch {
      throw invalid('Invalid URL: url must be a publicly accessible URL', 'url', 'url_invalid');
    }
    const events = arrayParam(p.enabled_events, 'enabled_events');
    if (!events?.length) throw invalid('Missing required param: enabled_events.', 'enabled_events', 'parameter_missing');
    const secret = this.opts.endpointSecret ?? `whsec_${randomBytes(24).toString('hex')}`;
    const ep = this.put({
      id: this.newId('we'),
      object: 'webhook_endpoint',
      api_version: strParam(p.api_version, 'api_version') ?? null,
      created: this.created(),
      description: strParam(p.description, 'description') ?? null,
      enabled_events: events,
      livemode: false,
      metadata: metadataParam(p.metadata),
      status: 'enabled',
      url,
    });
    this.state.secrets[ep.id] = secret;
    this.save();
    return { ...ep, secret }; // the secret is returned on creation only, as by Stripe
  }

  // ---------------------------------------------------------------- events

  private emit(type: string, object: Obj, ctx: Ctx): void {
    const event: Obj = {
      id: this.newId('evt'),
      object: 'event',
      api_version: API_VERSION,
      created: this.created(),
      data: { object: clone(object) },
      livemode: false,
      pending_webhooks: 0,
      request: { id: ctx.requestId, idempotency_key: ctx.idemKey },
      type,
    };
    const endpoints = Object.values(this.state.objects).filter(
      (o) => o.object === 'webhook_endpoint' && o.status === 'enabled' && ((o.enabled_events as string[]).includes('*') || (o.enabled_events as string[]).includes(type)),
    );
    event.pending_webhooks = endpoints.length;
    this.state.objects[event.id] = event;
    this.state.events.push(event.id);
    while (this.state.events.length > MAX_EVENTS) delete this.state.objects[this.state.events.shift()!];
    this.save();
    for (const ep of endpoints) {
      const send = () => this.deliver(event, ep, 1);
      if (this.held) this.held.push(send);
      else queueMicrotask(send);
    }
  }

  /** The header Stripe sends: t=<unix seconds>,v1=<hex HMAC-SHA256("<t>.<payload>", secret)>. */
  static signature(payload: string, secret: string, timestampSec: number): string {
    const v1 = createHmac('sha256', secret).update(`${timestampSec}.${payload}`, 'utf8').digest('hex');
    return `t=${timestampSec},v1=${v1}`;
  }

  private deliver(event: Obj, endpoint: Obj, attempt: number): void {
    if (this.closed) return;
    const secret = this.state.secrets[endpoint.id];
    if (!secret || !this.state.objects[endpoint.id]) return;
    const payload = JSON.stringify(event, null, 2);
    const run = (async () => {
      let status: number | 'error' = 'error';
      try {
        const res = await fetch(String(endpoint.url), {
          method: 'POST',
          headers: {
            'content-type': 'application/json; charset=utf-8',
            'user-agent': 'Stripe/1.0 (+https://stripe.com/docs/webhooks)',
            'stripe-signature': StripeSimulator.signature(payload, secret, Math.floor(this.now() / 1000)),
          },
          body: payload,
          signal: AbortSignal.timeout(10_000),
        });
        status = res.status;
        await res.arrayBuffer().catch(() => undefined);
      } catch {
        status = 'error';
      }
      this.deliveries.push({ eventId: event.id, type: String(event.type), endpointId: endpoint.id, attempt, status });
      if (this.deliveries.length > 5000) this.deliveries.splice(0, 1000);
      const ok = typeof status === 'number' && status >= 200 && status < 300;
      if (!ok && attempt <= this.retryDelays.length && !this.closed) {
        const t = setTimeout(() => {
          this.timers.delete(t);
          this.deliver(event, endpoint, attempt + 1);
        }, this.retryDelays[attempt - 1]);
        t.unref();
        this.timers.add(t);
      }
    })();
    this.pending.add(run);
    void run.finally(() => this.pending.delete(run));
  }

  // ----------------------------------------------------------- persistence

  private load(file: string): void {
    try {
      const s = JSON.parse(readFileSync(file, 'utf8')) as Partial<State>;
      Object.assign(this.state, { objects: s.objects ?? {}, cards: s.cards ?? {}, secrets: s.secrets ?? {}, events: s.events ?? [], idempotency: s.idempotency ?? {} });
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`stripe simulator: cannot read ${file}`);
    }
  }

  private save(): void {
    if (!this.opts.stateFile || this.saveTimer) return;
    this.saveTimer = setTimeout(() => {
      this.saveTimer = undefined;
      this.saveNow();
    }, 200);
    this.saveTimer.unref();
  }

  private saveNow(): void {
    const file = this.opts.stateFile;
    if (!file) return;
    mkdirSync(path.dirname(file), { recursive: true });
    const tmp = `${file}.tmp`;
    writeFileSync(tmp, JSON.stringify(this.state), { mode: 0o600 });
    renameSync(tmp, file);
  }
}

interface Ctx {
  requestId: string;
  idemKey: string | null;
}

function cardError(kind: { code: string; decline: string }, pm: Obj, charge?: string) {
  return {
    type: 'card_error',
    code: kind.code,
    decline_code: kind.decline,
    message: DECLINE_MESSAGES[kind.decline] ?? 'Your card was declined.',
    doc_url: `https://stripe.com/docs/error-codes/${kind.code.replace(/_/g, '-')}`,
    ...(charge ? { charge } : {}),
    payment_method: clone(pm),
  };
}

function notRoute(method: string, pathname: string) {
  return invalid(`Unrecognized request URL (${method}: ${pathname}). Please see https://stripe.com/docs or we can help at https://support.stripe.com/.`, undefined, undefined, 404);
}

function strParam(v: FormValue | undefined, name: string): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string') throw invalid(`Invalid string: ${name}`, name);
  if (v.length > 5000) throw invalid(`Invalid string: ${name} is too long`, name);
  return v;
}

function intParam(v: FormValue | undefined, name: string, min: number, max: number): number | undefined {
  if (v === undefined) return undefined;
  if (typeof v !== 'string' || !/^-?\d+$/.test(v)) throw invalid(`Invalid integer: ${typeof v === 'string' ? v : name}`, name);
  const n = Number(v);
  if (!Number.isSafeInteger(n) || n < min) throw invalid(`This value must be greater than or equal to ${min}.`, name);
  if (n > max) throw invalid(`This value must be less than or equal to ${max}.`, name, 'amount_too_large');
  return n;
}

function arrayParam(v: FormValue | undefined, name: string): string[] | undefined {
  if (v === undefined) return undefined;
  const list = Array.isArray(v) ? v : [v];
  if (!list.every((x): x is string => typeof x === 'string')) throw invalid(`Invalid array: ${name}`, name);
  return list;
}

function metadataParam(v: FormValue | undefined): Record<string, string> {
  if (v === undefined || v === '') return {};
  if (typeof v !== 'object' || Array.isArray(v)) throw invalid('Invalid metadata: metadata must be an object', 'metadata');
  const out: Record<string, string> = {};
  const entries = Object.entries(v);
  if (entries.length > 50) throw invalid('Invalid metadata: at most 50 keys', 'metadata');
  for (const [k, val] of entries) {
    if (typeof val !== 'string' || k.length > 40 || val.length > 500) throw invalid(`Invalid metadata[${k.slice(0, 40)}]`, `metadata[${k.slice(0, 40)}]`);
    out[k] = val;
  }
  return out;
}

function clone<T>(v: T): T {
  return JSON.parse(JSON.stringify(v)) as T;
}

/** Parameter order does not matter for idempotency: the body's pairs, sorted. */
function canonicalBody(body: string): string {
  return body.split('&').filter(Boolean).sort().join('&');
}

function readBody(req: IncomingMessage): Promise<string> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_BODY) {
        reject(invalid('Request body too large'));
        req.destroy();
        return;
      }
      chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks).toString('utf8')));
    req.on('error', reject);
  });
}

function send(res: ServerResponse, status: number, body: unknown): void {
  sendRaw(res, status, JSON.stringify(body, null, 2));
}

function sendRaw(res: ServerResponse, status: number, text: string): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), 'access-control-allow-origin': '*' });
  res.end(text);
}
