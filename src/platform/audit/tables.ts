import { sql } from 'drizzle-orm';
import { bigint, bytea, index, jsonb, pgTable, primaryKey, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { tenantId } from '../db/tables.js';
import type { AuditDetail } from './types.js';

/**
 * The audit log: one row per (request, patient, resource, action, outcome),
 * never a PHI value; the rows of one request that differ only in the patient
 * (a search page: the same fields of each patient's record) are one row naming
 * every patient in `patient_ids` (request.ts acrossPatientsKey). Declaratively partitioned by month on `at` (the
 * PARTITION BY clause and the partition functions are hand-written in the
 * audit migration; partitions live in schema audit_partitions, where the app
 * role has no access, so RLS on this parent is the only way in).
 *
 * The app role may only INSERT and SELECT (UPDATE/DELETE/TRUNCATE revoked and
 * refused by triggers). Each tenant's rows form a hash chain ordered by `seq`:
 * hash = SHA-256(prev_hash || canonical row), see canonical.ts.
 *
 * Indexes serve the compliance reports (keyset on (at, id), newest first):
 * by patient (`patient_id`, and the GIN index on `patient_ids`), by actor, by action, by purpose, denied, break-glass, and the
 * chain order for verification.
 */
export const auditEvents = pgTable(
  'audit_events',
  {
    id: uuid('id').notNull(),
    tenantId: tenantId(),
    at: timestamp('at', { withTimezone: true }).notNull(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    prevHash: bytea('prev_hash').notNull(),
    hash: bytea('hash').notNull(),
    eventType: text('event_type').notNull(),
    actorType: text('actor_type').notNull(),
    actorId: text('actor_id'),
    actorRoles: text('actor_roles').array().notNull().default(sql`'{}'::text[]`),
    sessionId: text('session_id'),
    patientId: uuid('patient_id'),
    /** an event about several patients (a search page): all of them, patient_id null; '{}' otherwise */
    patientIds: uuid('patient_ids').array().notNull().default(sql`'{}'::uuid[]`),
    resourceType: text('resource_type'),
    resourceId: text('resource_id'),
    fields: text('fields').array().notNull().default(sql`'{}'::text[]`),
    categories: text('categories').array().notNull().default(sql`'{}'::text[]`),
    action: text('action').notNull(),
    outcome: text('outcome').notNull(),
    purposeOfUse: text('purpose_of_use'),
    requestId: text('request_id'),
    ip: text('ip'),
    userAgent: text('user_agent'),
    operationName: text('operation_name'),
    detail: jsonb('detail').$type<AuditDetail>().notNull().default({}),
  },
  (t) => [
    primaryKey({ name: 'audit_events_pkey', columns: [t.tenantId, t.at, t.id] }),
    index('audit_events_patient_idx').on(t.tenantId, t.patientId, t.at, t.id).where(sql`${t.patientId} is not null`),
    index('audit_events_patients_idx').using('gin', t.patientIds).where(sql`cardinality(${t.patientIds}) > 0`),
    index('audit_events_actor_idx').on(t.tenantId, t.actorId, t.at, t.id),
    index('audit_events_action_idx').on(t.tenantId, t.action, t.at, t.id),
    index('audit_events_purpose_idx').on(t.tenantId, t.purposeOfUse, t.at, t.id),
    index('audit_events_denied_idx').on(t.tenantId, t.at, t.id).where(sql`${t.outcome} = 'denied'`),
    index('audit_events_break_glass_idx').on(t.tenantId, t.at, t.id).where(sql`${t.action} = 'break-glass' or ${t.purposeOfUse} = 'ETREAT'`),
    index('audit_events_chain_idx').on(t.tenantId, t.seq),
  ],
);

/**
 * Head of each tenant's hash chain: the last appended seq and hash. Appends
 * lock the tenant's row (INSERT .. ON CONFLICT DO UPDATE), which serialises
 * a tenant's appends across processes. `anchor_*` is where verification
 * starts once retention has dropped the oldest partitions.
 */
export const auditChainHeads = pgTable('audit_chain_heads', {
  tenantId: tenantId().primaryKey(),
  seq: bigint('seq', { mode: 'number' }).notNull().default(0),
  hash: bytea('hash').notNull(),
  anchorSeq: bigint('anchor_seq', { mode: 'number' }).notNull().default(0),
  anchorHash: bytea('anchor_hash').notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().defaultNow(),
});

/**
 * Signed checkpoints of each tenant's chain (checkpoint.ts): every interval
 * the head's (seq, at, hash) is signed with an Ed25519 key the database
 * never holds. A DBA who rewrites history and recomputes every hash after
 * it still cannot produce a signature over the new hashes, so the verifier
 * reports CHECKPOINT_MISMATCH at the first signed seq that no longer
 * matches. Append-only like the log itself (grants + triggers).
 */
export const auditCheckpoints = pgTable(
  'audit_checkpoints',
  {
    tenantId: tenantId(),
    seq: bigint('seq', { mode: 'number' }).notNull(),
    /** `at` of the event at seq (finds its monthly partition) */
    at: timestamp('at', { withTimezone: true }).notNull(),
    hash: bytea('hash').notNull(),
    signedAt: timestamp('signed_at', { withTimezone: true }).notNull(),
    /** first 16 hex digits of SHA-256 over the public key (SPKI DER) */
    keyId: text('key_id').notNull(),
    signature: bytea('signature').notNull(),
  },
  (t) => [primaryKey({ name: 'audit_checkpoints_pkey', columns: [t.tenantId, t.seq] })],
);

/**
 * A write's audit events, staged in the write's own transaction (so the
 * change and its trail commit together) without taking the tenant's chain
 * head: concurrent writes of a tenant no longer queue on that row until their
 * COMMIT. The group writer chains staged events in batches
 * (carebase_audit_chain_staged: head lock, move into audit_events with seq and
 * hash, delete here), right after the write commits and, for whatever a crash
 * left behind, every few seconds (audit.chainStaged). The app role may only
 * INSERT here; reading and deleting happen inside the owner's functions.
 * No foreign key to tenants: RLS's WITH CHECK already fixes tenant_id, and a
 * key-share lock on the tenant row per write is what this table avoids.
 */
export const auditStaged = pgTable('audit_staged', {
  n: bigint('n', { mode: 'number' }).primaryKey().generatedAlwaysAsIdentity(),
  tenantId: uuid('tenant_id').notNull().default(sql`carebase_current_tenant()`),
  /** the audit_events columns but seq, prev_hash and hash (chain.ts) */
  event: jsonb('event').notNull(),
  /** canonical form before and after the seq (canonical.ts) */
  before: text('before').notNull(),
  after: text('after').notNull(),
  stagedAt: timestamp('staged_at', { withTimezone: true }).notNull().defaultNow(),
});
