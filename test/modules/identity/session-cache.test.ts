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
beforeAll(async () => {
  db = await createTestDatabase();
  // count the app's calls of the session check (function statistics of the app role's backends)
  await db.owner.unsafe(`alter database "${db.name}" set track_functions = 'pl'`);
  t = await startTestApp({ db, env: UNLIMITED, modules: [createIdentityModule({ now: () => new Date(clock) })] });
  const tenant = await createTenantWithAdmin(t);
  session = await userSession(t, tenant, 'FRONT_DESK');
});
afterAll(async () => {
  await t?.close();
});

async function sessionChecks(): Promise<number> {
  // a backend reports its statistics when it goes idle, at most once a second: wait until the count holds for 2 s
  let last = -1;
  let same = 0;
  for (let i = 0; i < 40 && same < 4; i++) {
    await new Promise((r) => setTimeout(r, 500));
    const [r] = await db.owner<{ calls: string | null }[]>`select sum(calls) as calls from pg_stat_user_functions where funcname = 'carebase_session_state'`;
    const n = Number(r?.calls ?? 0);
    same = n === last ? same + 1 : 0;
    last = n;
  }
  return last;
}

describe('session checks under load', () => {
  it('requests that find a session stale at the same time share one check', async () => {
    const before = await sessionChecks();
    clock += 60_000; // every cached session state is stale now (the default cache is 5 s)
    // hold the session row, as a slow database would: the check's activity update waits, so all 20 requests
    // arrive while the first check is still running
    const release = await holdInTransaction(db.owner, (sql) => sql`select 1 from sessions where id = ${session.sessionId} for update`);
    const pending = Promise.all(Array.from({ length: 20 }, () => t.gql('{ viewer { user { id } } }', {}, session.headers)));
    await new Promise((r) => setTimeout(r, 1_000));
    await release();
    for (const a of await pending) expect(a.body.errors).toBeUndefined();
    expect((await sessionChecks()) - before).toBe(1);
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
