import type { ModuleManifest } from '../../../src/schema/index.js';
import identity from '../../../src/modules/identity/index.js';
import access from '../../../src/modules/access/index.js';
import audit from '../../../src/modules/audit/index.js';
import patients from '../../../src/modules/patients/index.js';
import { createBillingModule, type BillingInstance } from '../../../src/modules/billing/index.js';
import { startTestApp, UNLIMITED, type TestApp } from '../../helpers/app.js';
import { until } from '../../helpers/realtime.js';

/** The module clock of a billing test app (ms since epoch), moved by the test. */
export class FakeClock {
  constructor(public ms: number) {}
  now = () => new Date(this.ms);
  set(iso: string): void {
    const next = Date.parse(iso);
    if (next < this.ms) throw new Error('the fake clock only moves forward');
    this.ms = next;
  }
  advanceDays(days: number): void {
    this.ms += days * 86_400_000;
  }
}

export const WEBHOOK_SECRET = 'whsec_billingtestsecret0123456789abcdef';

/** A module whose only field is entitled to 'population-health' (the Enterprise plan's module), for gating tests. */
export const populationHealthFixture: ModuleManifest = {
  name: 'population-health-fixture',
  phase: 3,
  description: 'test fixture: a field of a module sold only on Enterprise',
  dependsOn: [],
  entitlement: 'population-health',
  schema: (builder) => {
    builder.queryField('populationHealthFixture', (t) => t.string({ authScopes: { authenticated: true }, resolve: () => 'ok' }));
  },
};

export async function startBillingApp(clock: FakeClock, env: Record<string, string> = {}): Promise<TestApp> {
  const billing = createBillingModule({ now: clock.now });
  return startTestApp({
    modules: [identity, access, audit, patients, populationHealthFixture, billing],
    env: {
      ...UNLIMITED,
      RATE_LIMIT_USER_PER_MINUTE: '1000000',
      JOB_WORKERS: 'inline',
      JOB_SCHEDULE_INTERVALS: 'billing.sweep=250',
      STRIPE_WEBHOOK_SECRET: WEBHOOK_SECRET,
      ...env,
    },
  });
}

export const billingOf = (t: TestApp) => t.app.scopes.env.instances!.get<BillingInstance>('billing');

export const code = (body: { errors?: { extensions?: Record<string, unknown> }[] }) => body.errors?.[0]?.extensions?.code;

export async function gqlOk<T>(t: TestApp, query: string, variables: Record<string, unknown>, headers: Record<string, string>): Promise<T> {
  const r = await t.gql<T>(query, variables, headers);
  if (r.body.errors?.length || !r.body.data) throw new Error(`GraphQL failed: ${JSON.stringify(r.body.errors)}`);
  return r.body.data;
}

/**
 * Adds a card as the browser would: startPaymentMethodSetup over GraphQL, then the SetupIntent confirmed with a
 * Stripe test card through the stripe SDK (against the simulator); waits for the webhook to make it active.
 */
export async function addCard(t: TestApp, headers: Record<string, string>, card = 'pm_card_visa'): Promise<{ setupIntentId: string; last4: string }> {
  const { startPaymentMethodSetup: si } = await gqlOk<{ startPaymentMethodSetup: { setupIntentId: string; clientSecret: string } }>(
    t,
    'mutation { startPaymentMethodSetup { setupIntentId clientSecret status } }',
    {},
    headers,
  );
  await billingOf(t).payments.stripe.setupIntents.confirm(si.setupIntentId, { payment_method: card });
  const pm = await until(async () => {
    const d = await gqlOk<{ billingPaymentMethod: { status: string; last4: string | null; setupIntentId: string } }>(t, '{ billingPaymentMethod { status last4 setupIntentId } }', {}, headers);
    return d.billingPaymentMethod.status === 'ACTIVE' && d.billingPaymentMethod.setupIntentId === si.setupIntentId ? d.billingPaymentMethod : null;
  });
  return { setupIntentId: si.setupIntentId, last4: pm.last4! };
}

export const SUB_FIELDS = 'id status interval plan { id } trialEnd currentPeriodStart currentPeriodEnd cancelAtPeriodEnd pendingPlan { id } pendingInterval providerSeatsUsed version endReason pastDueSince';
export const INVOICE_FIELDS =
  'id number status reason total { amount currency } amountDue { amount } amountPaid { amount } amountCarried { amount } attemptCount nextPaymentAttempt lastPaymentError lines { kind description quantity unitAmount { amount } amount { amount currency } }';

export interface SubView {
  id: string;
  status: string;
  interval: string;
  plan: { id: string };
  trialEnd: string | null;
  currentPeriodStart: string;
  currentPeriodEnd: string;
  cancelAtPeriodEnd: boolean;
  pendingPlan: { id: string } | null;
  pendingInterval: string | null;
  providerSeatsUsed: number;
  version: number;
  endReason: string | null;
  pastDueSince: string | null;
}

export interface InvoiceView {
  id: string;
  number: string;
  status: string;
  reason: string;
  total: { amount: number; currency: string };
  amountDue: { amount: number };
  amountPaid: { amount: number };
  amountCarried: { amount: number };
  attemptCount: number;
  nextPaymentAttempt: string | null;
  lastPaymentError: string | null;
  lines: { kind: string; description: string; quantity: number; unitAmount: { amount: number }; amount: { amount: number; currency: string } }[];
}

export async function subscription(t: TestApp, headers: Record<string, string>): Promise<SubView | null> {
  return (await gqlOk<{ billingSubscription: SubView | null }>(t, `{ billingSubscription { ${SUB_FIELDS} } }`, {}, headers)).billingSubscription;
}

export async function invoices(t: TestApp, headers: Record<string, string>): Promise<InvoiceView[]> {
  return (await gqlOk<{ billingInvoices: InvoiceView[] }>(t, `{ billingInvoices(first: 50) { ${INVOICE_FIELDS} } }`, {}, headers)).billingInvoices;
}

export async function entitlementsOf(t: TestApp, tenantId: string): Promise<string[] | null> {
  const [row] = await t.db.owner<{ modules: string[] }[]>`select modules from tenant_entitlements where tenant_id = ${tenantId}`;
  return row ? [...row.modules].sort() : null;
}
