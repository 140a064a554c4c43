import { sql } from 'drizzle-orm';
import { check, customType, index, pgTable, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core';
import { id, tenantId } from '../../platform/db/tables.js';

const bytea = customType<{ data: Buffer; driverData: Buffer }>({ dataType: () => 'bytea' });
const tstz = (name: string) => timestamp(name, { withTimezone: true });

export const API_KEY_TIER_VALUES = ['free', 'standard', 'enterprise'] as const;

/**
 * API keys for partner systems. The key itself (cb_live_<prefix>_<secret>)
 * is shown once; only its prefix (lookup) and the SHA-256 of the whole key
 * are stored. Tenant-owned (RLS); authentication resolves a prefix before
 * the tenant is known through the SECURITY DEFINER function
 * carebase_api_key_lookup (migration), never by lifting RLS for the app.
 */
export const apiKeys = pgTable(
  'api_keys',
  {
    id: id(),
    tenantId: tenantId(),
    /** the admin's label for the partner system (not PHI) */
    name: text('name').notNull(),
    prefix: text('prefix').notNull(),
    secretHash: bytea('secret_hash').notNull(),
    permissions: text('permissions').array().notNull(),
    tier: text('tier', { enum: API_KEY_TIER_VALUES }).notNull().default('standard'),
    createdBy: uuid('created_by').notNull(),
    createdAt: tstz('created_at').notNull().defaultNow(),
    expiresAt: tstz('expires_at'),
    revokedAt: tstz('revoked_at'),
    revokedBy: uuid('revoked_by'),
    /** written at most once a minute per key and process */
    lastUsedAt: tstz('last_used_at'),
  },
  (t) => [
    unique('api_keys_prefix_key').on(t.prefix),
    unique('api_keys_tenant_id_id_key').on(t.tenantId, t.id),
    index('api_keys_tenant_created_idx').on(t.tenantId, t.createdAt),
    check('api_keys_tier_check', sql`${t.tier} in ('free', 'standard', 'enterprise')`),
    check('api_keys_prefix_check', sql`${t.prefix} ~ '^[0-9a-f]{12}$'`),
  ],
);

/**
 * Break-glass grants: time-boxed emergency access of one user to one
 * patient, with the reason the user stated. Rows are never deleted; ending a
 * grant early sets ended_at, a compliance review sets reviewed_at.
 */
export const breakGlassGrants = pgTable(
  'break_glass_grants',
  {
    id: id(),
    tenantId: tenantId(),
    userId: uuid('user_id').notNull(),
    patientId: uuid('patient_id').notNull(),
    /** free text the user typed: may contain PHI, so it is never logged or put in an event */
    reason: text('reason').notNull(),
    createdAt: tstz('created_at').notNull().defaultNow(),
    expiresAt: tstz('expires_at').notNull(),
    endedAt: tstz('ended_at'),
    endedBy: uuid('ended_by'),
    reviewedAt: tstz('reviewed_at'),
    reviewedBy: uuid('reviewed_by'),
  },
  (t) => [
    unique('break_glass_grants_tenant_id_id_key').on(t.tenantId, t.id),
    index('break_glass_grants_lookup_idx').on(t.tenantId, t.userId, t.patientId, t.expiresAt),
    index('break_glass_grants_tenant_created_idx').on(t.tenantId, t.createdAt),
    check('break_glass_grants_window_check', sql`${t.expiresAt} > ${t.createdAt}`),
  ],
);

export const accessTables = { apiKeys, breakGlassGrants };
