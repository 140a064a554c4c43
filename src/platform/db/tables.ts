import { sql } from 'drizzle-orm';
import { bytea, index, integer, jsonb, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';

/** Helpers every tenant-owned table uses, so the columns look the same everywhere. */
export const id = () => uuid('id').primaryKey().default(sql`gen_random_uuid()`);
export const tenantId = () =>
  uuid('tenant_id')
    .notNull()
    .references(() => tenants.id)
    .default(sql`carebase_current_tenant()`);
export const timestamps = () => ({
  createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * Tenants (clinics). Not tenant-owned itself, but row level security still
 * lets a request see only its own tenant row (policy in the platform migration).
 */
export const tenants = pgTable('tenants', {
  id: id(),
  slug: text('slug').notNull().unique(),
  name: text('name').notNull(),
  status: text('status', { enum: ['active', 'suspended'] }).notNull().default('active'),
  plan: text('plan').notNull().default('standard'),
  settings: jsonb('settings').$type<Record<string, unknown>>().notNull().default({}),
  ...timestamps(),
});

/**
 * Stored outcomes of mutations sent with an Idempotency-Key (platform/http/idempotency.ts).
 * The response is envelope-encrypted (it may hold PHI); rows expire after IDEMPOTENCY_TTL_HOURS.
 */
export const idempotencyKeys = pgTable(
  'idempotency_keys',
  {
    tenantId: tenantId(),
    actor: text('actor').notNull(),
    key: text('key').notNull(),
    operation: text('operation').notNull(),
    requestHash: text('request_hash').notNull(),
    /** envelope (platform/crypto) of the JSON response body; null while the first request runs */
    response: bytea('response'),
    httpStatus: integer('http_status'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
    expiresAt: timestamp('expires_at', { withTimezone: true }).notNull(),
  },
  (t) => [primaryKey({ columns: [t.tenantId, t.actor, t.key] }), index('idempotency_keys_expires_idx').on(t.expiresAt)],
);
