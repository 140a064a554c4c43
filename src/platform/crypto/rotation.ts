import { and, asc, desc, eq, getColumns, getTableName, gt, inArray, is, ne, or, sql, Table, type Column, type SQL } from 'drizzle-orm';
import { drizzle } from 'drizzle-orm/postgres-js';
import type postgres from 'postgres';
import type { Logger } from '../logger.js';
import { isEncryptedColumn, type EncryptedValue } from './column.js';
import { CryptoError } from './errors.js';
import type { FieldCrypto } from './field-crypto.js';
import { cryptoKeys, cryptoRotationJobs, type RotationTableProgress } from './tables.js';

/**
 * The re-encrypt job: moves every envelope in every encrypted column to the
 * provider's current master key. Batched (one transaction per batch, which
 * also records progress), resumable (a stopped or failed job continues from
 * its last committed batch), idempotent (only envelopes under another key are
 * touched, with compare-and-set updates), and it reports progress. Old
 * envelopes stay readable throughout: each names its own key.
 */

export class RotationError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'RotationError';
  }
}

const LOCK_ID = 7_264_011_301; // pg advisory lock: one re-encrypt job at a time

interface EncryptedTable {
  name: string;
  table: Table;
  pk: Column;
  tenant: Column;
  columns: Array<{ key: string; column: Column }>;
}

/** Tables with encrypted columns, validated: single-column primary key and a tenant_id column. */
export function encryptedTables(tables: Iterable<unknown>): EncryptedTable[] {
  const found = new Map<string, EncryptedTable>();
  for (const table of tables) {
    if (!is(table, Table)) continue;
    const cols = Object.entries(getColumns(table) as Record<string, Column>);
    const columns = cols.filter(([, c]) => isEncryptedColumn(c)).map(([key, column]) => ({ key, column }));
    if (columns.length === 0) continue;
    const name = getTableName(table);
    const pks = cols.filter(([, c]) => c.primary).map(([, c]) => c);
    const tenant = cols.find(([, c]) => c.name === 'tenant_id')?.[1];
    if (pks.length !== 1 || !tenant) {
      throw new RotationError(`table ${name}: encrypted columns need a single-column primary key and a tenant_id column`);
    }
    found.set(name, { name, table, pk: pks[0]!, tenant, columns });
  }
  return [...found.values()].sort((a, b) => a.name.localeCompare(b.name));
}

/** SQL for the key id stored in an envelope (format version 1, see envelope.ts). */
export const envelopeKeyId = (col: Column): SQL =>
  sql`convert_from(substring(${col} from 4 for ((get_byte(${col}, 1) << 8) | get_byte(${col}, 2))), 'UTF8')`;

const castType = (pk: Column) => ({ serial: 'integer', bigserial: 'bigint', smallserial: 'smallint' })[pk.getSQLType()] ?? pk.getSQLType();
const providerOf = (keyId: string) => (keyId.startsWith('local:') ? 'local' : 'aws-kms');

export interface RotationProgress {
  jobId: string;
  targetKeyId: string;
  table: string;
  tableDone: boolean;
  /** totals for the job so far */
  rowsUpdated: number;
  valuesReencrypted: number;
  conflicts: number;
}

export interface RotationResult {
  jobId: string;
  targetKeyId: string;
  resumed: boolean;
  /** completed: no envelope left under another key; incomplete: concurrent writers left some, run again */
  status: 'completed' | 'incomplete';
  rowsUpdated: number;
  valuesReencrypted: number;
  conflicts: number;
  remaining: number;
}

export interface RotationOptions {
  /** a connection whose role bypasses RLS (superuser or BYPASSRLS): the job reads every tenant's rows */
  sql: postgres.Sql;
  crypto: FieldCrypto;
  /** every table of the schema (e.g. Object.values(tables) of src/db/schema.ts); those with encrypted columns are processed */
  tables: Iterable<unknown>;
  /** rows per batch/transaction (default 500) */
  batchSize?: number;
  onProgress?: (p: RotationProgress) => void | Promise<void>;
  /** stops between batches; the job stays resumable */
  signal?: AbortSignal;
  logger?: Logger;
}

export async function runRotation(opts: RotationOptions): Promise<RotationResult> {
  const batchSize = opts.batchSize ?? 500;
  if (!Number.isInteger(batchSize) || batchSize < 1) throw new RotationError('batch size must be a positive integer');
  const db = drizzle({ client: opts.sql });
  const targets = encryptedTables(opts.tables);
  await assertBypassesRls(opts.sql);
  const targetKeyId = await opts.crypto.provider.currentKeyId();

  const lock = await opts.sql.reserve();
  try {
    const [row] = await lock<{ locked: boolean }[]>`select pg_try_advisory_lock(${LOCK_ID}) as locked`;
    if (!row?.locked) throw new RotationError('another re-encrypt job is running');
    try {
      await registerKeys(db, targets, targetKeyId);
      const [previous] = await db
        .select()
        .from(cryptoRotationJobs)
        .where(and(eq(cryptoRotationJobs.targetKeyId, targetKeyId), inArray(cryptoRotationJobs.status, ['running', 'failed'])))
        .orderBy(desc(cryptoRotationJobs.startedAt))
        .limit(1);
      const job = previous
        ? (await db.update(cryptoRotationJobs).set({ status: 'running', error: null, batchSize, updatedAt: sql`now()` }).where(eq(cryptoRotationJobs.id, previous.id)).returning())[0]!
        : (await db.insert(cryptoRotationJobs).values({ targetKeyId, batchSize }).returning())[0]!;
      opts.logger?.info({ jobId: job.id, resumed: !!previous, tables: targets.map((t) => t.name) }, 're-encrypt job started');
      try {
        return await runJob(db, opts, targets, job, batchSize, !!previous);
      } catch (e) {
        const error = e instanceof CryptoError ? e.failure : ((e as { code?: string }).code ?? (e as Error).name ?? 'Error');
        await db.update(cryptoRotationJobs).set({ status: 'failed', error, updatedAt: sql`now()` }).where(eq(cryptoRotationJobs.id, job.id));
        opts.logger?.error({ jobId: job.id, error }, 're-encrypt job stopped; run it again to resume');
        throw e;
      }
    } finally {
      await lock`select pg_advisory_unlock(${LOCK_ID})`;
    }
  } finally {
    lock.release();
  }
}

type Db = ReturnType<typeof drizzle>;
type Job = typeof cryptoRotationJobs.$inferSelect;

async function runJob(db: Db, opts: RotationOptions, targets: EncryptedTable[], job: Job, batchSize: number, resumed: boolean): Promise<RotationResult> {
  const { crypto } = opts;
  const targetKeyId = job.targetKeyId;
  const progress: Record<string, RotationTableProgress> = { ...job.progress };
  const totals = { rowsUpdated: job.rowsUpdated, valuesReencrypted: job.valuesReencrypted, conflicts: job.conflicts };

  for (const t of targets) {
    let p = progress[t.name] ?? { after: null, done: false };
    while (!p.done) {
      opts.signal?.throwIfAborted();
      const notOnTarget = or(...t.columns.map(({ column }) => and(sql`${column} is not null`, ne(envelopeKeyId(column), targetKeyId))));
      const selection: Record<string, Column> = { pk: t.pk, tenantId: t.tenant };
      for (const { key, column } of t.columns) selection[`c_${key}`] = column;
      const rows = (await db
        .select(selection as never)
        .from(t.table as never)
        .where(p.after === null ? notOnTarget : and(gt(t.pk, p.after), notOnTarget))
        .orderBy(asc(t.pk))
        .limit(batchSize)) as Array<Record<string, unknown>>;

      // KMS work happens before the transaction: a KMS failure writes nothing
      const changes = new Map<string, Array<{ id: unknown; old: Buffer; next: EncryptedValue }>>();
      for (const r of rows) {
        for (const { key, column } of t.columns) {
          const value = r[`c_${key}`];
          if (!Buffer.isBuffer(value)) continue;
          const ctx = { tenantId: String(r.tenantId), table: t.name, column: column.name };
          let next: EncryptedValue | null;
          try {
            next = await crypto.reencrypt(value, ctx);
          } catch (e) {
            if (e instanceof CryptoError) {
              throw new CryptoError(e.failure, `re-encrypt ${t.name} row ${String(r.pk)} column ${column.name}: ${e.message}`);
            }
            throw e;
          }
          if (next) (changes.get(column.name) ?? changes.set(column.name, []).get(column.name)!).push({ id: r.pk, old: value, next });
        }
      }
      const last = rows.at(-1);
      p = { after: last ? String(last.pk) : p.after, done: rows.length < batchSize };
      const batch = { rows: 0, values: 0, conflicts: 0 };
      await db.transaction(async (tx) => {
        const updatedRows = new Set<string>();
        for (const [columnName, list] of changes) {
          const values = sql.join(
            list.map((c) => sql`(${c.id}::${sql.raw(castType(t.pk))}, ${c.old}::bytea, ${c.next}::bytea)`),
            sql`, `,
          );
          const col = sql.identifier(columnName);
          const updated = (await tx.execute(
            sql`update ${t.table} set ${col} = v.next from (values ${values}) as v(id, old, next)
                where ${t.pk} = v.id and ${t.table}.${col} = v.old returning ${t.pk} as id`,
          )) as unknown as Array<{ id: unknown }>;
          for (const u of updated) updatedRows.add(String(u.id));
          batch.values += updated.length;
          batch.conflicts += list.length - updated.length;
        }
        batch.rows = updatedRows.size;
        progress[t.name] = p;
        await tx
          .update(cryptoRotationJobs)
          .set({
            progress,
            rowsUpdated: sql`${cryptoRotationJobs.rowsUpdated} + ${batch.rows}`,
            valuesReencrypted: sql`${cryptoRotationJobs.valuesReencrypted} + ${batch.values}`,
            conflicts: sql`${cryptoRotationJobs.conflicts} + ${batch.conflicts}`,
            updatedAt: sql`now()`,
          })
          .where(eq(cryptoRotationJobs.id, job.id));
      });
      totals.rowsUpdated += batch.rows;
      totals.valuesReencrypted += batch.values;
      totals.conflicts += batch.conflicts;
      await opts.onProgress?.({ jobId: job.id, targetKeyId, table: t.name, tableDone: p.done, ...totals });
    }
  }

  const counts = await envelopeCounts(db, targets);
  const remaining = counts.filter((c) => c.keyId !== targetKeyId).reduce((n, c) => n + c.count, 0);
  const status = remaining === 0 ? 'completed' : 'incomplete';
  await db.transaction(async (tx) => {
    await tx.update(cryptoRotationJobs).set({ status, remaining, finishedAt: sql`now()`, updatedAt: sql`now()` }).where(eq(cryptoRotationJobs.id, job.id));
    if (status === 'completed') {
      await tx
        .update(cryptoKeys)
        .set({ status: 'retired', retiredAt: sql`now()` })
        .where(and(ne(cryptoKeys.keyId, targetKeyId), ne(cryptoKeys.status, 'retired')));
    }
  });
  opts.logger?.info({ jobId: job.id, status, remaining, ...totals }, 're-encrypt job finished');
  return { jobId: job.id, targetKeyId, resumed, status, remaining, ...totals };
}

/** Number of envelopes per table, column and master key. */
export async function envelopeCounts(
  db: Db,
  targets: EncryptedTable[],
): Promise<Array<{ table: string; column: string; keyId: string; count: number }>> {
  const out = [];
  for (const t of targets) {
    for (const { column } of t.columns) {
      const keyId = envelopeKeyId(column);
      const rows = await db
        .select({ keyId: sql<string>`${keyId}`, count: sql<number>`count(*)::int` })
        .from(t.table as never)
        .where(sql`${column} is not null`)
        .groupBy(keyId);
      for (const r of rows) out.push({ table: t.name, column: column.name, keyId: r.keyId, count: r.count });
    }
  }
  return out;
}

/** The target becomes the active key version; every other key in use is recorded as retiring. */
async function registerKeys(db: Db, targets: EncryptedTable[], targetKeyId: string): Promise<void> {
  const inUse = new Set((await envelopeCounts(db, targets)).map((c) => c.keyId));
  inUse.delete(targetKeyId);
  await db.transaction(async (tx) => {
    await tx.update(cryptoKeys).set({ status: 'retiring' }).where(and(eq(cryptoKeys.status, 'active'), ne(cryptoKeys.keyId, targetKeyId)));
    await tx
      .insert(cryptoKeys)
      .values({ keyId: targetKeyId, provider: providerOf(targetKeyId), status: 'active' })
      .onConflictDoUpdate({ target: cryptoKeys.keyId, set: { status: 'active', retiredAt: null } });
    for (const keyId of inUse) {
      await tx
        .insert(cryptoKeys)
        .values({ keyId, provider: providerOf(keyId), status: 'retiring' })
        .onConflictDoUpdate({ target: cryptoKeys.keyId, set: { status: 'retiring', retiredAt: null } });
    }
  });
}

async function assertBypassesRls(client: postgres.Sql): Promise<void> {
  const [row] = await client<{ ok: boolean }[]>`select rolsuper or rolbypassrls as ok from pg_roles where rolname = current_user`;
  if (!row?.ok) {
    throw new RotationError('the re-encrypt job needs a database role that bypasses row level security (superuser or BYPASSRLS)');
  }
}

export interface RotationStatus {
  keys: Array<typeof cryptoKeys.$inferSelect>;
  envelopes: Array<{ table: string; column: string; keyId: string; count: number }>;
  jobs: Job[];
}

/** Key versions, envelopes per key (a full scan of encrypted columns) and the latest jobs. */
export async function rotationStatus(client: postgres.Sql, tables: Iterable<unknown>, opts: { jobs?: number } = {}): Promise<RotationStatus> {
  const db = drizzle({ client });
  return {
    keys: await db.select().from(cryptoKeys).orderBy(asc(cryptoKeys.version)),
    envelopes: await envelopeCounts(db, encryptedTables(tables)),
    jobs: await db.select().from(cryptoRotationJobs).orderBy(desc(cryptoRotationJobs.startedAt)).limit(opts.jobs ?? 5),
  };
}
