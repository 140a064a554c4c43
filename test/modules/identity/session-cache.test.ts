import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdentityModule } from '../../../src/modules/identity/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.js';
import { createTenantWithAdmin, userSession, type AuthSession } from '../../helpers/auth.js';
import { holdInTransaction } from '../../helpers/locks.js';

/**
 * Each request's access token is checked against its session (revoked, idle,
 * user deactivated), cached in process for sessionCacheMs. When the cached
 * state goes stale under load, the requests that find it stale together must
 * share one database check: otherwise each runs carebase_session_state and they
 * queue on the session row's activity update (seen in the bench: 110 checks at
 * 17 ms each in a 30 s read run of one user).
 */
const UNLIMITED = { RATE_LIMIT_USER_PER_MINUTE: '1000000', RATE_LIMIT_ANON_IP_PER_MINUTE: '1000000', RATE_LIMIT_AUTH_IP_PER_MINUTE: '1000000', LOAD_SHED_EVENT_LOOP_DELAY_MS: '0' };

let clock = Date.now();
let t: TestApp;
let db: TestDatabase;
let session: AuthSession;
/** calls of carebase_session_state the app sent (counted on its pool, where identity sends them) */
let checks = 0;
beforeAll(async () => {
  db = await createTestDatabase();
  // the app's pool, counting the session checks it is asked to run (the statement is a tagged template)
  const counted = new Proxy(db.sql, {
    apply(target, self, args: unknown[]) {
      const strings = args[0] as readonly string[] | undefined;
      if (Array.isArray(strings) && strings.some((s) => s.includes('carebase_session_state('))) checks++;
      return Reflect.apply(target, self, args);
    },
  });
  t = await startTestApp({ db: { ...db, sql: counted }, env: UNLIMITED, modules: [createIdentityModule({ now: () => new Date(clock) })] });
  const tenant = await createTenantWithAdmin(t);
  session = await userSession(t, tenant, 'FRONT_DESK');
});
afterAll(async () => {
  await t?.close();
});

describe('session checks under load', () => {
  it('requests that find a session stale at the same time share one check', async () => {
    const before = checks;
    clock += 60_000; // every cached session state is stale now (the default cache is 5 s)
    // hold the session row, as a slow database would: the check's activity update waits, so all 20 requests
    // arrive while the first check is still running
    const release = await holdInTransaction(db.owner, (sql) => sql`select 1 from sessions where id = ${session.sessionId} for update`);
    const pending = Promise.all(Array.from({ length: 20 }, () => t.gql('{ viewer { user { id } } }', {}, session.headers)));
    await new Promise((r) => setTimeout(r, 1_000));
    await release();
    for (const a of await pending) expect(a.body.errors).toBeUndefined();
    expect(checks - before).toBe(1);
  });

  it('a revocation while a check is in flight is not undone by it', async () => {
    clock += 60_000;
    const first = t.gql('{ viewer { user { id } } }', {}, session.headers);
    const revoke = await t.gql<{ revokeSession: unknown }>('mutation R($id: UUID!) { revokeSession(id: $id) }', { id: session.sessionId }, session.headers);
    await first;
    // revoked (or refused because the revoking request's own session is the one revoked): either way no longer accepted
    expect(revoke.status).toBeLessThan(500);
    const after = await t.gql('{ viewer { user { id } } }', {}, session.headers);
    expect(after.status).toBe(401);
    expect(after.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
  });
});
