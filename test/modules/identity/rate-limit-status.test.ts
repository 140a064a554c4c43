import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdentityModule } from '../../../src/modules/identity/index.js';
import { startTestApp, type TestApp, UNLIMITED } from '../../helpers/app.js';
import { createTenantWithAdmin, createUser, type TestTenant } from '../../helpers/auth.js';
import { codeOf } from './helpers.js';

/**
 * docs/operations.md: RATE_LIMITED is HTTP 429 with Retry-After wherever a
 * limit applies, also when a resolver refuses (the sign-in lockout), not only
 * the request budget checked before execution.
 */

const LOGIN = 'mutation L($input: LoginInput!) { login(input: $input) { status accessToken mfaToken } }';

let t: TestApp;
let clinic: TestTenant;
beforeAll(async () => {
  t = await startTestApp({ env: UNLIMITED, modules: [createIdentityModule({ lockout: { ipThreshold: 10_000 } })] });
  clinic = await createTenantWithAdmin(t);
});
afterAll(async () => {
  await t?.close();
});

describe('RATE_LIMITED from a resolver', () => {
  it('the 7th failed sign-in of an account answers HTTP 429 with Retry-After and the code', async () => {
    const u = await createUser(t, clinic, 'BILLING');
    const login = (password: string) => t.gql(LOGIN, { input: { tenantSlug: clinic.slug, email: u.email, password } });
    for (let i = 0; i < 6; i++) {
      const failed = await login('wrong-password-123');
      expect(failed.status).toBe(200);
      expect(codeOf(failed)).toBe('UNAUTHENTICATED');
    }
    const locked = await login('wrong-password-123');
    expect(locked.status).toBe(429);
    expect(codeOf(locked)).toBe('RATE_LIMITED');
    const retryAfter = Number(locked.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(0);
    expect(Number(locked.body.errors![0]!.extensions!.retryAfter)).toBe(retryAfter);
    // the right password is refused the same way while locked
    const stillLocked = await login(u.password);
    expect(stillLocked.status).toBe(429);
    expect(codeOf(stillLocked)).toBe('RATE_LIMITED');
  });
});
