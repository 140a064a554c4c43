import { z } from 'zod';
import type { Builder, RequestContext } from '../../schema/index.js';
import { tenantOf } from './common.js';
import { retryInvoicePayment, voidInvoice } from './collection.js';
import { findInvoice, linesOf, listInvoices } from './invoices.js';
import { formatMoney } from './money.js';
import { confirmPaymentMethodSetup, paymentMethodOf, startPaymentMethodSetup } from './payment-methods.js';
import { PLANS, type Plan } from './plans.js';
import { currentSubscription, notifications, providerSeatsUsed, usageHours, usageReport } from './reports.js';
import { cancelAtPeriodEnd, changePlan, resume, startTrial, subscribe, type PlanChange } from './subscriptions.js';
import { INVOICE_STATUSES, PAYMENT_METHOD_STATUSES, SUBSCRIPTION_STATUSES, type BillingAccount, type Invoice, type InvoiceLine, type Notification, type Subscription } from './tables.js';
import type { UsageReport } from './usage.js';

const upperEnum = <T extends string>(values: readonly T[]) =>
  Object.fromEntries(values.map((v) => [v.toUpperCase(), { value: v }])) as Record<Uppercase<T>, { value: T }>;

interface MoneyValue {
  amount: number;
  currency: string;
}

/**
 * Billing GraphQL for billing staff (billing:read / billing:manage): plans, the subscription, usage,
 * invoices, the payment method; thin resolvers over the service files. Money is an integer of minor units
 * with its currency (BillingMoney); `formatted` is for display only.
 */
export function registerBillingSchema(builder: Builder): void {
  const SubscriptionStatus = builder.enumType('BillingSubscriptionStatus', { values: upperEnum(SUBSCRIPTION_STATUSES) });
  const InvoiceStatus = builder.enumType('BillingInvoiceStatus', { values: upperEnum(INVOICE_STATUSES) });
  const PaymentMethodStatus = builder.enumType('BillingPaymentMethodStatus', { values: upperEnum(PAYMENT_METHOD_STATUSES) });
  const Interval = builder.enumType('BillingInterval', { values: upperEnum(['month', 'year'] as const) });
  const LineKind = builder.enumType('BillingInvoiceLineKind', { values: upperEnum(['plan', 'seats', 'proration', 'usage', 'balance', 'tax'] as const) });
  const Effective = builder.enumType('BillingChangeEffective', { description: 'When a plan change applies', values: upperEnum(['now', 'period_end'] as const) });
  const UsagePeriod = builder.enumType('BillingUsagePeriod', { values: upperEnum(['current', 'previous'] as const) });

  const Money = builder.objectRef<MoneyValue>('BillingMoney').implement({
    description: 'An amount of money: an integer of minor units (cents) and an ISO 4217 currency code (lower case).',
    fields: (t) => ({
      amount: t.exposeInt('amount', { description: 'minor units (cents); negative for a credit' }),
      currency: t.exposeString('currency'),
      formatted: t.string({ description: 'for display only, e.g. $1,499.00', resolve: (m) => formatMoney(m) }),
    }),
  });
  const money = (amount: number, currency: string): MoneyValue => ({ amount, currency });

  const PlanPrice = builder.objectRef<Plan['prices']['month']>('BillingPrice').implement({
    fields: (t) => ({
      id: t.exposeString('id', { description: 'what changeBillingPlan and subscribeBilling take, e.g. professional_monthly' }),
      interval: t.field({ type: Interval, resolve: (p) => p.interval }),
      price: t.field({ type: Money, resolve: (p) => money(p.amount, p.currency) }),
    }),
  });

  const PlanRef = builder.objectRef<Plan>('BillingPlan').implement({
    fields: (t) => ({
      id: t.exposeString('id'),
      name: t.exposeString('name'),
      providerSeats: t.int({ nullable: true, description: 'providers the plan allows; null: unlimited', resolve: (p) => p.providerSeats }),
      modules: t.stringList({ description: 'entitlement keys of the modules included', resolve: (p) => [...p.modules] }),
      monthly: t.field({ type: PlanPrice, resolve: (p) => p.prices.month }),
      annual: t.field({ type: PlanPrice, resolve: (p) => p.prices.year }),
      includedApiCallsPerMonth: t.int({ resolve: (p) => p.usage.includedCallsPerMonth }),
      apiOveragePer1000: t.field({ type: Money, description: 'each started block of 1,000 API-key calls over the included amount', resolve: (p) => money(p.usage.overageUnitAmount, p.prices.month.currency) }),
    }),
  });
  const planOfId = (id: string | null) => (id ? (PLANS.get(id as Plan['id']) ?? null) : null);

  const SubscriptionRef = builder.objectRef<Subscription>('BillingSubscription').implement({
    description: "The organisation's subscription (one per tenant, from its trial on).",
    fields: (t) => ({
      id: t.exposeID('id'),
      plan: t.field({ type: PlanRef, resolve: (s) => planOfId(s.planId)! }),
      interval: t.field({ type: Interval, resolve: (s) => s.interval }),
      status: t.field({ type: SubscriptionStatus, resolve: (s) => s.status }),
      trialStart: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.trialStart }),
      trialEnd: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.trialEnd }),
      currentPeriodStart: t.field({ type: 'DateTime', resolve: (s) => s.currentPeriodStart }),
      currentPeriodEnd: t.field({ type: 'DateTime', resolve: (s) => s.currentPeriodEnd }),
      cancelAtPeriodEnd: t.exposeBoolean('cancelAtPeriodEnd'),
      endedAt: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.endedAt }),
      endReason: t.string({ nullable: true, resolve: (s) => s.endReason }),
      pendingPlan: t.field({ type: PlanRef, nullable: true, description: 'a downgrade scheduled for the period end', resolve: (s) => planOfId(s.pendingPlanId) }),
      pendingInterval: t.field({ type: Interval, nullable: true, resolve: (s) => s.pendingInterval }),
      pastDueSince: t.field({ type: 'DateTime', nullable: true, resolve: (s) => s.pastDueSince }),
      providerSeatsUsed: t.int({ description: 'users holding the PROVIDER role (invited or active)', resolve: (s, _a, ctx) => providerSeatsUsed(ctx, s.tenantId) }),
      version: t.exposeInt('version', { description: 'bumped on every change (realtime events carry it)' }),
    }),
  });

  const Line = builder.objectRef<InvoiceLine>('BillingInvoiceLine').implement({
    fields: (t) => ({
      kind: t.field({ type: LineKind, resolve: (l) => l.kind }),
      description: t.exposeString('description'),
      quantity: t.int({ resolve: (l) => l.quantity }),
      unitAmount: t.field({ type: Money, resolve: (l) => money(l.unitAmount, l.currency) }),
      amount: t.field({ type: Money, resolve: (l) => money(l.amount, l.currency) }),
      periodStart: t.field({ type: 'DateTime', nullable: true, resolve: (l) => l.periodStart }),
      periodEnd: t.field({ type: 'DateTime', nullable: true, resolve: (l) => l.periodEnd }),
    }),
  });

  const InvoiceRef = builder.objectRef<Invoice>('BillingInvoice').implement({
    fields: (t) => ({
      id: t.exposeID('id'),
      number: t.exposeString('number', { description: 'numbered per organisation' }),
      status: t.field({ type: InvoiceStatus, resolve: (i) => i.status }),
      reason: t.exposeString('reason', { description: 'subscription_create | subscription_cycle | subscription_update | subscription_final | trial_conversion' }),
      periodStart: t.field({ type: 'DateTime', resolve: (i) => i.periodStart }),
      periodEnd: t.field({ type: 'DateTime', resolve: (i) => i.periodEnd }),
      subtotal: t.field({ type: Money, resolve: (i) => money(i.subtotal, i.currency) }),
      tax: t.field({ type: Money, resolve: (i) => money(i.tax, i.currency) }),
      total: t.field({ type: Money, resolve: (i) => money(i.total, i.currency) }),
      amountPaid: t.field({ type: Money, resolve: (i) => money(i.amountPaid, i.currency) }),
      amountDue: t.field({ type: Money, resolve: (i) => money(i.amountDue, i.currency) }),
      amountCarried: t.field({ type: Money, description: 'moved to the next invoice instead of charged (below the minimum card charge)', resolve: (i) => money(i.amountCarried, i.currency) }),
      attemptCount: t.exposeInt('attemptCount'),
      nextPaymentAttempt: t.field({ type: 'DateTime', nullable: true, resolve: (i) => i.nextPaymentAttempt }),
      lastPaymentError: t.string({ nullable: true, description: 'decline code of the last failed attempt', resolve: (i) => i.lastPaymentError }),
      createdAt: t.field({ type: 'DateTime', resolve: (i) => i.createdAt }),
      paidAt: t.field({ type: 'DateTime', nullable: true, resolve: (i) => i.paidAt }),
      htmlUrl: t.string({ description: 'GET with the same credentials: the invoice as HTML', resolve: (i) => `/billing/invoices/${i.id}.html` }),
      // one query for the lines of every invoice of a list (dataloader)
      lines: t.loadableList({
        type: Line,
        resolve: (i) => i.id,
        load: async (ids: string[], ctx: RequestContext) => {
          const byInvoice = await linesOf(await ctx.db(), tenantOf(ctx), ids);
          return ids.map((id) => byInvoice.get(id) ?? []);
        },
      }),
    }),
  });

  const UsageHour = builder.objectRef<{ hour: Date; calls: number }>('BillingUsageHour').implement({
    fields: (t) => ({ hour: t.field({ type: 'DateTime', resolve: (h) => h.hour }), calls: t.exposeInt('calls') }),
  });
  const Usage = builder.objectRef<UsageReport>('BillingUsage').implement({
    description: 'API-key calls of a billing period and what they cost over the plan\u2019s included calls.',
    fields: (t) => ({
      periodStart: t.field({ type: 'DateTime', resolve: (u) => u.periodStart }),
      periodEnd: t.field({ type: 'DateTime', resolve: (u) => u.periodEnd }),
      calls: t.exposeInt('calls'),
      includedCalls: t.exposeInt('includedCalls'),
      overageCalls: t.exposeInt('overageCalls'),
      overageUnits: t.exposeInt('overageUnits', { description: 'started blocks of 1,000 calls over the included amount' }),
      amount: t.field({ type: Money, description: 'the metered line this period adds to its invoice (0 during a trial)', resolve: (u) => money(u.amount, u.currency) }),
      hours: t.field({
        type: [UsageHour],
        description: 'calls per hour (all keys), the most recent `last` hours of the period',
        args: { last: t.arg.int({ required: false, defaultValue: 168, validate: z.number().int().min(1).max(24 * 366) }) },
        resolve: (u, args, ctx) => usageHours(ctx, u, args.last ?? 168),
      }),
    }),
  });

  const PaymentMethod = builder.objectRef<BillingAccount>('BillingPaymentMethod').implement({
    fields: (t) => ({
      status: t.field({ type: PaymentMethodStatus, resolve: (a) => a.paymentMethodStatus }),
      brand: t.string({ nullable: true, resolve: (a) => a.paymentMethodBrand }),
      last4: t.string({ nullable: true, resolve: (a) => a.paymentMethodLast4 }),
      expires: t.string({ nullable: true, description: 'MM/YYYY', resolve: (a) => a.paymentMethodExpires }),
      setupIntentId: t.string({ nullable: true, description: 'the last SetupIntent started', resolve: (a) => a.setupIntentId }),
    }),
  });

  const SetupIntent = builder.objectRef<{ setupIntentId: string; clientSecret: string; status: string }>('BillingSetupIntent').implement({
    description: 'Confirm it in the browser with Stripe.js (stripe.confirmCardSetup(clientSecret, ...)); the card becomes the default when Stripe reports success.',
    fields: (t) => ({
      setupIntentId: t.exposeString('setupIntentId'),
      clientSecret: t.exposeString('clientSecret'),
      status: t.exposeString('status'),
    }),
  });

  const Change = builder.objectRef<PlanChange>('BillingPlanChange').implement({
    fields: (t) => ({
      subscription: t.field({ type: SubscriptionRef, resolve: (c) => c.subscription }),
      effective: t.field({ type: Effective, resolve: (c) => c.effective }),
      invoice: t.field({ type: InvoiceRef, nullable: true, description: 'the proration invoice of an upgrade', resolve: (c, _a, ctx) => (c.invoiceId ? findInvoice(ctx, c.invoiceId) : null) }),
    }),
  });

  const NotificationRef = builder.objectRef<Notification>('BillingNotification').implement({
    fields: (t) => ({
      id: t.exposeID('id'),
      kind: t.exposeString('kind', { description: 'payment_failed | payment_recovered | subscription_unpaid | subscription_cancelled | trial_expired | downgrade_refused' }),
      invoiceId: t.field({ type: 'UUID', nullable: true, resolve: (n) => n.invoiceId }),
      detail: t.field({ type: 'JSON', resolve: (n) => n.detail }),
      createdAt: t.field({ type: 'DateTime', resolve: (n) => n.createdAt }),
    }),
  });

  builder.queryFields((t) => ({
    billingPlans: t.field({
      type: [PlanRef],
      description: 'The plans on sale, with their prices in minor units.',
      authScopes: { authenticated: true },
      resolve: () => [...PLANS.values()],
    }),
    billingSubscription: t.field({
      type: SubscriptionRef,
      nullable: true,
      description: "The organisation's subscription; null before its trial or first subscription.",
      authScopes: { permission: 'billing:read' },
      resolve: (_r, _a, ctx) => currentSubscription(ctx),
    }),
    billingUsage: t.field({
      type: Usage,
      nullable: true,
      authScopes: { permission: 'billing:read' },
      args: { period: t.arg({ type: UsagePeriod, required: false, defaultValue: 'current' }) },
      resolve: (_r, args, ctx) => usageReport(ctx, args.period ?? 'current'),
    }),
    billingInvoices: t.field({
      type: [InvoiceRef],
      description: 'Newest first.',
      authScopes: { permission: 'billing:read' },
      args: {
        status: t.arg({ type: InvoiceStatus, required: false }),
        first: t.arg.int({ required: false, defaultValue: 20, validate: z.number().int().min(1).max(100) }),
        offset: t.arg.int({ required: false, defaultValue: 0, validate: z.number().int().min(0).max(100_000) }),
      },
      resolve: (_r, args, ctx) => listInvoices(ctx, { status: args.status, first: args.first ?? 20, offset: args.offset ?? 0 }),
    }),
    billingInvoice: t.field({
      type: InvoiceRef,
      authScopes: { permission: 'billing:read' },
      args: { invoiceId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => findInvoice(ctx, args.invoiceId),
    }),
    billingPaymentMethod: t.field({
      type: PaymentMethod,
      authScopes: { permission: 'billing:read' },
      resolve: (_r, _a, ctx) => paymentMethodOf(ctx),
    }),
    billingNotifications: t.field({
      type: [NotificationRef],
      description: 'Notices for admins (payment failures, retries, unpaid), newest first.',
      authScopes: { permission: 'billing:read' },
      args: { first: t.arg.int({ required: false, defaultValue: 20, validate: z.number().int().min(1).max(100) }) },
      resolve: (_r, args, ctx) => notifications(ctx, args.first ?? 20),
    }),
  }));

  const priceId = (t: Parameters<Parameters<typeof builder.mutationFields>[0]>[0]) =>
    t.arg.string({ required: true, description: 'a price id from billingPlans (e.g. professional_monthly, enterprise_annual)', validate: z.string().max(64) });

  builder.mutationFields((t) => ({
    startBillingTrial: t.field({
      type: SubscriptionRef,
      description: 'The organisation\u2019s one free trial (14 days, no card). A second one is TRIAL_ALREADY_USED.',
      authScopes: { permission: 'billing:manage' },
      args: { planId: t.arg.string({ required: false, description: 'starter | professional (default) | enterprise', validate: z.string().max(64) }) },
      resolve: (_r, args, ctx) => startTrial(ctx, args.planId ?? undefined),
    }),
    subscribeBilling: t.field({
      type: SubscriptionRef,
      description: 'A paid subscription from now (no subscription yet, or it ended); needs an active payment method.',
      authScopes: { permission: 'billing:manage' },
      args: { priceId: priceId(t) },
      resolve: (_r, args, ctx) => subscribe(ctx, args.priceId),
    }),
    changeBillingPlan: t.field({
      type: Change,
      description: 'Upgrade at once (prorated to the minute, invoiced now) or downgrade / change interval at the period end.',
      authScopes: { permission: 'billing:manage' },
      args: { priceId: priceId(t) },
      resolve: (_r, args, ctx) => changePlan(ctx, args.priceId),
    }),
    cancelBillingSubscription: t.field({
      type: SubscriptionRef,
      description: 'Cancels at the end of the current period (a trial: at its end).',
      authScopes: { permission: 'billing:manage' },
      resolve: (_r, _a, ctx) => cancelAtPeriodEnd(ctx),
    }),
    resumeBillingSubscription: t.field({
      type: SubscriptionRef,
      authScopes: { permission: 'billing:manage' },
      resolve: (_r, _a, ctx) => resume(ctx),
    }),
    startPaymentMethodSetup: t.field({
      type: SetupIntent,
      description: 'Starts collecting a card (a Stripe SetupIntent for off-session payments).',
      authScopes: { permission: 'billing:manage' },
      resolve: (_r, _a, ctx) => startPaymentMethodSetup(ctx),
    }),
    confirmPaymentMethodSetup: t.field({
      type: PaymentMethod,
      description: 'Reads the SetupIntent back from Stripe and applies it now (the webhook does the same).',
      authScopes: { permission: 'billing:manage' },
      args: { setupIntentId: t.arg.string({ required: true, validate: z.string().max(100) }) },
      resolve: (_r, args, ctx) => confirmPaymentMethodSetup(ctx, args.setupIntentId),
    }),
    retryBillingInvoice: t.field({
      type: InvoiceRef,
      description: 'Queues another payment attempt of an open or uncollectible invoice now.',
      authScopes: { permission: 'billing:manage' },
      args: { invoiceId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => retryInvoicePayment(ctx, args.invoiceId),
    }),
    voidBillingInvoice: t.field({
      type: InvoiceRef,
      authScopes: { permission: 'billing:manage' },
      args: { invoiceId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, args, ctx) => voidInvoice(ctx, args.invoiceId),
    }),
  }));
}
