import { sql } from 'drizzle-orm';
import { integer, jsonb, pgTable, text, timestamp, uuid } from 'drizzle-orm/pg-core';
import { tenantId } from '../db/tables.js';
import { encryptedColumn } from './column.js';

const at = (name: string) => timestamp(name, { withTimezone: true });

/**
 * Master keys (key versions): one row per KMS key ARN or local key id that
 * envelopes have been written under. Maintained by the re-encrypt job:
 * 'active' = the key it moves envelopes to; 'retiring' = envelopes may still
 * use it; 'retired' = a completed job found none left (safe to disable).
 */
export const cryptoKeys = pgTable('crypto_keys', {
  version: integer('version').primaryKey().generatedAlwaysAsIdentity(),
  keyId: text('key_id').notNull().unique(),
  provider: text('provider', { enum: ['aws-kms', 'local'] }).notNull(),
  status: text('status', { enum: ['active', 'retiring', 'retired'] }).notNull(),
  createdAt: at('created_at').notNull().defaultNow(),
  retiredAt: at('retired_at'),
});

/** Per-tenant blind-index key (32 bytes), stored as an envelope. Tenant-owned: RLS applies. */
export const cryptoIndexKeys = pgTable('crypto_index_keys', {
  tenantId: tenantId().primaryKey(),
  key: encryptedColumn('key').notNull(),
  createdAt: at('created_at').notNull().defaultNow(),
});

export interface RotationTableProgress {
  /** primary key of the last row handled (text form), null before the first batch */
  after: string | null;
  done: boolean;
}

/** Re-encrypt jobs: progress is committed with each batch, so a job resumes where it stopped. */
export const cryptoRotationJobs = pgTable('crypto_rotation_jobs', {
  id: uuid('id').primaryKey().default(sql`gen_random_uuid()`),
  targetKeyId: text('target_key_id').notNull(),
  status: text('status', { enum: ['running', 'completed', 'incomplete', 'failed'] }).notNull().default('running'),
  batchSize: integer('batch_size').notNull(),
  progress: jsonb('progress').$type<Record<string, RotationTableProgress>>().notNull().default({}),
  rowsUpdated: integer('rows_updated').notNull().default(0),
  valuesReencrypted: integer('values_reencrypted').notNull().default(0),
  /** values changed by someone else between read and write: left for the verification count */
  conflicts: integer('conflicts').notNull().default(0),
  /** envelopes not under the target key after the last pass (null until verified) */
  remaining: integer('remaining'),
  /** error class / code only, never data */
  error: text('error'),
  startedAt: at('started_at').notNull().defaultNow(),
  updatedAt: at('updated_at').notNull().defaultNow(),
  finishedAt: at('finished_at'),
});
