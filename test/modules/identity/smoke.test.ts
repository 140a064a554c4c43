import { afterAll, beforeAll, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { createTenantWithAdmin, createUser, loginAs } from '../../helpers/auth.js';

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp();
});
afterAll(async () => {
  await t?.close();
});

it('signs in an admin (with TOTP enrolment) and a nurse', async () => {
  const clinic = await createTenantWithAdmin(t);
  const admin = await loginAs(t, clinic.admin).catch((e) => { console.log(t.logs.filter((l) => l.level === 'error').map((l) => JSON.stringify(l)).join('\n')); throw e; });
  const v = await t.gql('{ viewer { user { email roles mfaEnabled } amr permissions } }', {}, admin.headers);
  expect(v.body.errors).toBeUndefined();
  const nurse = await createUser(t, clinic, 'NURSE');
  const ns = await loginAs(t, nurse).catch((e) => { console.log(t.logText().split('\n').filter((l) => l.includes('error')).join('\n')); throw e; });
  const v2 = await t.gql('{ viewer { user { email roles mfaEnabled } amr } mySessions { id current } }', {}, ns.headers);
  console.log(JSON.stringify(v.body), JSON.stringify(v2.body));
  expect(v2.body.errors).toBeUndefined();
});
