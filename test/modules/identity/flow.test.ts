import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdentityModule, invitePlatformAdmin, PLATFORM_TENANT_ID } from '../../../src/modules/identity/index.js';
import { startTestApp, type TestApp, UNLIMITED } from '../../helpers/app.js';
import { acceptInvitation, loginAs, nextTotpCode, refreshTokenFrom, strongPassword, totpCode, type TestUser } from '../../helpers/auth.js';
import { bearer, codeOf, eventsOf, expectAccepted, expectRefused, postRefresh } from './helpers.js';


/**
 * The whole front door over HTTP: create tenant -> invite -> accept -> login
 * -> MFA enrol -> login with MFA -> refresh (rotated) -> replay detected ->
 * sessions listed/revoked -> idle logoff. The identity clock is injected so
 * the idle timeout passes without sleeping.
 */
let t: TestApp;
let clock = Date.now();
const now = () => clock;
beforeAll(async () => {
  t = await startTestApp({ env: UNLIMITED, modules: [createIdentityModule({ now: () => new Date(clock) })] });
});
afterAll(async () => {
  await t?.close();
});

const LOGIN = `mutation L($input: LoginInput!) { login(input: $input) { status accessToken accessTokenExpiresAt tokenType mfaToken user { id email } } }`;

describe('identity: the full flow', () => {
  let platformAdmin: TestUser;
  let clinic: { id: string; slug: string };
  let admin: TestUser;
  let nurse: TestUser;
  let adminToken: string;
  let adminRefresh: string;

  it('a platform admin (bootstrapped like the CLI) creates a tenant', async () => {
    const email = 'ops@carebase.test';
    const p = await invitePlatformAdmin(t.db.sql, { email });
    const password = strongPassword();
    await acceptInvitation(t, p.invitationToken, password);
    platformAdmin = { id: p.adminUserId, tenantId: PLATFORM_TENANT_ID, tenantSlug: 'platform', email, password, roles: ['PLATFORM_ADMIN'], recoveryCodes: [] };
    const session = await loginAs(t, platformAdmin, { now });
    const res = await t.gql<{ createTenant: { tenant: { id: string; slug: string }; admin: { id: string; status: string; roles: string[] }; invitationToken: string } }>(
      `mutation C($input: CreateTenantInput!) { createTenant(input: $input) { tenant { id slug name } admin { id status roles } invitationToken invitationExpiresAt } }`,
      { input: { name: 'Northside Clinic', slug: 'northside', adminEmail: 'Boss@Northside.test', adminName: 'Boss' } },
      session.headers,
    );
    expect(res.body.errors).toBeUndefined();
    const c = res.body.data!.createTenant;
    expect(c.tenant.slug).toBe('northside');
    expect(c.admin).toMatchObject({ status: 'INVITED', roles: ['ADMIN'] });
    clinic = c.tenant;
    admin = { id: c.admin.id, tenantId: c.tenant.id, tenantSlug: 'northside', email: 'boss@northside.test', password: strongPassword(), roles: ['ADMIN'], recoveryCodes: [] };
    await acceptInvitation(t, c.invitationToken, admin.password);

    // a tenant admin cannot create tenants
    const denied = await t.gql(`mutation C($input: CreateTenantInput!) { createTenant(input: $input) { tenant { id } } }`, {
      input: { name: 'X', slug: 'xclinic', adminEmail: 'x@x.test' },
    });
    expect(codeOf(denied)).toBe('UNAUTHENTICATED');
  });

  it('the admin must enrol TOTP at first login, which then signs them in with amr otp', async () => {
    const first = await t.gql<{ login: { status: string; accessToken: string | null; mfaToken: string } }>(LOGIN, {
      input: { tenantSlug: 'Northside', email: 'BOSS@northside.test', password: admin.password },
    });
    expect(first.body.errors).toBeUndefined();
    expect(first.body.data!.login).toMatchObject({ status: 'MFA_ENROLMENT_REQUIRED', accessToken: null });
    expect(refreshTokenFrom(first.headers)).toBeUndefined();
    const mfaToken = first.body.data!.login.mfaToken;
    const start = await t.gql<{ startTotpEnrolment: { provisioningUri: string; secret: string } }>(
      `mutation S($m: String) { startTotpEnrolment(mfaToken: $m) { provisioningUri secret } }`,
      { m: mfaToken },
    );
    expect(start.body.errors).toBeUndefined();
    const { provisioningUri, secret } = start.body.data!.startTotpEnrolment;
    expect(provisioningUri).toMatch(/^otpauth:\/\/totp\/Carebase:northside%3Aboss%40northside\.test\?/);
    expect(provisioningUri).toContain(`secret=${secret}`);
    admin.totpSecret = secret;

    // a wrong code is refused and the enrolment is not confirmed
    const wrong = await t.gql(`mutation F($input: ConfirmTotpEnrolmentInput!) { confirmTotpEnrolment(input: $input) { recoveryCodes } }`, {
      input: { mfaToken, code: '000000' === totpCode(secret, Math.floor(clock / 30000)) ? '111111' : '000000' },
    });
    expect(codeOf(wrong)).toBe('UNAUTHENTICATED');

    const confirm = await t.gql<{ confirmTotpEnrolment: { recoveryCodes: string[]; login: { status: string; accessToken: string } } }>(
      `mutation F($input: ConfirmTotpEnrolmentInput!) { confirmTotpEnrolment(input: $input) { recoveryCodes login { status accessToken } } }`,
      { input: { mfaToken, code: nextTotpCode(admin, clock) } },
    );
    expect(confirm.body.errors).toBeUndefined();
    const codes = confirm.body.data!.confirmTotpEnrolment.recoveryCodes;
    expect(codes).toHaveLength(10);
    expect(new Set(codes).size).toBe(10);
    admin.recoveryCodes = [...codes];
    expect(confirm.body.data!.confirmTotpEnrolment.login.status).toBe('AUTHENTICATED');
    const token = confirm.body.data!.confirmTotpEnrolment.login.accessToken;
    const v = await t.gql<{ viewer: { amr: string[]; user: { mfaEnabled: boolean } } }>('{ viewer { amr user { mfaEnabled } } }', {}, bearer(token));
    expect(v.body.data!.viewer).toEqual({ amr: ['pwd', 'otp', 'mfa'], user: { mfaEnabled: true } });

    // secrets are stored encrypted and hashed only
    const [row] = await t.db.owner<{ secret: Buffer }[]>`select secret from user_totp where user_id = ${admin.id}`;
    expect(row!.secret.toString('latin1')).not.toContain(secret);
    const stored = await t.db.owner<{ code_hash: Buffer }[]>`select code_hash from recovery_codes where user_id = ${admin.id}`;
    expect(stored).toHaveLength(10);
    for (const c of codes) expect(stored.some((s) => s.code_hash.toString('latin1').includes(c))).toBe(false);
  });

  it('admin invites a nurse, who accepts once and signs in with a password only', async () => {
    const s = await loginAs(t, admin, { now });
    const inv = await t.gql<{ inviteUser: { user: { id: string; status: string }; invitationToken: string } }>(
      `mutation I($input: InviteUserInput!) { inviteUser(input: $input) { user { id status } invitationToken } }`,
      { input: { email: 'nina@northside.test', displayName: 'Nina', roles: ['NURSE'] } },
      s.headers,
    );
    expect(inv.body.errors).toBeUndefined();
    expect(inv.body.data!.inviteUser.user.status).toBe('INVITED');
    const token = inv.body.data!.inviteUser.invitationToken;
    nurse = { id: inv.body.data!.inviteUser.user.id, tenantId: clinic.id, tenantSlug: 'northside', email: 'nina@northside.test', password: strongPassword(), roles: ['NURSE'], recoveryCodes: [] };
    // an invited user cannot sign in yet
    const early = await t.gql(LOGIN, { input: { tenantSlug: 'northside', email: nurse.email, password: nurse.password } });
    expect(codeOf(early)).toBe('UNAUTHENTICATED');
    await acceptInvitation(t, token, nurse.password);
    // invitation reuse
    const again = await t.gql(`mutation A($input: AcceptInvitationInput!) { acceptInvitation(input: $input) { id } }`, {
      input: { token, password: strongPassword() },
    });
    expect(codeOf(again)).toBe('UNAUTHENTICATED');
    const login = await t.gql<{ login: { status: string; accessToken: string; tokenType: string; user: { email: string } } }>(LOGIN, {
      input: { tenantSlug: 'northside', email: nurse.email, password: nurse.password },
    });
    expect(login.body.data!.login).toMatchObject({ status: 'AUTHENTICATED', tokenType: 'Bearer', user: { email: nurse.email } });
  });

  it('login with MFA: MFA_REQUIRED, then verifyMfa; a TOTP code is accepted once', async () => {
    const first = await t.gql<{ login: { status: string; mfaToken: string } }>(LOGIN, { input: { tenantSlug: 'northside', email: admin.email, password: admin.password } });
    expect(first.body.data!.login.status).toBe('MFA_REQUIRED');
    const code = nextTotpCode(admin, clock)!;
    const verify = await t.gql<{ verifyMfa: { status: string; accessToken: string } }>(
      `mutation V($input: VerifyMfaInput!) { verifyMfa(input: $input) { status accessToken } }`,
      { input: { mfaToken: first.body.data!.login.mfaToken, code } },
    );
    expect(verify.body.errors).toBeUndefined();
    expect(verify.body.data!.verifyMfa.status).toBe('AUTHENTICATED');
    adminToken = verify.body.data!.verifyMfa.accessToken;
    adminRefresh = refreshTokenFrom(verify.headers)!;
    const cookie = verify.headers.get('set-cookie')!;
    expect(cookie).toMatch(/^__Secure-carebase_refresh=cbr\./);
    expect(cookie).toContain('HttpOnly');
    expect(cookie).toContain('Secure');
    expect(cookie).toContain('SameSite=Strict');
    expect(cookie).toContain('Path=/auth');
    expect(verify.headers.get('cache-control')).toBe('no-store');

    // the same code again (new challenge): replay refused
    const second = await t.gql<{ login: { mfaToken: string } }>(LOGIN, { input: { tenantSlug: 'northside', email: admin.email, password: admin.password } });
    const replay = await t.gql(`mutation V($input: VerifyMfaInput!) { verifyMfa(input: $input) { status } }`, {
      input: { mfaToken: second.body.data!.login.mfaToken, code },
    });
    expect(codeOf(replay)).toBe('UNAUTHENTICATED');
    // a recovery code works once
    const rc = admin.recoveryCodes.shift()!;
    const withRc = await t.gql<{ verifyMfa: { status: string } }>(`mutation V($input: VerifyMfaInput!) { verifyMfa(input: $input) { status } }`, {
      input: { mfaToken: second.body.data!.login.mfaToken, recoveryCode: rc.toLowerCase() },
    });
    expect(withRc.body.data?.verifyMfa.status).toBe('AUTHENTICATED');
    const third = await t.gql<{ login: { mfaToken: string } }>(LOGIN, { input: { tenantSlug: 'northside', email: admin.email, password: admin.password } });
    const rcAgain = await t.gql(`mutation V($input: VerifyMfaInput!) { verifyMfa(input: $input) { status } }`, {
      input: { mfaToken: third.body.data!.login.mfaToken, recoveryCode: rc },
    });
    expect(codeOf(rcAgain)).toBe('UNAUTHENTICATED');
  });

  it('refresh rotates the cookie; replaying the old one revokes the whole session', async () => {
    const r1 = await postRefresh(t, adminRefresh);
    expect(r1.status).toBe(200);
    expect(r1.body.tokenType).toBe('Bearer');
    expect(r1.refreshToken).toBeTruthy();
    expect(r1.refreshToken).not.toBe(adminRefresh);
    const newAccess = r1.body.accessToken as string;
    expect(newAccess).not.toBe(adminToken);
    await expectAccepted(t, newAccess);
    const r2 = await postRefresh(t, r1.refreshToken);
    expect(r2.status).toBe(200);

    // replay of an already used token
    const replay = await postRefresh(t, adminRefresh);
    expect(replay.status).toBe(401);
    expect((replay.body.errors as { extensions: { code: string; reason: string } }[])[0]!.extensions).toMatchObject({ code: 'UNAUTHENTICATED', reason: 'refresh_reuse' });
    expect(replay.headers.get('set-cookie')).toContain('Max-Age=0');
    // the family is dead: the newest refresh token and every access token of the session are refused
    expect((await postRefresh(t, r2.refreshToken)).status).toBe(401);
    await expectRefused(t, adminToken);
    await expectRefused(t, r2.body.accessToken as string);
    const events = await eventsOf(t, clinic.id, 'refresh.reuse_detected');
    expect(events.length).toBeGreaterThanOrEqual(1);
    expect(events[0]!.details).toMatchObject({ sessionRevoked: true });
    expect(JSON.stringify(events)).not.toContain(adminRefresh);
  });

  it('sessions are listed with device and IP, and revoked one by one, all at once, or by an admin', async () => {
    const ua = { 'user-agent': 'NurseTablet/1.0' };
    const a = await t.gql<{ login: { accessToken: string } }>(LOGIN, { input: { tenantSlug: 'northside', email: nurse.email, password: nurse.password } }, ua);
    const b = await t.gql<{ login: { accessToken: string } }>(LOGIN, { input: { tenantSlug: 'northside', email: nurse.email, password: nurse.password } });
    const c = await t.gql<{ login: { accessToken: string } }>(LOGIN, { input: { tenantSlug: 'northside', email: nurse.email, password: nurse.password } });
    const ta = a.body.data!.login.accessToken;
    const tb = b.body.data!.login.accessToken;
    const tc = c.body.data!.login.accessToken;
    const list = await t.gql<{ mySessions: { id: string; device: string | null; ip: string; current: boolean; createdAt: string; lastSeenAt: string }[] }>(
      '{ mySessions { id device ip current createdAt lastSeenAt amr } }',
      {},
      bearer(ta),
    );
    expect(list.body.errors).toBeUndefined();
    const sessions = list.body.data!.mySessions;
    expect(sessions.length).toBeGreaterThanOrEqual(3);
    const mine = sessions.find((s) => s.current)!;
    expect(mine.device).toBe('NurseTablet/1.0');
    expect(mine.ip).toBe('127.0.0.1');

    // revoke session b from session a
    const vb = await t.gql<{ viewer: { sessionId: string } }>('{ viewer { sessionId } }', {}, bearer(tb));
    const rev = await t.gql<{ revokeSession: boolean }>('mutation R($id: UUID!) { revokeSession(id: $id) }', { id: vb.body.data!.viewer.sessionId }, bearer(ta));
    expect(rev.body.data?.revokeSession).toBe(true);
    await expectRefused(t, tb);
    await expectAccepted(t, ta);

    // all but the current one
    const all = await t.gql<{ revokeMySessions: number }>('mutation { revokeMySessions }', {}, bearer(ta));
    expect(all.body.data!.revokeMySessions).toBeGreaterThanOrEqual(1);
    await expectRefused(t, tc);
    await expectAccepted(t, ta);

    // the admin ends every session of the nurse
    const adminSession = await loginAs(t, admin, { now });
    const seen = await t.gql<{ userSessions: { id: string }[] }>('query S($u: UUID!) { userSessions(userId: $u) { id } }', { u: nurse.id }, adminSession.headers);
    expect(seen.body.data!.userSessions).toHaveLength(1);
    const byAdmin = await t.gql<{ revokeUserSessions: number }>('mutation R($u: UUID!) { revokeUserSessions(userId: $u) }', { u: nurse.id }, adminSession.headers);
    expect(byAdmin.body.data!.revokeUserSessions).toBe(1);
    await expectRefused(t, ta);
  });

  it('logout ends the session (cookie endpoint and GraphQL mutation)', async () => {
    const s = await loginAs(t, nurse, { now });
    const res = await fetch(`${t.url}/auth/logout`, { method: 'POST', headers: { cookie: `__Secure-carebase_refresh=${s.refreshToken}`, 'x-carebase-csrf': '1' } });
    expect(res.status).toBe(204);
    expect(res.headers.get('set-cookie')).toContain('Max-Age=0');
    await expectRefused(t, s.token);
    expect((await postRefresh(t, s.refreshToken)).status).toBe(401);

    const s2 = await loginAs(t, nurse, { now });
    const out = await t.gql<{ logout: boolean }>('mutation { logout }', {}, s2.headers);
    expect(out.body.data!.logout).toBe(true);
    await expectRefused(t, s2.token);
    expect((await postRefresh(t, s2.refreshToken)).status).toBe(401);
  });

  it('idle logoff: a session unused for longer than the tenant idle timeout ends', async () => {
    const adminSession = await loginAs(t, admin, { now });
    const set = await t.gql<{ updateAuthSettings: { idleTimeoutMinutes: number } }>(
      'mutation U($input: AuthSettingsInput!) { updateAuthSettings(input: $input) { idleTimeoutMinutes mfaRequired sessionLifetimeHours } }',
      { input: { idleTimeoutMinutes: 5 } },
      adminSession.headers,
    );
    expect(set.body.data!.updateAuthSettings.idleTimeoutMinutes).toBe(5);
    const bad = await t.gql('mutation U($input: AuthSettingsInput!) { updateAuthSettings(input: $input) { idleTimeoutMinutes } }', { input: { idleTimeoutMinutes: 1 } }, adminSession.headers);
    expect(codeOf(bad)).toBe('BAD_USER_INPUT');

    const s = await loginAs(t, nurse, { now });
    // access tokens never outlive the idle timeout
    const exp = JSON.parse(Buffer.from(s.token.split('.')[1]!, 'base64url').toString()) as { exp: number; iat: number };
    expect(exp.exp - exp.iat).toBe(300);

    // activity keeps it alive: 4 minutes, a request, 4 minutes, a refresh
    clock += 4 * 60_000;
    await expectAccepted(t, s.token);
    clock += 4 * 60_000;
    const r = await postRefresh(t, s.refreshToken);
    expect(r.status).toBe(200);

    // then 6 minutes without activity
    clock += 6 * 60_000;
    const late = await postRefresh(t, r.refreshToken);
    expect(late.status).toBe(401);
    expect((late.body.errors as { extensions: { reason: string } }[])[0]!.extensions.reason).toBe('session_ended');
    const ended = await eventsOf(t, clinic.id, 'session.idle_timeout');
    expect(ended.length).toBeGreaterThanOrEqual(1);
    const [row] = await t.db.owner<{ revoked_reason: string }[]>`select revoked_reason from sessions where id = ${s.sessionId}`;
    expect(row!.revoked_reason).toBe('idle');
  });

  it('records security events with ids only (no secrets, tokens, emails)', async () => {
    const events = await eventsOf(t, clinic.id);
    const types = new Set(events.map((e) => e.type));
    for (const ty of ['user.invited', 'user.invitation_accepted', 'login.success', 'mfa.enrolled', 'mfa.recovery_code_used', 'refresh.reuse_detected', 'session.revoked', 'logout', 'session.idle_timeout', 'tenant.settings_changed']) {
      expect(types, ty).toContain(ty);
    }
    const text = JSON.stringify(events);
    expect(text).not.toContain('@');
    expect(text).not.toContain('cbr.');
    expect(text).not.toContain(admin.password);
    expect(t.logText()).not.toContain(admin.password);
    expect(t.logText()).not.toContain('cbr.');
    expect(t.logText()).not.toContain(admin.totpSecret!);
    const platformEvents = await eventsOf(t, PLATFORM_TENANT_ID);
    expect(platformEvents.map((e) => e.type)).toEqual(expect.arrayContaining(['signing_key.rotated', 'tenant.created']));
  });
});
