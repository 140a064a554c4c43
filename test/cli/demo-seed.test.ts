import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp, UNLIMITED } from '../helpers/app.js';
import { loginAs } from '../helpers/auth.js';

/** `npm run demo:seed` against the test database: every printed user signs in; production refuses it. */

const run = promisify(execFile);
const TSX = path.resolve('node_modules/.bin/tsx');

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ env: UNLIMITED });
});
afterAll(async () => {
  await t?.close();
});

function seed(args: string[], env: Record<string, string> = {}) {
  return run(TSX, ['src/cli/demo-seed.ts', ...args], {
    // the app's data dir: the CLI encrypts the sample SSNs with the same local key ring the app reads them with
    env: { ...process.env, DATABASE_URL: t.db.ownerUrl, DATABASE_APP_URL: t.db.appUrl, DATA_DIR: t.app.config.dataDir, LOG_LEVEL: '', NODE_ENV: 'development', ...env },
    timeout: 120_000,
  }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

it('creates one clinic, one user per role and sample patients; every printed user signs in', async () => {
  const slug = `demo-${randomBytes(3).toString('hex')}`;
  const r = await seed(['--slug', slug]);
  expect(r.code, r.stderr).toBe(0);
  const users = [...r.stdout.matchAll(/^([A-Z_]+)\s+(\S+@\S+)\s+(\S+)\s+(password.*)$/gm)].map((m) => ({ role: m[1]!, email: m[2]!, password: m[3]!, signIn: m[4]! }));
  expect(users.map((u) => u.role).sort()).toEqual(['ADMIN', 'BILLING', 'COMPLIANCE', 'FRONT_DESK', 'NURSE', 'PATIENT', 'PROVIDER']);
  // it says how the MFA roles sign in
  expect(users.filter((u) => u.signIn.includes('TOTP')).map((u) => u.role).sort()).toEqual(['ADMIN', 'COMPLIANCE', 'PROVIDER']);
  expect(r.stdout).toContain('startTotpEnrolment');
  expect(r.stdout).not.toMatch(/\d{3}-\d{2}-\d{4}/);

  const counts: Record<string, number> = {};
  for (const u of users) {
    const s = await loginAs(t, { id: '', tenantId: '', tenantSlug: slug, email: u.email, password: u.password, roles: [u.role], recoveryCodes: [] });
    const v = await t.gql<{ viewer: { roles: string[]; tenant: { slug: string }; user: { email: string } } }>('{ viewer { roles tenant { slug } user { email } } }', {}, s.headers);
    expect(v.body.data?.viewer, u.role).toEqual({ roles: [u.role], tenant: { slug }, user: { email: u.email } });
    if (['ADMIN', 'PROVIDER', 'NURSE', 'FRONT_DESK', 'PATIENT'].includes(u.role)) {
      const list = await t.gql<{ patients: { edges: unknown[] } }>('{ patients(first: 50) { edges { node { id } } } }', {}, s.headers);
      expect(list.body.errors, u.role).toBeUndefined();
      counts[u.role] = list.body.data!.patients.edges.length;
    }
  }
  // tenant-wide roles see every sample patient; providers and nurses their care team; the patient their own record
  expect(counts).toEqual({ ADMIN: 6, FRONT_DESK: 6, PROVIDER: 4, NURSE: 2, PATIENT: 1 });
});

it('is refused in production with one clear line, creating nothing', async () => {
  const slug = `demo-${randomBytes(3).toString('hex')}`;
  const r = await seed(['--slug', slug], { NODE_ENV: 'production' });
  expect(r.code).toBe(1);
  expect(r.stderr.trim()).toBe('carebase: demo:seed is for development only and is refused when NODE_ENV=production');
  expect(await t.db.owner`select 1 from tenants where slug = ${slug}`).toHaveLength(0);
});

it('refuses a slug that is taken with one line', async () => {
  const slug = `demo-${randomBytes(3).toString('hex')}`;
  expect((await seed(['--slug', slug])).code).toBe(0);
  const again = await seed(['--slug', slug]);
  expect(again.code).toBe(1);
  expect(again.stderr.trim()).toBe('carebase: A tenant with this slug already exists (pass --slug <other>)');
});
