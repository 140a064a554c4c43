import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdentityModule } from '../../../src/modules/identity/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { createTestDatabase } from '../../helpers/db.js';
import { createTenantWithAdmin, createUser, type TestTenant, type TestUser } from '../../helpers/auth.js';

/**
 * A shift change: many sign-ins at once, far more than the app pool has
 * connections (3 here). Each login holds its request
 * transaction while argon2id runs; anything it needs besides (lockouts) must
 * not wait for that same pool, or a full pool of logins waits on itself
 * forever. Every request must finish: signed in, or a typed error.
 */
const LOGIN = 'mutation L($input: LoginInput!) { login(input: $input) { status accessToken } }';
const UNLIMITED = {
  RATE_LIMIT_ANON_IP_PER_MINUTE: '1000000',
  RATE_LIMIT_AUTH_IP_PER_MINUTE: '1000000',
  LOAD_SHED_EVENT_LOOP_DELAY_MS: '0',
  LOAD_SHED_POOL_WAITING: '100000',
  // the embedded default (with the postgres store the limiter's own pool queries happen to interleave and hide a hang)
  RATE_LIMIT_STORE: 'memory',
};

let t: TestApp;
let tenant: TestTenant;
let users: TestUser[];
beforeAll(async () => {
  t = await startTestApp({ db: await createTestDatabase({ poolMax: 3 }), env: UNLIMITED, modules: [createIdentityModule({ lockout: { ipThreshold: 10_000, accountThreshold: 10_000 } })] });
  tenant = await createTenantWithAdmin(t);
  users = [];
  for (let i = 0; i < 3; i++) users.push(await createUser(t, tenant, 'FRONT_DESK'));
});
afterAll(async () => {
  await t?.close();
});

describe('concurrent sign-ins', () => {
  it('36 logins at once (same user, other users, wrong passwords) all finish: signed in or UNAUTHENTICATED', { timeout: 180_000 }, async () => {
    const attempts = Array.from({ length: 36 }, (_, i) => {
      const u = i < 20 ? users[0]! : users[1 + (i % 2)]!;
      const wrong = i % 9 === 8;
      return { wrong, input: { tenantSlug: tenant.slug, email: u.email, password: wrong ? `${u.password}-nope` : u.password } };
    });
    // a login that waits on itself never answers: fail with a message instead of hanging the suite
    const hung = new Promise<never>((_, reject) => setTimeout(() => reject(new Error('logins did not finish within 90 s (pool starvation?)')), 90_000).unref());
    const results = await Promise.race([hung, Promise.all(attempts.map((a) => t.gql<{ login: { status: string; accessToken: string | null } }>(LOGIN, { input: a.input })))]);
    results.forEach((r, i) => {
      if (attempts[i]!.wrong) {
        expect(r.body.errors?.[0]?.extensions?.code).toBe('UNAUTHENTICATED');
      } else {
        expect(r.body.errors).toBeUndefined();
        expect(r.body.data?.login.status).toBe('AUTHENTICATED');
        expect(r.body.data?.login.accessToken).toEqual(expect.any(String));
      }
    });
    // and the server still serves afterwards
    const after = await t.gql<{ serverInfo: { version: string } }>('{ serverInfo { version } }');
    expect(after.body.data?.serverInfo.version).toEqual(expect.any(String));
  });
});
