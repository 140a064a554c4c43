import type postgres from 'postgres';

const IDENTIFIER = /^[a-z_][a-z0-9_]*$/;

/**
 * Row level security for a test's own tenant-owned fixture tables, as a module's migration gets it (ENABLE + FORCE
 * and the `tenant_isolation` policy on tenant_id = carebase_current_tenant(); created only when missing, so a fixture
 * may run twice), on the named tables only.
 *
 * Not `select carebase_enforce_tenant_rls()`: it ALTERs every tenant table of the database, and a test calls it while
 * its app already runs there (audit writer, outbox relay, schedules): those ACCESS EXCLUSIVE locks, taken table after
 * table, deadlocked once in CI with the app's own transactions. Migrations call it before any app runs.
 */
export async function enableTenantRls(owner: postgres.Sql, ...tables: string[]): Promise<void> {
  for (const table of tables) {
    if (!IDENTIFIER.test(table)) throw new Error(`enableTenantRls: not a plain table name: ${table}`);
    await owner.unsafe(`
      alter table "${table}" enable row level security;
      alter table "${table}" force row level security;
      do $$ begin
        if not exists (select 1 from pg_policies where schemaname = 'public' and tablename = '${table}' and policyname = 'tenant_isolation') then
          create policy tenant_isolation on "${table}" using (tenant_id = carebase_current_tenant()) with check (tenant_id = carebase_current_tenant());
        end if;
      end $$;`);
  }
}
