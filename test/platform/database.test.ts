import postgres from 'postgres';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { inject } from 'vitest';
import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { expectedMigrationCount, runMigrations, withTenant } from '../../src/platform/db/index.js';
import { RequestTransaction } from '../../src/platform/db/tenancy.js';
import { createLogger } from '../../src/platform/logger.js';
import { tenants } from '../../src/db/schema.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { withDatabase } from '../helpers/global-setup.js';

const silent = createLogger('silent');
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

describe('migrations', () => {
  it('are idempotent: a second run applies nothing', async () => {
    expect(await runMigrations(db.ownerUrl, silent)).toBe(0);
    const [row] = await db.owner<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`;
    expect(row!.n).toBe(expectedMigrationCount());
  });

  it('two (or four) processes migrating an empty database at once do not race', async () => {
    const name = `${inject('testDatabases').prefix}mig_${randomUUID().slice(0, 8)}`;
    const admin = postgres(inject('pgAdminUrl'), { max: 1, onnotice: () => undefined });
    await admin.unsafe(`create database ${name}`);
    try {
      const url = withDatabase(inject('pgAdminUrl'), name);
      const applied = await Promise.all([1, 2, 3, 4].map(() => runMigrations(url, silent)));
      expect(applied.reduce((a, b) => a + b, 0)).toBe(expectedMigrationCount());
      expect(applied.filter((n) => n > 0)).toHaveLength(1);
      const check = postgres(url, { max: 1 });
      const [row] = await check<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`;
      await check.end();
      expect(row!.n).toBe(expectedMigrationCount());
    } finally {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    }
  });
});

/** Every table with a tenant_id column, with its RLS state (the meta-test's query). */
async function tenantTables(owner: postgres.Sql) {
  return owner<{ table: string; enabled: boolean; forced: boolean; policies: number }[]>`
    select c.relname as table, c.relrowsecurity as enabled, c.relforcerowsecurity as forced,
           (select count(*)::int from pg_policies p where p.schemaname = 'public' and p.tablename = c.relname) as policies
    from pg_class c
    join pg_namespace n on n.oid = c.relnamespace
    join pg_attribute a on a.attrelid = c.oid and a.attname = 'tenant_id' and not a.attisdropped
    where n.nspname = 'public' and c.relkind in ('r', 'p') and not c.relispartition
    order by 1`;
}

describe('row level security', () => {
  it('meta-test: every table with tenant_id has RLS enabled, forced and a policy', async () => {
    const rows = await tenantTables(db.owner);
    const broken = rows.filter((r) => !r.enabled || !r.forced || r.policies === 0).map((r) => r.table);
    expect(broken).toEqual([]);
  });

  it('meta-test query catches a table without RLS (so the meta-test can fail)', async () => {
    await db.owner`create table rls_probe (id serial primary key, tenant_id uuid not null)`;
    try {
      const rows = await tenantTables(db.owner);
      expect(rows.find((r) => r.table === 'rls_probe')).toMatchObject({ enabled: false, forced: false, policies: 0 });
    } finally {
      await db.owner`drop table rls_probe`;
    }
  });

  it('the tenants table is RLS-protected too', async () => {
    const [row] = await db.owner<{ enabled: boolean; forced: boolean }[]>`
      select relrowsecurity as enabled, relforcerowsecurity as forced from pg_class where relname = 'tenants'`;
    expect(row).toEqual({ enabled: true, forced: true });
  });

  it('a query without the tenant filter still sees only its own tenant rows', async () => {
    // A tenant-owned table as a module would declare it; the platform function gives it RLS.
    await db.owner`create table notes (id serial primary key, tenant_id uuid not null default carebase_current_tenant() references tenants(id), body text not null)`;
    await db.owner`select carebase_enforce_tenant_rls()`;
    await db.owner`grant select, insert, update, delete on notes to carebase_app`;
    await db.owner`grant usage on sequence notes_id_seq to carebase_app`;
    const a = randomUUID();
    const b = randomUUID();
    for (const id of [a, b]) {
      await withTenant(db.sql, id, (tx) => tx.insert(tenants).values({ id, slug: `t-${id.slice(0, 8)}`, name: 'Clinic' }));
      await withTenant(db.sql, id, (tx) => tx.execute(sql`insert into notes (body) values (${`note of ${id}`}), (${`second of ${id}`})`));
    }
    const seenByA = await withTenant(db.sql, a, (tx) => tx.execute<{ body: string; tenant_id: string }>(sql`select body, tenant_id from notes`));
    expect(seenByA.map((r) => r.tenant_id)).toEqual([a, a]);
    const seenByNobody = await withTenant(db.sql, null, (tx) => tx.execute(sql`select * from notes`));
    expect(seenByNobody).toHaveLength(0);
    // writing into another tenant is refused by the policy's WITH CHECK
    await expect(withTenant(db.sql, a, (tx) => tx.execute(sql`insert into notes (tenant_id, body) values (${b}, 'x')`))).rejects.toMatchObject({ cause: { code: '42501' } });
    await expect(withTenant(db.sql, a, (tx) => tx.execute(sql`update notes set tenant_id = ${b}`))).rejects.toMatchObject({ cause: { code: '42501' } });
    const updated = await withTenant(db.sql, a, (tx) => tx.execute<{ id: number }>(sql`update notes set body = 'changed' where tenant_id = ${b} returning id`));
    expect(updated).toHaveLength(0);
    // tenants: each tenant sees only itself
    const visible = await withTenant(db.sql, a, (tx) => tx.select().from(tenants));
    expect(visible.map((t) => t.id)).toEqual([a]);
  });

  it('the tenant setting is transaction-local: a pooled connection does not keep it', async () => {
    const id = randomUUID();
    await withTenant(db.sql, id, async (tx) => {
      const [r] = await tx.execute<{ t: string }>(sql`select current_setting('app.tenant_id') as t`);
      expect(r!.t).toBe(id);
    });
    const rows = await db.sql<{ t: string | null }[]>`select nullif(current_setting('app.tenant_id', true), '') as t`;
    expect(rows[0]!.t).toBeNull();
  });

  it('after a connection failure the circuit fails requests fast but lets one probe through per interval; the probe closes it once the database answers', async () => {
    const tenant = randomUUID();
    RequestTransaction.failed(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
    try {
      const probe = new RequestTransaction(db.sql, tenant);
      const probing = probe.db().then((d) => d.execute(sql`select 1 as one`));
      // while the probe is out, the others are answered at once (DATABASE_UNAVAILABLE), not queued on the database
      const other = new RequestTransaction(db.sql, tenant);
      await expect(other.db()).rejects.toMatchObject({ code: 'DATABASE_UNAVAILABLE' });
      expect(await probing).toEqual([{ one: 1 }]);
      await probe.commit();
      // the database answered: the circuit is closed for everyone
      const after = new RequestTransaction(db.sql, tenant);
      expect(await (await after.db()).execute(sql`select 2 as two`)).toEqual([{ two: 2 }]);
      await after.commit();
    } finally {
      RequestTransaction.answered();
    }
  });

  it('when the circuit closes, every pool of the app connects one connection at once, not when a request first needs it', async () => {
    const pool = db.appPool(1); // a pool that has never connected (as the side pool and the audit writer's after an outage)
    const since = (await db.owner<{ now: string }[]>`select now()::text as now`)[0]!.now;
    const backends = async () =>
      Number((await db.owner<{ n: string }[]>`select count(*)::text as n from pg_stat_activity where datname = current_database() and usename = 'carebase_app' and backend_start > ${since}::timestamptz`)[0]!.n);
    const before = await backends();
    try {
      RequestTransaction.failed(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' }));
      RequestTransaction.answered();
      let after = before;
      for (let i = 0; i < 250 && after <= before; i++) {
        await new Promise((r) => setTimeout(r, 20));
        after = await backends();
      }
      expect(after).toBeGreaterThan(before);
      // a closed circuit stays quiet: answering again connects nothing more
      RequestTransaction.answered();
    } finally {
      RequestTransaction.answered();
      await pool.end({ timeout: 1 });
    }
    // an ended pool is no longer warmed
    expect(RequestTransaction.pools.has(pool)).toBe(false);
  });

  it('per statement, a connection lost under a statement opens the circuit as it does for a request transaction', async () => {
    const pool = db.appPool(1); // its own: the lost connection must not reach the other tests
    const t = new RequestTransaction(pool, randomUUID());
    t.perStatement();
    const d = await t.db();
    const [backend] = await d.execute<{ pid: number }>(sql`select pg_backend_pid() as pid`);
    await db.owner`select pg_terminate_backend(${backend!.pid})`;
    try {
      await expect(d.execute(sql`select 1`)).rejects.toBeTruthy();
      await t.rollback();
      expect(RequestTransaction.unavailableUntil).toBeGreaterThan(Date.now());
    } finally {
      RequestTransaction.answered();
      await pool.end({ timeout: 1 });
    }
  });

  it('per statement, after-commit work still runs once the request commits, and a beforeCommit hook is never skipped', async () => {
    const tenant = randomUUID();
    // after-commit work of a per-statement request runs when it commits (not when it rolls back)
    for (const how of ['commit', 'rollback'] as const) {
      const t = new RequestTransaction(db.sql, tenant);
      t.perStatement();
      await (await t.db()).execute(sql`select 1`);
      let ran = false;
      t.afterCommit(async () => void (ran = true));
      await (how === 'commit' ? t.commit() : t.rollback());
      expect(ran).toBe(how === 'commit');
    }
    // a hook needs the transaction: refused per statement, and a hook already waiting keeps the request one transaction
    const each = new RequestTransaction(db.sql, tenant);
    each.perStatement();
    expect(() => each.beforeCommit(async () => [])).toThrow(/connection\(\) first/);
    await each.rollback();
    const hooked = new RequestTransaction(db.sql, tenant);
    let hookRan = false;
    hooked.beforeCommit(async () => ((hookRan = true), []));
    hooked.perStatement();
    const d = await hooked.db();
    const [[a], [b]] = await Promise.all([d.execute<{ tx: string }>(sql`select txid_current()::text as tx`), d.execute<{ tx: string }>(sql`select txid_current()::text as tx`)]);
    expect(a!.tx).toBe(b!.tx);
    await hooked.commit();
    expect(hookRan).toBe(true);
  });

  it('per statement (a GraphQL query): each statement is a transaction of its own under the tenant settings; raw access makes the rest one transaction', async () => {
    const tenant = randomUUID();
    const state = sql`select txid_current()::text as tx, current_setting('app.tenant_id') as tenant, current_setting('statement_timeout') as timeout`;
    type State = { tx: string; tenant: string; timeout: string };
    const run = async (perStatement: boolean) => {
      const t = new RequestTransaction(db.sql, tenant);
      if (perStatement) t.perStatement();
      const d = await t.db();
      // two at once (as parallel resolvers send them) and one after
      const [[a], [b]] = await Promise.all([d.execute<State>(state), d.execute<State>(state)]);
      const [c] = await d.execute<State>(state);
      // raw access (a cursor, SET TRANSACTION): one transaction from here on
      const conn = await t.connection();
      const [e] = await conn<State[]>`select txid_current()::text as tx, current_setting('app.tenant_id') as tenant, current_setting('statement_timeout') as timeout`;
      const [f] = await d.execute<State>(state);
      await t.commit();
      return [a!, b!, c!, e!, f!];
    };
    const each = await run(true);
    for (const r of each) expect(r).toMatchObject({ tenant, timeout: '10s' });
    expect(new Set(each.slice(0, 4).map((r) => r.tx)).size).toBe(4);
    expect(each[4]!.tx).toBe(each[3]!.tx);
    // the default: one transaction for the request
    const one = await run(false);
    for (const r of one) expect(r).toMatchObject({ tenant, timeout: '10s' });
    expect(new Set(one.map((r) => r.tx)).size).toBe(1);
    // nothing is left open on the connection, and the pool's next user sees no tenant
    const [idle] = await db.owner<{ n: number }[]>`select count(*)::int as n from pg_stat_activity where datname = current_database() and state like 'idle in transaction%' and usename = 'carebase_app'`;
    expect(idle!.n).toBe(0);
    const rows = await db.sql<{ t: string | null }[]>`select nullif(current_setting('app.tenant_id', true), '') as t`;
    expect(rows[0]!.t).toBeNull();
  });
});
