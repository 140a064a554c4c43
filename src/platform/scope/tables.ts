import { pgTable, text, timestamp } from 'drizzle-orm/pg-core';
import { tenantId } from '../db/tables.js';

/**
 * A tenant's entitlements: the entitlement keys (module names) its plan
 * includes. No row = every enabled module (the default until the
 * subscriptions module drives this table). Tenant-owned: RLS applies.
 */
export const tenantEntitlements = pgTable('tenant_entitlements', {
  tenantId: tenantId().primaryKey(),
  modules: text('modules').array().notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});
