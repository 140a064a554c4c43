import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp, UNLIMITED } from '../../helpers/app.js';
import { acceptInvitation, loginAs, strongPassword } from '../../helpers/auth.js';


const run = promisify(execFile);
const TSX = path.resolve('node_modules/.bin/tsx');

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ env: UNLIMITED });
});
afterAll(async () => {
  await t?.close();
});

function cli(args: string[]) {
  return run(TSX, ['src/cli/tenant-create.ts', ...args], {
    env: { ...process.env, DATABASE_URL: t.db.ownerUrl, DATABASE_APP_URL: t.db.appUrl, PUBLIC_ORIGINS: 'https://app.carebase.test', LOG_LEVEL: '' },
    timeout: 60_000,
  }).then(
    (r) => ({ code: 0, stdout: r.stdout, stderr: r.stderr }),
    (e: { code: number; stdout: string; stderr: string }) => ({ code: e.code, stdout: e.stdout, stderr: e.stderr }),
  );
}

it('npm run tenant:create creates a tenant and prints a one-time invitation the admin accepts', async () => {
  const r = await cli(['--name', 'Westside Clinic', '--slug', 'westside', '--admin-email', 'chief@westside.test']);
  expect(r.code, r.stderr).toBe(0);
  const token = /Invitation token:\s+(\S+)/.exec(r.stdout)?.[1];
  expect(token).toMatch(/^cbi\./);
  expect(r.stdout).toContain('https://app.carebase.test/accept-invitation#token=');
  const password = strongPassword();
  await acceptInvitation(t, token!, password);
  const s = await loginAs(t, { id: '', tenantId: '', tenantSlug: 'westside', email: 'chief@westside.test', password, roles: ['ADMIN'], recoveryCodes: [] });
  const v = await t.gql<{ viewer: { roles: string[]; tenant: { slug: string; name: string } } }>('{ viewer { roles tenant { slug name } } }', {}, s.headers);
  expect(v.body.data!.viewer).toEqual({ roles: ['ADMIN'], tenant: { slug: 'westside', name: 'Westside Clinic' } });
  // the token is stored hashed only
  const rows = await t.db.owner`select token_hash from invitations where token_hash::text like ${`%${token}%`}`;
  expect(rows).toHaveLength(0);
});

it('refuses a taken or reserved slug and bad arguments with one clear line', async () => {
  const taken = await cli(['--name', 'Again', '--slug', 'westside', '--admin-email', 'x@westside.test']);
  expect(taken.code).toBe(1);
  expect(taken.stderr.trim()).toBe('carebase: A tenant with this slug already exists');
  const reserved = await cli(['--name', 'P', '--slug', 'platform', '--admin-email', 'x@x.test']);
  expect(reserved.stderr).toContain('reserved');
  const missing = await cli(['--name', 'P']);
  expect(missing.code).toBe(1);
  expect(missing.stderr).toContain('--admin-email is required');
});

it('--platform-admin invites a platform administrator who can create tenants', async () => {
  const r = await cli(['--platform-admin', '--admin-email', 'ops@carebase.test']);
  expect(r.code, r.stderr).toBe(0);
  const token = /Invitation token:\s+(\S+)/.exec(r.stdout)![1]!;
  const password = strongPassword();
  await acceptInvitation(t, token, password);
  const s = await loginAs(t, { id: '', tenantId: '', tenantSlug: 'platform', email: 'ops@carebase.test', password, roles: [], recoveryCodes: [] });
  const v = await t.gql<{ viewer: { permissions: string[] } }>('{ viewer { permissions } }', {}, s.headers);
  expect(v.body.data!.viewer.permissions).toContain('tenant:create');
});
