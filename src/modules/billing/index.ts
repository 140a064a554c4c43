/**
 * The billing module: plans (as data), one subscription per tenant (trial,
 * active, past_due, unpaid, cancelled), provider seats, instant prorated
 * upgrades, metered API usage, invoices, payments through Stripe (or its
 * simulator), signed webhooks processed once, dunning on a schedule, and
 * the tenant entitlements its plan grants. docs/modules/billing.md.
 *
 *   plans.ts           the catalog (prices in minor units, seats, modules, usage)
 *   money.ts           integer money and proration arithmetic
 *   tables.ts          tables (migration 20261203230007_billing)
 *   subscriptions.ts   lifecycle, plan changes, seats (identity's user-change guard), the advance job's work
 *   invoices.ts        invoices, lines, numbering, HTML
 *   collection.ts      charging invoices, dunning
 *   payment-methods.ts SetupIntents
 *   webhooks.ts        /webhooks/stripe: verification, storage, exactly-once processing
 *   usage.ts           API-key call metering (access's API_KEY_CALL hook), hourly counters
 *   payments.ts        the payment adapter (stripe SDK; Stripe or the simulator)
 *   stripe-simulator/  the local Stripe
 *   jobs.ts            schedule, jobs, the invoice HTML route
 *   schema.ts          GraphQL
 */
import type { FastifyInstance } from 'fastify';
import type { PermissionVocabulary } from '../../platform/access/index.js';
import type { ModuleDeps, ModuleManifest } from '../../schema/index.js';
import { API_KEY_CALL, type ApiKeyCallObserver } from '../access/index.js';
import { USER_CHANGE_GUARD, type UserChangeGuard } from '../identity/index.js';
import { BILLING, BILLING_ROOM, type BillingInstance } from './common.js';
import { COLLECT_JOB } from './invoices.js';
import { ADVANCE_JOB, advanceJob, collectJob, invoiceHtmlRoute, processWebhookJob, SWEEP_JOB, sweepSchedule } from './jobs.js';
import { createPaymentAdapter } from './payments.js';
import { registerBillingSchema } from './schema.js';
import { seatGuard } from './subscriptions.js';
import { UsageMeter } from './usage.js';
import { authenticateWebhook, captureRawBody, PROCESS_WEBHOOK_JOB, stripeWebhookRoute, WEBHOOK_PATH } from './webhooks.js';

export { PLANS, TRIAL_DAYS, planOf, priceOf, type Plan, type PlanId, type BillingInterval } from './plans.js';
export { entitledModules, type BillingInstance } from './common.js';
export { StripeSimulator } from './stripe-simulator/server.js';
export { WEBHOOK_PATH, SWEEP_JOB, ADVANCE_JOB, COLLECT_JOB, PROCESS_WEBHOOK_JOB };
// tables are exported for src/db/schema.ts (composition) only
export { billingTables } from './tables.js';

/** The billing module's permissions: billing staff read, admins and billing staff manage. */
export const BILLING_PERMISSIONS: PermissionVocabulary = {
  permissions: {
    'billing:read': "Read the organisation's subscription, usage, invoices and payment method status",
    'billing:manage': 'Start the trial, subscribe, change or cancel the plan, set up the payment method, retry or void invoices',
  },
  roles: { ADMIN: ['billing:read', 'billing:manage'], BILLING: ['billing:read', 'billing:manage'] },
};

export interface BillingModuleOptions {
  /** the module's clock (trials, periods, proration, dunning); tests inject a fake one */
  now?: () => Date;
  /** how long a request id is remembered for usage deduplication (days) */
  usageDedupDays?: number;
}

/** Counts an authenticated API-key call (access's API_KEY_CALL hook). */
const countApiKeyCall: ApiKeyCallObserver = (call, instances) => instances.get<BillingInstance>(BILLING).usage.record(call);

export function createBillingModule(opts: BillingModuleOptions = {}): ModuleManifest {
  const now = opts.now ?? (() => new Date());
  return {
    name: BILLING,
    phase: 3,
    description: 'Plans and subscriptions (trials, provider seats, prorated upgrades), metered API usage, invoices, Stripe payments with signed webhooks, dunning; plans drive tenant entitlements',
    dependsOn: ['identity', 'access'],
    // core: a tenant whose plan lapsed must still reach billing to pay
    entitlement: null,
    permissions: BILLING_PERMISSIONS,
    roomAccess: {
      // `billing:<tenantId>`: subscription changes, payment method changes, notices for admins
      [BILLING_ROOM]: { permission: 'billing:read', check: (principal, id) => id === principal.tenantId },
    },
    provides: {
      [USER_CHANGE_GUARD]: seatGuard satisfies UserChangeGuard,
      [API_KEY_CALL]: countApiKeyCall,
    },
    schema: registerBillingSchema,
    authenticate: authenticateWebhook,
    routes: (app: FastifyInstance, deps: ModuleDeps) => {
      captureRawBody(app);
      deps.route!(stripeWebhookRoute);
      deps.route!(invoiceHtmlRoute);
      // the embedded simulator sends its webhooks to this app once it listens
      app.addHook('onListen', async () => {
        const payments = deps.instances.get<BillingInstance>(BILLING).payments;
        if (!payments.simulator || !payments.registerWebhookUrl) return;
        const addr = app.server.address();
        if (!addr || typeof addr !== 'object') return;
        const host = ['0.0.0.0', '::', ''].includes(deps.config.host) ? '127.0.0.1' : deps.config.host;
        const url = `http://${host.includes(':') ? `[${host}]` : host}:${addr.port}${WEBHOOK_PATH}`;
        try {
          await payments.registerWebhookUrl(url);
        } catch (e) {
          deps.log.error({ err: (e as Error).message }, 'billing: could not register the webhook endpoint with the Stripe simulator');
        }
      });
    },
    jobs: {
      [SWEEP_JOB]: sweepSchedule,
      [ADVANCE_JOB]: advanceJob,
      [COLLECT_JOB]: collectJob,
      [PROCESS_WEBHOOK_JOB]: processWebhookJob,
    },
    async init(deps): Promise<BillingInstance> {
      const payments = await createPaymentAdapter(deps.config, deps.log);
      if (payments.simulator && deps.config.jobs.workers === 'off') {
        deps.log.warn('billing: the embedded Stripe simulator lives in this process only; a separate worker needs STRIPE_SECRET_KEY or STRIPE_API_URL');
      }
      const pool = deps.database.appPool(2);
      const usage = new UsageMeter(pool, deps.log);
      return {
        now,
        payments,
        usage,
        settings: { retryDays: deps.config.billing.retryDays, unpaidAfterDays: deps.config.billing.unpaidAfterDays, usageDedupDays: opts.usageDedupDays ?? 7 },
        async close() {
          await usage.close();
          await pool.end({ timeout: 5 });
          await payments.close();
        },
      };
    },
  };
}

const manifest: ModuleManifest = createBillingModule();
export default manifest;
