/**
 * Sign-in helpers for tests of any module: tenants, users of any role, and
 * access tokens, all through the public API (GraphQL over HTTP) except the
 * tenant bootstrap, which uses the same function as `npm run tenant:create`.
 *
 *   const clinic = await createTenantWithAdmin(t);
 *   const nurse = await createUser(t, clinic, 'NURSE');
 *   const { headers } = await loginAs(t, nurse);
 *   await t.gql('{ viewer { user { id } } }', {}, headers);
 *
 * Users whose roles require MFA (ADMIN, PROVIDER, COMPLIANCE, ...) are
 * enrolled in TOTP at their first login; the helper keeps their secret and
 * recovery codes and never replays a code.
 */
import { randomBytes } from 'node:crypto';
import { TOTP, Secret } from 'otpauth';
import { provisionTenant } from '../../src/modules/identity/index.js';
import type { TestApp } from './app.js';

export interface TestUser {
  id: string;
  tenantId: string;
  tenantSlug: string;
  email: string;
  password: string;
  roles: string[];
  /** base32 TOTP secret once enrolled */
  totpSecret?: string;
  recoveryCodes: string[];
  /** highest TOTP step this helper has used (codes are single use) */
  lastStep?: number;
}

export interface TestTenant {
  id: string;
  slug: string;
  name: string;
  admin: TestUser;
}

export interface AuthSession {
  /** the access token */
  token: string;
  /** { authorization: 'Bearer ...' } to pass to t.gql */
  headers: Record<string, string>;
  /** the refresh token from the Set-Cookie of the sign-in response */
  refreshToken: string;
  sessionId: string;
  user: TestUser;
}

type Gql = TestApp['gql'];

export const strongPassword = () => `Correct-${randomBytes(9).toString('base64url')}-horse`;
let seq = 0;
const uniqueSuffix = () => `${Date.now().toString(36)}${(seq++).toString(36)}${randomBytes(2).toString('hex')}`;

async function ok<T>(gql: Gql, query: string, variables: Record<string, unknown>, headers?: Record<string, string>): Promise<{ data: T; headers: Headers }> {
  const res = await gql<T>(query, variables, headers);
  if (res.body.errors?.length || !res.body.data) {
    throw new Error(`GraphQL failed (${res.status}): ${JSON.stringify(res.body.errors)}`);
  }
  return { data: res.body.data, headers: res.headers };
}

/** The refresh token in a response's Set-Cookie, if any. */
export function refreshTokenFrom(headers: Headers): string | undefined {
  const cookies = headers.getSetCookie?.() ?? [headers.get('set-cookie') ?? ''];
  for (const c of cookies) {
    const m = /__Secure-carebase_refresh=([^;]*)/.exec(c);
    if (m && m[1]) return decodeURIComponent(m[1]);
  }
  return undefined;
}

/** The TOTP code of a 30 s step. */
export function totpCode(secret: string, step: number): string {
  return TOTP.generate({ secret: Secret.fromBase32(secret), algorithm: 'SHA1', digits: 6, period: 30, timestamp: step * 30_000 });
}

/** A code the server has not seen for this user: the oldest still-valid step above the last one used. */
export function nextTotpCode(user: TestUser, nowMs = Date.now()): string | undefined {
  if (!user.totpSecret) return undefined;
  const current = Math.floor(nowMs / 30_000);
  for (const step of [current - 1, current, current + 1]) {
    if (user.lastStep === undefined || step > user.lastStep) {
      user.lastStep = step;
      return totpCode(user.totpSecret, step);
    }
  }
  return undefined;
}

const LOGIN = `mutation Login($input: LoginInput!) { login(input: $input) { status accessToken mfaToken } }`;
const VERIFY = `mutation Verify($input: VerifyMfaInput!) { verifyMfa(input: $input) { status accessToken } }`;
const START = `mutation Start($mfaToken: String) { startTotpEnrolment(mfaToken: $mfaToken) { provisioningUri secret } }`;
const CONFIRM = `mutation Confirm($input: ConfirmTotpEnrolmentInput!) { confirmTotpEnrolment(input: $input) { recoveryCodes login { status accessToken } } }`;
const VIEWER = `query HelperViewer { viewer { sessionId } }`;

/** Signs a user in over HTTP (enrolling TOTP first when their roles require MFA). */
export async function loginAs(t: Pick<TestApp, 'gql'>, user: TestUser, opts: { now?: () => number } = {}): Promise<AuthSession> {
  const now = opts.now ?? Date.now;
  // On the real clock, a code for the previous step (the first one nextTotpCode hands out) is good until the end of
  // the current step: close to that boundary, a busy machine would reach the server too late. Wait it out.
  if (!opts.now) {
    const left = 30_000 - (Date.now() % 30_000);
    if (left < 6_000) await new Promise((r) => setTimeout(r, left + 50));
  }
  const first = await ok<{ login: { status: string; accessToken: string | null; mfaToken: string | null } }>(t.gql, LOGIN, {
    input: { tenantSlug: user.tenantSlug, email: user.email, password: user.password },
  });
  let token: string;
  let headers: Headers;
  const status = first.data.login.status;
  if (status === 'AUTHENTICATED') {
    token = first.data.login.accessToken!;
    headers = first.headers;
  } else if (status === 'MFA_ENROLMENT_REQUIRED') {
    const mfaToken = first.data.login.mfaToken!;
    const start = await ok<{ startTotpEnrolment: { secret: string } }>(t.gql, START, { mfaToken });
    user.totpSecret = start.data.startTotpEnrolment.secret;
    user.lastStep = undefined;
    const confirm = await ok<{ confirmTotpEnrolment: { recoveryCodes: string[]; login: { accessToken: string } } }>(t.gql, CONFIRM, {
      input: { mfaToken, code: nextTotpCode(user, now()) },
    });
    user.recoveryCodes = [...confirm.data.confirmTotpEnrolment.recoveryCodes];
    token = confirm.data.confirmTotpEnrolment.login.accessToken;
    headers = confirm.headers;
  } else {
    const mfaToken = first.data.login.mfaToken!;
    const code = nextTotpCode(user, now());
    const recoveryCode = code ? undefined : user.recoveryCodes.shift();
    if (!code && !recoveryCode) throw new Error(`loginAs: no unused TOTP step or recovery code left for ${user.email}`);
    const verified = await ok<{ verifyMfa: { accessToken: string } }>(t.gql, VERIFY, { input: { mfaToken, code, recoveryCode } });
    token = verified.data.verifyMfa.accessToken;
    headers = verified.headers;
  }
  const refreshToken = refreshTokenFrom(headers);
  if (!refreshToken) throw new Error('loginAs: no refresh cookie in the sign-in response');
  const auth = { authorization: `Bearer ${token}` };
  const viewer = await ok<{ viewer: { sessionId: string } }>(t.gql, VIEWER, {}, auth);
  return { token, headers: auth, refreshToken, sessionId: viewer.data.viewer.sessionId, user };
}

/** Accepts an invitation over HTTP, setting `password`. */
export async function acceptInvitation(t: Pick<TestApp, 'gql'>, invitationToken: string, password: string): Promise<{ id: string }> {
  const r = await ok<{ acceptInvitation: { id: string } }>(
    t.gql,
    `mutation Accept($input: AcceptInvitationInput!) { acceptInvitation(input: $input) { id } }`,
    { input: { token: invitationToken, password } },
  );
  return r.data.acceptInvitation;
}

/** A new tenant whose admin has accepted the invitation (signs in with loginAs(t, tenant.admin)). */
export async function createTenantWithAdmin(t: TestApp, opts: { slug?: string; name?: string; adminEmail?: string } = {}): Promise<TestTenant> {
  const suffix = uniqueSuffix();
  const slug = opts.slug ?? `clinic-${suffix}`;
  const name = opts.name ?? `Clinic ${suffix}`;
  const email = opts.adminEmail ?? `admin-${suffix}@example.test`;
  const p = await provisionTenant(t.db.sql, { name, slug, adminEmail: email, adminName: 'Test Admin' });
  const password = strongPassword();
  await acceptInvitation(t, p.invitationToken, password);
  return {
    id: p.tenantId,
    slug,
    name,
    admin: { id: p.adminUserId, tenantId: p.tenantId, tenantSlug: slug, email, password, roles: ['ADMIN'], recoveryCodes: [] },
  };
}

const adminSessions = new WeakMap<TestUser, AuthSession>();

/** The tenant admin's session (signed in once per admin, then reused). */
export async function adminSession(t: Pick<TestApp, 'gql'>, tenant: TestTenant): Promise<AuthSession> {
  let s = adminSessions.get(tenant.admin);
  if (!s) {
    s = await loginAs(t, tenant.admin);
    adminSessions.set(tenant.admin, s);
  }
  return s;
}

/** A user of `tenant` with the given role(s), invited by the tenant's admin and activated (not yet signed in). */
export async function createUser(
  t: Pick<TestApp, 'gql'>,
  tenant: TestTenant,
  roles: string | string[],
  opts: { email?: string; displayName?: string } = {},
): Promise<TestUser> {
  const list = Array.isArray(roles) ? roles : [roles];
  const email = opts.email ?? `${list[0]!.toLowerCase()}-${uniqueSuffix()}@example.test`;
  const admin = await adminSession(t, tenant);
  const inv = await ok<{ inviteUser: { user: { id: string }; invitationToken: string } }>(
    t.gql,
    `mutation Invite($input: InviteUserInput!) { inviteUser(input: $input) { user { id } invitationToken } }`,
    { input: { email, displayName: opts.displayName ?? `Test ${list.join('/')}`, roles: list } },
    admin.headers,
  );
  const password = strongPassword();
  await acceptInvitation(t, inv.data.inviteUser.invitationToken, password);
  return { id: inv.data.inviteUser.user.id, tenantId: tenant.id, tenantSlug: tenant.slug, email, password, roles: list, recoveryCodes: [] };
}

/** createUser + loginAs. */
export async function userSession(t: Pick<TestApp, 'gql'>, tenant: TestTenant, roles: string | string[]): Promise<AuthSession> {
  return loginAs(t, await createUser(t, tenant, roles));
}
