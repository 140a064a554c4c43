import { sql } from 'drizzle-orm';
import type postgres from 'postgres';
import { withTenant, type Db } from '../db/index.js';
import { AppError, ErrorCode } from '../errors.js';

/** NOTIFY channel the relay listens on; the payload is empty (it only wakes the relay). */
export const OUTBOX_CHANNEL = 'carebase_outbox';

const EVENT_TYPE = /^[a-z][a-zA-Z0-9]*(\.[a-z][a-zA-Z0-9]*)+$/;
const JOB_NAME = /^[a-z][a-zA-Z0-9]*(\.[a-zA-Z0-9]+)+$/;
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;
/** an id (uuid or opaque id) or a lowercase enum value: never free text */
const ID_OR_TOKEN = /^(?:[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}|[a-z0-9][a-z0-9_.:-]{0,63})$/i;
const ID_ONLY = /^[A-Za-z0-9_.:-]{1,128}$/;
const KEY = /^[a-z][a-zA-Z0-9]{0,63}$/;
const ROOM = /^[a-z][a-zA-Z0-9]{0,31}:[A-Za-z0-9_.-]{1,128}$/;
const MAX_PAYLOAD_BYTES = 4096;

export interface EmitEventInput {
  /** dotted domain event type, e.g. patient.updated, visit.waiting */
  type: string;
  tenantId: string;
  /** id of the changed aggregate */
  aggregateId: string;
  /**
   * ids and enum values only (never names, notes, contact data): string values
   * must be ids or short lowercase tokens, numbers and booleans are allowed,
   * arrays of those too. Checked here; free text is refused.
   */
  payload?: Record<string, unknown>;
  /** socket rooms (relative to the tenant) that receive the event, e.g. ["patient:<id>"] */
  rooms?: readonly string[];
  /** job names to run for this event in addition to the jobs subscribed to its type */
  jobs?: readonly string[];
}

function bad(message: string, field: string): AppError {
  return new AppError(ErrorCode.BAD_USER_INPUT, message, { field });
}

function checkValue(key: string, v: unknown): void {
  if (v === null || typeof v === 'boolean') return;
  if (typeof v === 'number') {
    if (!Number.isFinite(v)) throw bad(`event payload ${key} must be a finite number`, `payload.${key}`);
    return;
  }
  if (typeof v === 'string') {
    if (!ID_OR_TOKEN.test(v)) throw bad(`event payload ${key} must be an id or an enum value (ids only, never PHI)`, `payload.${key}`);
    return;
  }
  if (Array.isArray(v)) {
    if (v.length > 100) throw bad(`event payload ${key} has too many items`, `payload.${key}`);
    for (const item of v) {
      if (Array.isArray(item) || (typeof item === 'object' && item !== null)) throw bad(`event payload ${key} must be flat`, `payload.${key}`);
      checkValue(key, item);
    }
    return;
  }
  throw bad(`event payload ${key} must be an id, enum value, number, boolean or a list of those`, `payload.${key}`);
}

/** Validates an event (shape, ids-only payload); throws BAD_USER_INPUT (a programming error in the caller). */
export function validateEvent(input: EmitEventInput): void {
  if (!EVENT_TYPE.test(input.type) || input.type.length > 100) throw bad('event type must look like aggregate.action', 'type');
  if (!UUID.test(input.tenantId)) throw bad('tenantId must be a uuid', 'tenantId');
  if (!ID_ONLY.test(input.aggregateId)) throw bad('aggregateId must be an id', 'aggregateId');
  const payload = input.payload ?? {};
  if (typeof payload !== 'object' || Array.isArray(payload)) throw bad('event payload must be an object', 'payload');
  for (const [k, v] of Object.entries(payload)) {
    if (!KEY.test(k)) throw bad('event payload keys must be camelCase identifiers', 'payload');
    checkValue(k, v);
  }
  if (Buffer.byteLength(JSON.stringify(payload)) > MAX_PAYLOAD_BYTES) throw bad('event payload is too large', 'payload');
  for (const r of input.rooms ?? []) if (!ROOM.test(r)) throw bad('rooms must look like type:id (relative to the tenant)', 'rooms');
  for (const j of input.jobs ?? []) if (!JOB_NAME.test(j)) throw bad('jobs must be job names like module.job', 'jobs');
}

/**
 * Records a domain event in the outbox, in the caller's transaction: `db` is
 * the request's `await ctx.db()` or the Db of a withTenant() call. If the
 * transaction rolls back, the event never existed; once it commits, the relay
 * publishes it (at least once) to the subscribed jobs and to the given rooms.
 * Returns the event id (the idempotency key of every job it triggers).
 */
export async function emitEvent(db: Db, input: EmitEventInput): Promise<string> {
  validateEvent(input);
  const rooms = [...new Set(input.rooms ?? [])];
  const jobs = [...new Set(input.jobs ?? [])];
  const rows = await db.execute<{ id: string }>(sql`
    with ev as (
      insert into outbox (tenant_id, type, aggregate_id, payload, rooms, jobs)
      values (${input.tenantId}, ${input.type}, ${input.aggregateId}, ${JSON.stringify(input.payload ?? {})}::text::jsonb,
              ${toPgArray(rooms)}::text::text[], ${toPgArray(jobs)}::text::text[])
      returning id
    )
    select ev.id, pg_notify(${OUTBOX_CHANNEL}, '') from ev`);
  const id = rows[0]?.id;
  if (!id) throw new Error('outbox insert returned no row');
  return id;
}

/**
 * Enqueues one job through the outbox (same transaction, same guarantees):
 * an event of type `job.requested` addressed to `job` only.
 */
export async function enqueueJob(db: Db, input: { job: string; tenantId: string; aggregateId: string; payload?: Record<string, unknown> }): Promise<string> {
  return emitEvent(db, { type: 'job.requested', tenantId: input.tenantId, aggregateId: input.aggregateId, payload: input.payload, jobs: [input.job] });
}

/**
 * A schedule's fan-out: one `job` per tenant, each queued in that tenant's own transaction (the tenant's outbox, RLS),
 * with the tenant id as its aggregate and no payload. Returns how many were queued.
 */
export async function enqueueForTenants(pool: postgres.Sql, tenantIds: readonly string[], job: string): Promise<number> {
  for (const tenantId of tenantIds) await withTenant(pool, tenantId, (db) => enqueueJob(db, { job, tenantId, aggregateId: tenantId, payload: {} }));
  return tenantIds.length;
}

/** text[] literal from validated tokens (no quotes or commas can occur in them). */
function toPgArray(items: readonly string[]): string {
  return `{${items.map((i) => `"${i}"`).join(',')}}`;
}
