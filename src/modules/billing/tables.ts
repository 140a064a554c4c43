import { sql } from 'drizzle-orm';
import { bigint, boolean, check, index, integer, jsonb, pgTable, primaryKey, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core';
import { id, tenantId } from '../../platform/db/tables.js';

/**
 * The billing module's tables. Every one is tenant-owned (tenant_id, RLS
 * tenant_isolation). Amounts are integer minor units (bigint) next to their
 * currency; times are timestamptz (UTC).
 */
const tstz = (name: string) => timestamp(name, { withTimezone: true });
const money = (name: string) => bigint(name, { mode: 'number' });

export const SUBSCRIPTION_STATUSES = ['trialing', 'active', 'past_due', 'unpaid', 'cancelled'] as const;
export type SubscriptionStatus = (typeof SUBSCRIPTION_STATUSES)[number];
export const INVOICE_STATUSES = ['draft', 'open', 'paid', 'void', 'uncollectible'] as const;
export type InvoiceStatus = (typeof INVOICE_STATUSES)[number];
export const LINE_KINDS = ['plan', 'seats', 'proration', 'usage', 'balance', 'tax'] as const;
export type LineKind = (typeof LINE_KINDS)[number];
export const PAYMENT_METHOD_STATUSES = ['none', 'pending', 'active', 'failed'] as const;
export type PaymentMethodStatus = (typeof PAYMENT_METHOD_STATUSES)[number];

/** One per tenant: its payment-provider customer, default payment method and invoice counter. */
export const billingAccounts = pgTable(
  'billing_accounts',
  {
    tenantId: tenantId().primaryKey(),
    currency: text('currency').notNull().default('usd'),
    /** the provider's customer id (Stripe `cus_...`) once created */
    customerId: text('customer_id').unique(),
    paymentMethodStatus: text('payment_method_status', { enum: PAYMENT_METHOD_STATUSES }).notNull().default('none'),
    /** provider ids and display data only (brand, last 4 digits, expiry): never a card number */
    paymentMethodId: text('payment_method_id'),
    paymentMethodBrand: text('payment_method_brand'),
    paymentMethodLast4: text('payment_method_last4'),
    paymentMethodExpires: text('payment_method_expires'),
    /** the SetupIntent that collects (or collected) the payment method */
    setupIntentId: text('setup_intent_id'),
    /** provider `created` (epoch seconds) of the last SetupIntent event applied: older events are not applied */
    setupEventCreated: bigint('setup_event_created', { mode: 'number' }),
    /**
     * owed amounts carried to the next invoice: an invoice below the card network's minimum charge (Stripe: $0.50)
     * is settled by moving its amount here, as Stripe does with a customer balance
     */
    balance: money('balance').notNull().default(0),
    /** last invoice number issued (invoices are numbered per tenant) */
    invoiceSeq: integer('invoice_seq').notNull().default(0),
    createdAt: tstz('created_at').notNull().defaultNow(),
    updatedAt: tstz('updated_at').notNull().defaultNow(),
  },
  (t) => [check('billing_accounts_currency_check', sql`${t.currency} ~ '^[a-z]{3}$'`)],
);

/** One per tenant (a tenant's trial, then its subscription, all on this row: one trial per tenant). */
export const billingSubscriptions = pgTable(
  'billing_subscriptions',
  {
    id: id(),
    tenantId: tenantId().unique(),
    planId: text('plan_id').notNull(),
    interval: text('interval', { enum: ['month', 'year'] }).notNull(),
    status: text('status', { enum: SUBSCRIPTION_STATUSES }).notNull(),
    /** periods are whole months/years after the anchor */
    anchor: tstz('anchor').notNull(),
    currentPeriodStart: tstz('current_period_start').notNull(),
    currentPeriodEnd: tstz('current_period_end').notNull(),
    trialStart: tstz('trial_start'),
    trialEnd: tstz('trial_end'),
    cancelAtPeriodEnd: boolean('cancel_at_period_end').notNull().default(false),
    cancelledAt: tstz('cancelled_at'),
    endedAt: tstz('ended_at'),
    /** why it ended: cancelled (at period end), trial_expired (no payment method), unpaid */
    endReason: text('end_reason'),
    /** a downgrade or interval change waiting for the period end */
    pendingPlanId: text('pending_plan_id'),
    pendingInterval: text('pending_interval', { enum: ['month', 'year'] }),
    /** first failed payment of the current dunning run */
    pastDueSince: tstz('past_due_since'),
    /** bumped on every change (realtime events carry it: a client ignores an older one) */
    version: integer('version').notNull().default(1),
    createdAt: tstz('created_at').notNull().defaultNow(),
    updatedAt: tstz('updated_at').notNull().defaultNow(),
  },
  (t) => [
    check('billing_subscriptions_status_check', sql`${t.status} in ('trialing', 'active', 'past_due', 'unpaid', 'cancelled')`),
    check('billing_subscriptions_period_check', sql`${t.currentPeriodEnd} > ${t.currentPeriodStart}`),
    index('billing_subscriptions_due_idx').on(t.currentPeriodEnd),
  ],
);

/** Invoices, numbered per tenant (`seq`), with their collection state. */
export const billingInvoices = pgTable(
  'billing_invoices',
  {
    id: id(),
    tenantId: tenantId(),
    subscriptionId: uuid('subscription_id').notNull(),
    seq: integer('seq').notNull(),
    number: text('number').notNull(),
    status: text('status', { enum: INVOICE_STATUSES }).notNull().default('draft'),
    /** subscription_create | subscription_cycle | subscription_update (proration) | subscription_final | trial_conversion */
    reason: text('reason').notNull(),
    currency: text('currency').notNull(),
    periodStart: tstz('period_start').notNull(),
    periodEnd: tstz('period_end').notNull(),
    subtotal: money('subtotal').notNull().default(0),
    tax: money('tax').notNull().default(0),
    total: money('total').notNull().default(0),
    amountPaid: money('amount_paid').notNull().default(0),
    amountDue: money('amount_due').notNull().default(0),
    /** what was moved to the account balance (below the minimum charge) instead of charged */
    amountCarried: money('amount_carried').notNull().default(0),
    /** collection attempts so far, when the next one is due (dunning), the first failure */
    attemptCount: integer('attempt_count').notNull().default(0),
    nextPaymentAttempt: tstz('next_payment_attempt'),
    firstFailedAt: tstz('first_failed_at'),
    /** the provider's PaymentIntent (`pi_...`) collecting this invoice */
    paymentIntentId: text('payment_intent_id').unique(),
    /** decline code of the last failure (e.g. card_declined): a code, never a message */
    lastPaymentError: text('last_payment_error'),
    createdAt: tstz('created_at').notNull().defaultNow(),
    finalizedAt: tstz('finalized_at'),
    paidAt: tstz('paid_at'),
    voidedAt: tstz('voided_at'),
    markedUncollectibleAt: tstz('marked_uncollectible_at'),
  },
  (t) => [
    unique('billing_invoices_tenant_seq_key').on(t.tenantId, t.seq),
    unique('billing_invoices_tenant_id_id_key').on(t.tenantId, t.id),
    index('billing_invoices_tenant_created_idx').on(t.tenantId, t.createdAt),
    index('billing_invoices_next_attempt_idx').on(t.nextPaymentAttempt),
    check('billing_invoices_status_check', sql`${t.status} in ('draft', 'open', 'paid', 'void', 'uncollectible')`),
    check('billing_invoices_amounts_check', sql`${t.total} = ${t.subtotal} + ${t.tax} and ${t.amountDue} >= 0 and ${t.amountPaid} >= 0`),
  ],
);

/** Line items of an invoice: plan, seats, proration, metered usage, tax (placeholder). */
export const billingInvoiceLines = pgTable(
  'billing_invoice_lines',
  {
    id: id(),
    tenantId: tenantId(),
    invoiceId: uuid('invoice_id').notNull(),
    position: integer('position').notNull(),
    kind: text('kind', { enum: LINE_KINDS }).notNull(),
    description: text('description').notNull(),
    quantity: bigint('quantity', { mode: 'number' }).notNull(),
    unitAmount: money('unit_amount').notNull(),
    amount: money('amount').notNull(),
    currency: text('currency').notNull(),
    periodStart: tstz('period_start'),
    periodEnd: tstz('period_end'),
    planId: text('plan_id'),
  },
  (t) => [
    unique('billing_invoice_lines_position_key').on(t.tenantId, t.invoiceId, t.position),
    check('billing_invoice_lines_kind_check', sql`${t.kind} in ('plan', 'seats', 'proration', 'usage', 'balance', 'tax')`),
  ],
);

/** API-key calls per hour and key (metered usage), summed from billing_usage_requests. */
export const billingUsageHourly = pgTable(
  'billing_usage_hourly',
  {
    tenantId: tenantId(),
    hour: tstz('hour').notNull(),
    apiKeyId: uuid('api_key_id').notNull(),
    calls: bigint('calls', { mode: 'number' }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.hour, t.apiKeyId] }), check('billing_usage_hourly_hour_check', sql`${t.hour} = date_trunc('hour', ${t.hour})`)],
);

/** Request ids already counted (a retried request with the same id counts once); purged after BILLING_USAGE_DEDUP_DAYS. */
export const billingUsageRequests = pgTable(
  'billing_usage_requests',
  {
    tenantId: tenantId(),
    requestId: text('request_id').notNull(),
    apiKeyId: uuid('api_key_id').notNull(),
    hour: tstz('hour').notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.requestId] }), index('billing_usage_requests_hour_idx').on(t.hour)],
);

/** Provider webhook events, stored once by event id and processed once (processed_at). */
export const billingWebhookEvents = pgTable(
  'billing_webhook_events',
  {
    /** the provider's event id (`evt_...`): unique across tenants */
    id: text('id').primaryKey(),
    tenantId: tenantId(),
    type: text('type').notNull(),
    /** id of the object the event carries (pi_..., seti_...) and its provider `created` (epoch s) */
    objectId: text('object_id').notNull(),
    eventCreated: bigint('event_created', { mode: 'number' }).notNull(),
    /** the verified event as received (ids, amounts, statuses; no card number exists in it) */
    payload: jsonb('payload').$type<Record<string, unknown>>().notNull(),
    receivedAt: tstz('received_at').notNull().defaultNow(),
    processedAt: tstz('processed_at'),
    /** applied | stale (an older state than the one already applied) | ignored (a type Carebase does not use) */
    outcome: text('outcome'),
  },
  (t) => [index('billing_webhook_events_object_idx').on(t.tenantId, t.objectId)],
);

/** Notices for the tenant's admins (payment failed, retry scheduled, subscription unpaid, trial ending). */
export const billingNotifications = pgTable(
  'billing_notifications',
  {
    id: id(),
    tenantId: tenantId(),
    kind: text('kind').notNull(),
    invoiceId: uuid('invoice_id'),
    /** e.g. the attempt number, the day count: numbers and codes only */
    detail: jsonb('detail').$type<Record<string, string | number | null>>().notNull().default({}),
    createdAt: tstz('created_at').notNull().defaultNow(),
  },
  (t) => [index('billing_notifications_tenant_created_idx').on(t.tenantId, t.createdAt)],
);

export type BillingAccount = typeof billingAccounts.$inferSelect;
export type Subscription = typeof billingSubscriptions.$inferSelect;
export type Invoice = typeof billingInvoices.$inferSelect;
export type InvoiceLine = typeof billingInvoiceLines.$inferSelect;
export type WebhookEventRow = typeof billingWebhookEvents.$inferSelect;
export type Notification = typeof billingNotifications.$inferSelect;

export const billingTables = {
  billingAccounts,
  billingSubscriptions,
  billingInvoices,
  billingInvoiceLines,
  billingUsageHourly,
  billingUsageRequests,
  billingWebhookEvents,
  billingNotifications,
};
