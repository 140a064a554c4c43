import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { VERSION } from '../../src/version.js';
import { startTestApp, type TestApp } from '../helpers/app.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ env: { FEATURES: 'phase:0' } });
});
afterAll(async () => {
  await t?.close();
});

describe('boot', () => {
  it('serves serverInfo over HTTP', async () => {
    const res = await t.gql<{ serverInfo: { version: string; enabledModules: string[]; phase: number } }>(
      'query Info { serverInfo { version enabledModules phase } }',
    );
    expect(res.status).toBe(200);
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data?.serverInfo.version).toBe(VERSION);
    expect(Array.isArray(res.body.data?.serverInfo.enabledModules)).toBe(true);
  });

  it('echoes a valid x-request-id and generates one otherwise', async () => {
    const mine = await fetch(`${t.url}/healthz`, { headers: { 'x-request-id': 'abc-123' } });
    expect(mine.headers.get('x-request-id')).toBe('abc-123');
    const bad = await fetch(`${t.url}/healthz`, { headers: { 'x-request-id': 'no spaces <script>' } });
    expect(bad.headers.get('x-request-id')).toMatch(/^[0-9a-f-]{36}$/);
  });

  it('reports health and readiness', async () => {
    const h = await fetch(`${t.url}/healthz`);
    expect(h.status).toBe(200);
    expect(await h.json()).toEqual({ status: 'ok' });
    const r = await fetch(`${t.url}/readyz`);
    expect(r.status).toBe(200);
    const body = (await r.json()) as { status: string; migrations: number };
    expect(body.status).toBe('ready');
    expect(body.migrations).toBe(t.db.migrationsExpected);
  });

  it('readyz reports not ready when migrations are missing', async () => {
    await t.db.owner`delete from drizzle.__drizzle_migrations where id = (select max(id) from drizzle.__drizzle_migrations)`;
    const r = await fetch(`${t.url}/readyz`);
    expect(r.status).toBe(503);
    expect(((await r.json()) as { reason: string }).reason).toBe('migrations pending');
  });

  it('exposes Prometheus metrics with GraphQL operation durations', async () => {
    await t.gql('query MetricsProbe { serverInfo { version } }');
    const m = await (await fetch(`${t.url}/metrics`)).text();
    expect(m).toContain('carebase_graphql_operation_duration_seconds_count{operation="MetricsProbe",type="query",outcome="ok"}');
    expect(m).toContain('carebase_http_request_duration_seconds');
    expect(m).toContain('carebase_db_pool_max_connections');
  });

  it('serves requests as carebase_app, never as the table owner', async () => {
    const [row] = await t.db.sql<{ u: string; super: boolean; bypass: boolean }[]>`
      select current_user as u, r.rolsuper as super, r.rolbypassrls as bypass from pg_roles r where r.rolname = current_user`;
    expect(row).toEqual({ u: 'carebase_app', super: false, bypass: false });
    const owners = await t.db.owner<{ owner: string }[]>`select distinct tableowner as owner from pg_tables where schemaname = 'public'`;
    expect(owners.map((o) => o.owner)).not.toContain('carebase_app');
  });
});
