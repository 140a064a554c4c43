import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdentityModule } from '../../../src/modules/identity/index.js';
import { startTestApp, type TestApp, UNLIMITED } from '../../helpers/app.js';
import { adminSession, createTenantWithAdmin, createUser, loginAs, strongPassword, totpCode, type TestTenant } from '../../helpers/auth.js';
import { bearer, codeOf, eventsOf, expectAccepted, postRefresh } from './helpers.js';


const LOGIN = 'mutation L($input: LoginInput!) { login(input: $input) { status accessToken mfaToken } }';
const login = (t: TestApp, tenantSlug: string, email: string, password: string) =>
  t.gql<{ login: { status: string; accessToken: string | null; mfaToken: string | null } }>(LOGIN, { input: { tenantSlug, email, password } });
const INVITE = 'mutation I($input: InviteUserInput!) { inviteUser(input: $input) { user { id } invitationToken } }';
const ACCEPT = 'mutation A($input: AcceptInvitationInput!) { acceptInvitation(input: $input) { id status } }';

let t: TestApp;
let a: TestTenant;
let b: TestTenant;
beforeAll(async () => {
  // the per-IP lockout is tested in its own app below: every request here comes from 127.0.0.1
  t = await startTestApp({ env: UNLIMITED, modules: [createIdentityModule({ lockout: { ipThreshold: 10_000 } })] });
  a = await createTenantWithAdmin(t);
  b = await createTenantWithAdmin(t);
});
afterAll(async () => {
  await t?.close();
});

describe('passwords', () => {
  it('refuses short, common and email-derived passwords without consuming the invitation; stores argon2id', async () => {
    const admin = await adminSession(t, a);
    const inv = await t.gql<{ inviteUser: { user: { id: string }; invitationToken: string } }>(
      INVITE,
      { input: { email: 'pat.smithson@example.test', displayName: 'Pat', roles: ['FRONT_DESK'] } },
      admin.headers,
    );
    const token = inv.body.data!.inviteUser.invitationToken;
    for (const [password, message] of [
      ['short-pw-1', 'at least 12'],
      ['password1234', 'too common'],
      ['Password2024!!', 'too common'],
      ['QazWsxEdcRfv', 'too common'],
      ['aaaaaaaaaaaaaaaa', 'too common'],
      ['my-pat.smithson-pw', 'email'],
    ] as const) {
      const res = await t.gql(ACCEPT, { input: { token, password } });
      expect(codeOf(res), password).toBe('BAD_USER_INPUT');
      expect(res.body.errors![0]!.extensions!.field).toBe('password');
      expect(res.body.errors![0]!.message).toContain(message);
      expect(JSON.stringify(res.body)).not.toContain(password);
    }
    const good = strongPassword();
    const ok = await t.gql<{ acceptInvitation: { status: string } }>(ACCEPT, { input: { token, password: good } });
    expect(ok.body.data!.acceptInvitation.status).toBe('ACTIVE');
    const [row] = await t.db.owner<{ password_hash: string }[]>`select password_hash from users where id = ${inv.body.data!.inviteUser.user.id}`;
    expect(row!.password_hash).toMatch(/^\$argon2id\$v=19\$m=19456,t=2,p=1\$/);
    expect(t.logText()).not.toContain(good);
  });

  it('every login failure looks the same: unknown tenant, unknown email, wrong password, deactivated, invited', async () => {
    const u = await createUser(t, a, 'BILLING');
    const off = await createUser(t, a, 'BILLING');
    const admin = await adminSession(t, a);
    await t.gql('mutation D($u: UUID!) { deactivateUser(userId: $u) { id } }', { u: off.id }, admin.headers);
    await t.gql(INVITE, { input: { email: 'pending@example.test', displayName: 'P', roles: ['NURSE'] } }, admin.headers);
    const answers = [
      await login(t, 'no-such-clinic', u.email, u.password),
      await login(t, a.slug, 'nobody@example.test', u.password),
      await login(t, a.slug, u.email, `${u.password}x`),
      await login(t, a.slug, off.email, off.password),
      await login(t, a.slug, 'pending@example.test', strongPassword()),
      await login(t, b.slug, u.email, u.password),
    ];
    for (const r of answers) {
      expect(r.status).toBe(200);
      expect(r.body.data ?? null).toBeNull();
      expect(r.body.errors).toEqual([{ message: 'Invalid credentials', path: ['login'], locations: expect.anything(), extensions: { code: 'UNAUTHENTICATED', reason: 'invalid_credentials' } }]);
    }
    // the right password, in any letter case of email and slug, works
    expect((await login(t, a.slug.toUpperCase(), u.email.toUpperCase(), u.password)).body.data?.login.status).toBe('AUTHENTICATED');
  });

  it('progressive lockout per account, known or unknown, with Retry-After; a lock is recorded', async () => {
    const u = await createUser(t, a, 'BILLING');
    for (let i = 0; i < 5; i++) expect(codeOf(await login(t, a.slug, u.email, 'wrong-password-123'))).toBe('UNAUTHENTICATED');
    expect(codeOf(await login(t, a.slug, u.email, 'wrong-password-123'))).toBe('UNAUTHENTICATED'); // 6th: counted, now locked
    const locked = await login(t, a.slug, u.email, u.password);
    expect(codeOf(locked)).toBe('RATE_LIMITED');
    expect(Number(locked.body.errors![0]!.extensions!.retryAfter)).toBeGreaterThan(0);
    expect(Number(locked.headers.get('retry-after'))).toBeGreaterThan(0);
    expect(locked.body.errors![0]!.message).not.toContain(u.email);
    const events = await eventsOf(t, a.id, 'login.locked');
    expect(events.some((e) => e.user_id === u.id)).toBe(true);
    // an account that does not exist locks the same way (no enumeration through lockout)
    for (let i = 0; i < 6; i++) await login(t, a.slug, 'ghost@example.test', 'wrong-password-123');
    expect(codeOf(await login(t, a.slug, 'ghost@example.test', 'wrong-password-123'))).toBe('RATE_LIMITED');
    // other accounts are unaffected
    const other = await createUser(t, a, 'BILLING');
    expect((await login(t, a.slug, other.email, other.password)).body.data?.login.status).toBe('AUTHENTICATED');
  });
});

describe('MFA', () => {
  it('TOTP brute force: a challenge dies after 5 wrong codes, then even the right code is refused; the account locks', async () => {
    const doc = await createUser(t, a, 'PROVIDER');
    await loginAs(t, doc); // enrols
    const first = await login(t, a.slug, doc.email, doc.password);
    expect(first.body.data!.login.status).toBe('MFA_REQUIRED');
    const mfaToken = first.body.data!.login.mfaToken!;
    const right = totpCode(doc.totpSecret!, Math.floor(Date.now() / 30_000) + 1);
    const wrongs = ['000000', '111111', '222222', '333333', '444444', '555555'].filter((c) => c !== right).slice(0, 5);
    for (const code of wrongs) {
      const r = await t.gql('mutation V($input: VerifyMfaInput!) { verifyMfa(input: $input) { status } }', { input: { mfaToken, code } });
      expect(codeOf(r)).toBe('UNAUTHENTICATED');
    }
    const dead = await t.gql('mutation V($input: VerifyMfaInput!) { verifyMfa(input: $input) { status } }', { input: { mfaToken, code: right } });
    expect(['UNAUTHENTICATED', 'RATE_LIMITED']).toContain(codeOf(dead));
    const again = await login(t, a.slug, doc.email, doc.password);
    const verify = (code: string) =>
      t.gql('mutation V($input: VerifyMfaInput!) { verifyMfa(input: $input) { status } }', { input: { mfaToken: again.body.data!.login.mfaToken, code } });
    expect(codeOf(await verify(right === '999999' ? '999998' : '999999'))).toBe('UNAUTHENTICATED'); // 6th failure: the lock starts
    expect(codeOf(await verify(right))).toBe('RATE_LIMITED');
    expect((await eventsOf(t, a.id, 'mfa.challenge_failed')).filter((e) => e.user_id === doc.id).length).toBeGreaterThanOrEqual(5);
  });

  it('a challenge token of another tenant, or a tampered one, is refused', async () => {
    const doc = await createUser(t, a, 'PROVIDER');
    await loginAs(t, doc);
    const first = await login(t, a.slug, doc.email, doc.password);
    const mfaToken = first.body.data!.login.mfaToken!;
    const moved = mfaToken.replace(a.id, b.id);
    const r = await t.gql('mutation V($input: VerifyMfaInput!) { verifyMfa(input: $input) { status } }', {
      input: { mfaToken: moved, code: totpCode(doc.totpSecret!, Math.floor(Date.now() / 30_000)) },
    });
    expect(codeOf(r)).toBe('UNAUTHENTICATED');
  });

  it('MFA is required by tenant policy for every role once enabled', async () => {
    const admin = await adminSession(t, b);
    const fd = await createUser(t, b, 'FRONT_DESK');
    expect((await login(t, b.slug, fd.email, fd.password)).body.data!.login.status).toBe('AUTHENTICATED');
    await t.gql('mutation U($input: AuthSettingsInput!) { updateAuthSettings(input: $input) { mfaRequired } }', { input: { mfaRequired: true } }, admin.headers);
    expect((await login(t, b.slug, fd.email, fd.password)).body.data!.login.status).toBe('MFA_ENROLMENT_REQUIRED');
  });
});

describe('refresh endpoint', () => {
  it('CSRF: a simple cross-site request is refused and changes nothing', async () => {
    const u = await createUser(t, a, 'NURSE');
    const s = await loginAs(t, u);
    const cookie = { cookie: `__Secure-carebase_refresh=${s.refreshToken}` };
    const attempts: RequestInit[] = [
      { method: 'POST', headers: { ...cookie, 'content-type': 'text/plain' }, body: 'x' },
      { method: 'POST', headers: { ...cookie, 'content-type': 'application/x-www-form-urlencoded' }, body: 'a=1' },
      { method: 'POST', headers: { ...cookie, 'x-carebase-csrf': '1', origin: 'https://evil.example' } },
      { method: 'POST', headers: { ...cookie, 'x-carebase-csrf': '1', 'sec-fetch-site': 'cross-site' } },
      { method: 'POST', headers: { ...cookie, 'x-carebase-csrf': '0' } },
    ];
    for (const init of attempts) {
      const res = await fetch(`${t.url}/auth/refresh`, init);
      expect([403, 415]).toContain(res.status);
      expect(res.headers.get('set-cookie')).toBeNull();
      const logout = await fetch(`${t.url}/auth/logout`, init);
      expect([403, 415]).toContain(logout.status);
    }
    // nothing changed: the refresh token still rotates once
    const ok = await postRefresh(t, s.refreshToken);
    expect(ok.status).toBe(200);
    // same-origin requests are accepted
    const same = await postRefresh(t, ok.refreshToken, { 'x-carebase-csrf': '1', origin: t.url, 'sec-fetch-site': 'same-origin' });
    expect(same.status).toBe(200);
  });

  it('a refresh token moved to another tenant matches nothing and changes nothing', async () => {
    const u = await createUser(t, a, 'NURSE');
    const s = await loginAs(t, u);
    const moved = s.refreshToken.replace(a.id, b.id);
    expect(moved).not.toBe(s.refreshToken);
    const r = await postRefresh(t, moved);
    expect(r.status).toBe(401);
    for (const bad of ['', 'garbage', `cbr.${a.id}.short`, `${s.refreshToken}x`]) expect((await postRefresh(t, bad)).status).toBe(401);
    expect((await postRefresh(t, undefined)).status).toBe(401);
    const ok = await postRefresh(t, s.refreshToken);
    expect(ok.status).toBe(200);
    await expectAccepted(t, ok.body.accessToken as string);
  });
});

describe('cross-tenant ids', () => {
  it('every admin mutation and query with another tenant\u2019s user or session id is NOT_FOUND and changes nothing', async () => {
    const victim = await createUser(t, b, 'NURSE');
    const victimSession = await loginAs(t, victim);
    const pending = await t.gql<{ inviteUser: { user: { id: string } } }>(
      INVITE,
      { input: { email: 'pending-b@example.test', displayName: 'P', roles: ['NURSE'] } },
      (await adminSession(t, b)).headers,
    );
    const pendingId = pending.body.data!.inviteUser.user.id;
    const admin = await adminSession(t, a);
    const snapshot = async () =>
      t.db.owner`select id, status, roles, password_hash, updated_at from users where tenant_id = ${b.id} order by id`.then((r) => JSON.stringify(r));
    const sessionsBefore = await t.db.owner`select id, revoked_at from sessions where tenant_id = ${b.id} order by id`;
    const before = await snapshot();
    const ops: [string, Record<string, unknown>][] = [
      ['mutation X($u: UUID!) { deactivateUser(userId: $u) { id } }', { u: victim.id }],
      ['mutation X($u: UUID!) { reactivateUser(userId: $u) { id } }', { u: victim.id }],
      ['mutation X($u: UUID!) { setUserRoles(userId: $u, roles: [ADMIN]) { id } }', { u: victim.id }],
      ['mutation X($u: UUID!) { resetUserMfa(userId: $u) { id } }', { u: victim.id }],
      ['mutation X($u: UUID!) { revokeUserSessions(userId: $u) }', { u: victim.id }],
      ['mutation X($u: UUID!) { resendInvitation(userId: $u) { invitationToken } }', { u: pendingId }],
      ['mutation X($u: UUID!) { revokeSession(id: $u) }', { u: victimSession.sessionId }],
      ['query X($u: UUID!) { user(id: $u) { id email } }', { u: victim.id }],
      ['query X($u: UUID!) { userSessions(userId: $u) { id } }', { u: victim.id }],
    ];
    for (const [query, vars] of ops) {
      const res = await t.gql(query, vars, admin.headers);
      expect(codeOf(res), query).toBe('NOT_FOUND');
      expect(JSON.stringify(res.body)).not.toContain(victim.email);
    }
    expect(await snapshot()).toBe(before);
    expect(await t.db.owner`select id, revoked_at from sessions where tenant_id = ${b.id} order by id`).toEqual(sessionsBefore);
    await expectAccepted(t, victimSession.token);
    // and the list of users shows only the caller's tenant
    const list = await t.gql<{ users: { id: string }[] }>('{ users(first: 200) { id } }', {}, admin.headers);
    expect(list.body.data!.users.map((u) => u.id)).not.toContain(victim.id);
  });

  it('roles without user:manage cannot use admin operations', async () => {
    const nurse = await loginAs(t, await createUser(t, a, 'NURSE'));
    const res = await t.gql('mutation X($u: UUID!) { deactivateUser(userId: $u) { id } }', { u: a.admin.id }, nurse.headers);
    expect(codeOf(res)).toBe('FORBIDDEN');
    expect(codeOf(await t.gql('{ users { id } }', {}, bearer(nurse.token)))).toBe('FORBIDDEN');
  });
});

describe('per-IP lockout', () => {
  let t2: TestApp;
  beforeAll(async () => {
    t2 = await startTestApp({ env: UNLIMITED, modules: [createIdentityModule({ lockout: { ipThreshold: 3 } })] });
  });
  afterAll(async () => {
    await t2?.close();
  });

  it('many failures from one IP across accounts lock that IP for every account', async () => {
    const clinic = await createTenantWithAdmin(t2);
    const u = await createUser(t2, clinic, 'NURSE');
    for (let i = 0; i < 4; i++) await login(t2, clinic.slug, `probe${i}@example.test`, 'wrong-password-123');
    const r = await login(t2, clinic.slug, u.email, u.password);
    expect(codeOf(r)).toBe('RATE_LIMITED');
  });
});
