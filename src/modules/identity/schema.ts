import { z } from 'zod';
import { ROLES } from '../../platform/access/index.js';
import type { Builder, RequestContext } from '../../schema/index.js';
import { confirmTotpEnrolment, login, regenerateRecoveryCodes, startTotpEnrolment, verifyMfa, type IssuedSession, type LoginResult } from './auth.js';
import { authSettings, REFRESH_COOKIE, REFRESH_COOKIE_PATH, type AuthSettings } from './constants.js';
import { loadTenant, requireUser, userView, type TenantRow, type UserView } from './common.js';
import type { IdentityRuntime } from './runtime.js';
import {
  acceptInvitation,
  adminResetMfa,
  changePassword,
  createTenant,
  getUser,
  inviteUser,
  listUsers,
  logoutCurrent,
  mySessions,
  resendInvitation,
  revokeMySession,
  revokeMySessions,
  revokeUserSessions,
  setUserRoles,
  setUserStatus,
  updateAuthSettings,
  userSessions,
  type Invitation,
  type SessionView,
} from './users.js';

/**
 * Set-Cookie for the refresh token: httpOnly, Secure, SameSite=Strict, sent
 * only to /auth/* (refresh, logout). Tokens are [A-Za-z0-9._-] only, so the
 * value needs no encoding.
 */
export function refreshCookie(token: string, expiresAt: Date, now: Date): string {
  if (!/^[A-Za-z0-9._-]+$/.test(token)) throw new Error('refresh token has characters a cookie cannot carry');
  const maxAge = Math.max(0, Math.floor((expiresAt.getTime() - now.getTime()) / 1000));
  return `${REFRESH_COOKIE}=${token}; Max-Age=${maxAge}; Path=${REFRESH_COOKIE_PATH}; HttpOnly; Secure; SameSite=Strict`;
}

export function clearRefreshCookie(): string {
  return `${REFRESH_COOKIE}=; Max-Age=0; Path=${REFRESH_COOKIE_PATH}; HttpOnly; Secure; SameSite=Strict`;
}

interface LoginView {
  status: LoginResult['status'];
  accessToken: string | null;
  accessTokenExpiresAt: Date | null;
  mfaToken: string | null;
  mfaTokenExpiresAt: Date | null;
  userId: string | null;
  tenantId: string | null;
}

interface ViewerView {
  userId: string;
  tenantId: string;
  roles: string[];
  permissions: string[];
  sessionId: string | null;
  amr: string[];
}

const STATUS = { invited: 'INVITED', active: 'ACTIVE', deactivated: 'DEACTIVATED' } as const;

export function registerIdentitySchema(builder: Builder, rtOf: (ctx: RequestContext) => IdentityRuntime) {
  const Role = builder.enumType('Role', { values: ROLES, description: 'A role; the permission table (src/platform/access) maps roles to permissions.' });
  const UserStatus = builder.enumType('UserStatus', { values: ['INVITED', 'ACTIVE', 'DEACTIVATED'] as const });
  const LoginStatus = builder.enumType('LoginStatus', {
    values: {
      AUTHENTICATED: { description: 'signed in: accessToken is set and the refresh cookie was issued' },
      MFA_REQUIRED: { description: 'call verifyMfa with mfaToken and a TOTP or recovery code' },
      MFA_ENROLMENT_REQUIRED: { description: 'MFA is required but not set up: startTotpEnrolment / confirmTotpEnrolment with mfaToken' },
    },
  });

  const AuthSettingsRef = builder.objectRef<AuthSettings>('AuthSettings').implement({
    description: 'Per-tenant authentication policy.',
    fields: (t) => ({
      mfaRequired: t.exposeBoolean('mfaRequired', { description: 'every user must sign in with MFA (always so for roles that prescribe controlled substances or read audit reports)' }),
      idleTimeoutMinutes: t.exposeInt('idleTimeoutMinutes', { description: 'a session with no activity for this long ends' }),
      sessionLifetimeHours: t.exposeInt('sessionLifetimeHours', { description: 'absolute session lifetime' }),
    }),
  });

  const Tenant = builder.objectRef<TenantRow>('Tenant').implement({
    fields: (t) => ({
      id: t.expose('id', { type: 'UUID' }),
      slug: t.exposeString('slug'),
      name: t.exposeString('name'),
      status: t.exposeString('status'),
      authSettings: t.field({ type: AuthSettingsRef, resolve: (tenant) => authSettings(tenant.settings) }),
    }),
  });

  const User = builder.objectRef<UserView>('User').implement({
    fields: (t) => ({
      id: t.expose('id', { type: 'UUID' }),
      email: t.exposeString('email'),
      displayName: t.exposeString('displayName'),
      roles: t.field({ type: [Role], resolve: (u) => u.roles.filter((r): r is (typeof ROLES)[number] => (ROLES as readonly string[]).includes(r)) }),
      status: t.field({ type: UserStatus, resolve: (u) => STATUS[u.status] }),
      mfaEnabled: t.exposeBoolean('mfaEnabled'),
      createdAt: t.expose('createdAt', { type: 'DateTime' }),
      lastLoginAt: t.expose('lastLoginAt', { type: 'DateTime', nullable: true }),
    }),
  });

  const Session = builder.objectRef<SessionView>('Session').implement({
    description: 'A signed-in device (one refresh-token family).',
    fields: (t) => ({
      id: t.expose('id', { type: 'UUID' }),
      device: t.exposeString('device', { nullable: true, description: 'User-Agent of the device that signed in' }),
      ip: t.exposeString('ip', { nullable: true }),
      amr: t.exposeStringList('amr', { description: 'authentication methods (RFC 8176): pwd, otp, mfa' }),
      createdAt: t.expose('createdAt', { type: 'DateTime' }),
      lastSeenAt: t.expose('lastSeenAt', { type: 'DateTime' }),
      expiresAt: t.expose('expiresAt', { type: 'DateTime' }),
      current: t.exposeBoolean('current', { description: 'the session of this request' }),
    }),
  });

  const Viewer = builder.objectRef<ViewerView>('Viewer').implement({
    description: 'The signed-in user.',
    fields: (t) => ({
      user: t.field({ type: User, resolve: async (v, _a, ctx) => userView(await ctx.db(), v.tenantId, v.userId) }),
      tenant: t.field({ type: Tenant, resolve: async (v, _a, ctx) => loadTenant(await ctx.db(), v.tenantId) }),
      roles: t.field({ type: [Role], resolve: (v) => v.roles as (typeof ROLES)[number][] }),
      permissions: t.exposeStringList('permissions'),
      sessionId: t.expose('sessionId', { type: 'UUID', nullable: true }),
      amr: t.exposeStringList('amr'),
    }),
  });

  const LoginPayload = builder.objectRef<LoginView>('LoginPayload').implement({
    description:
      'Result of a sign-in step. When AUTHENTICATED, the response also sets the refresh cookie (httpOnly, path /auth); send accessToken as Authorization: Bearer.',
    fields: (t) => ({
      status: t.field({ type: LoginStatus, resolve: (l) => l.status }),
      accessToken: t.exposeString('accessToken', { nullable: true }),
      accessTokenExpiresAt: t.expose('accessTokenExpiresAt', { type: 'DateTime', nullable: true }),
      tokenType: t.string({ nullable: true, resolve: (l) => (l.accessToken ? 'Bearer' : null) }),
      mfaToken: t.exposeString('mfaToken', { nullable: true, description: 'short-lived token for the MFA step (5 minutes, 5 attempts)' }),
      mfaTokenExpiresAt: t.expose('mfaTokenExpiresAt', { type: 'DateTime', nullable: true }),
      user: t.field({
        type: User,
        nullable: true,
        resolve: async (l, _a, ctx) => (l.userId && l.tenantId ? userView(await ctx.db(), l.tenantId, l.userId) : null),
      }),
    }),
  });

  const InvitationPayload = builder.objectRef<Invitation>('InvitationPayload').implement({
    fields: (t) => ({
      user: t.field({ type: User, resolve: (i) => i.user }),
      invitationToken: t.exposeString('invitationToken', { description: 'single use; shown once; deliver it to the user (acceptInvitation)' }),
      invitationExpiresAt: t.expose('invitationExpiresAt', { type: 'DateTime' }),
    }),
  });

  const CreateTenantPayload = builder
    .objectRef<{ tenant: TenantRow; admin: UserView; invitationToken: string; invitationExpiresAt: Date }>('CreateTenantPayload')
    .implement({
      fields: (t) => ({
        tenant: t.field({ type: Tenant, resolve: (p) => p.tenant }),
        admin: t.field({ type: User, resolve: (p) => p.admin }),
        invitationToken: t.exposeString('invitationToken', { description: 'the first admin\u2019s invitation; single use; shown once' }),
        invitationExpiresAt: t.expose('invitationExpiresAt', { type: 'DateTime' }),
      }),
    });

  const TotpEnrolment = builder.objectRef<{ provisioningUri: string; secret: string }>('TotpEnrolment').implement({
    fields: (t) => ({
      provisioningUri: t.exposeString('provisioningUri', { description: 'otpauth:// URI to show as a QR code' }),
      secret: t.exposeString('secret', { description: 'the same secret in base32, for manual entry' }),
    }),
  });

  const TotpConfirmation = builder.objectRef<{ recoveryCodes: string[]; login: LoginView | null }>('TotpConfirmation').implement({
    fields: (t) => ({
      recoveryCodes: t.exposeStringList('recoveryCodes', { description: '10 single-use recovery codes; shown once' }),
      login: t.field({ type: LoginPayload, nullable: true, description: 'set when enrolling during sign-in (mfaToken given)', resolve: (c) => c.login }),
    }),
  });

  const SigningKeyRotation = builder.objectRef<{ kid: string }>('SigningKeyRotation').implement({
    fields: (t) => ({ kid: t.exposeString('kid', { description: 'key id of the new signing key' }) }),
  });

  // ------------------------------------------------------------ inputs
  const short = (max: number) => z.string().max(max);
  const LoginInput = builder.inputType('LoginInput', {
    fields: (t) => ({
      tenantSlug: t.string({ required: true, validate: short(64) }),
      email: t.string({ required: true, validate: short(320) }),
      password: t.string({ required: true, validate: short(1024) }),
    }),
  });
  const VerifyMfaInput = builder.inputType('VerifyMfaInput', {
    fields: (t) => ({
      mfaToken: t.string({ required: true, validate: short(200) }),
      code: t.string({ description: '6-digit TOTP code', validate: short(16) }),
      recoveryCode: t.string({ description: 'one of the recovery codes (instead of code)', validate: short(32) }),
    }),
  });
  const ConfirmTotpInput = builder.inputType('ConfirmTotpEnrolmentInput', {
    fields: (t) => ({
      code: t.string({ required: true, validate: short(16) }),
      mfaToken: t.string({ description: 'when enrolling during sign-in (MFA_ENROLMENT_REQUIRED)', validate: short(200) }),
    }),
  });
  const AcceptInvitationInput = builder.inputType('AcceptInvitationInput', {
    fields: (t) => ({
      token: t.string({ required: true, validate: short(200) }),
      password: t.string({ required: true, validate: short(1024) }),
    }),
  });
  const ChangePasswordInput = builder.inputType('ChangePasswordInput', {
    fields: (t) => ({
      currentPassword: t.string({ required: true, validate: short(1024) }),
      newPassword: t.string({ required: true, validate: short(1024) }),
    }),
  });
  const CreateTenantInput = builder.inputType('CreateTenantInput', {
    fields: (t) => ({
      name: t.string({ required: true, validate: short(200) }),
      slug: t.string({ required: true, validate: short(64) }),
      adminEmail: t.field({ type: 'Email', required: true }),
      adminName: t.string({ validate: short(200) }),
    }),
  });
  const InviteUserInput = builder.inputType('InviteUserInput', {
    fields: (t) => ({
      email: t.field({ type: 'Email', required: true }),
      displayName: t.string({ required: true, validate: short(200) }),
      roles: t.field({ type: [Role], required: true }),
    }),
  });
  const AuthSettingsInput = builder.inputType('AuthSettingsInput', {
    fields: (t) => ({
      mfaRequired: t.boolean(),
      idleTimeoutMinutes: t.int(),
      sessionLifetimeHours: t.int(),
    }),
  });

  // ------------------------------------------------------------ helpers
  function signedIn(ctx: RequestContext, s: IssuedSession): LoginView {
    ctx.responseHeaders.set('set-cookie', refreshCookie(s.refreshToken, s.refreshTokenExpiresAt, rtOf(ctx).now()));
    ctx.responseHeaders.set('cache-control', 'no-store');
    return { status: 'AUTHENTICATED', accessToken: s.accessToken, accessTokenExpiresAt: s.accessTokenExpiresAt, mfaToken: null, mfaTokenExpiresAt: null, userId: s.userId, tenantId: s.tenantId };
  }
  function loginView(ctx: RequestContext, r: LoginResult): LoginView {
    if (r.status === 'AUTHENTICATED') return signedIn(ctx, r.session);
    ctx.responseHeaders.set('cache-control', 'no-store');
    return { status: r.status, accessToken: null, accessTokenExpiresAt: null, mfaToken: r.mfaToken, mfaTokenExpiresAt: r.mfaTokenExpiresAt, userId: null, tenantId: null };
  }

  // ------------------------------------------------------------ queries
  builder.queryFields((t) => ({
    viewer: t.field({
      type: Viewer,
      nullable: true,
      authScopes: { public: true },
      description: 'The signed-in user, or null for an anonymous request.',
      resolve: (_r, _a, ctx) => {
        const p = ctx.principal;
        if (!p || p.kind !== 'user') return null;
        return { userId: p.id, tenantId: p.tenantId, roles: p.roles, permissions: [...p.permissions].sort(), sessionId: p.sessionId ?? null, amr: p.amr ?? [] };
      },
    }),
    mySessions: t.field({ type: [Session], authScopes: { user: true }, resolve: (_r, _a, ctx) => mySessions(rtOf(ctx), ctx) }),
    users: t.field({
      type: [User],
      authScopes: { permission: 'user:read' },
      args: {
        status: t.arg({ type: UserStatus }),
        first: t.arg.int({ defaultValue: 50, validate: z.number().int().min(1).max(200) }),
        offset: t.arg.int({ defaultValue: 0, validate: z.number().int().min(0).max(1_000_000) }),
      },
      resolve: (_r, a, ctx) => listUsers(ctx, { status: a.status ? a.status.toLowerCase() : null, first: a.first ?? 50, offset: a.offset ?? 0 }),
    }),
    user: t.field({ type: User, authScopes: { permission: 'user:read' }, args: { id: t.arg({ type: 'UUID', required: true }) }, resolve: (_r, a, ctx) => getUser(ctx, a.id) }),
    userSessions: t.field({
      type: [Session],
      authScopes: { permission: 'session:manage' },
      args: { userId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, a, ctx) => userSessions(rtOf(ctx), ctx, a.userId),
    }),
  }));

  // ------------------------------------------------------------ mutations
  builder.mutationFields((t) => ({
    login: t.field({
      type: LoginPayload,
      authScopes: { public: true },
      description: 'Password step of sign-in. Every failure is the same UNAUTHENTICATED "Invalid credentials"; repeated failures give RATE_LIMITED.',
      args: { input: t.arg({ type: LoginInput, required: true }) },
      resolve: async (_r, { input }, ctx) => {
        return loginView(ctx, await login(rtOf(ctx), ctx, input));
      },
    }),
    verifyMfa: t.field({
      type: LoginPayload,
      authScopes: { public: true },
      args: { input: t.arg({ type: VerifyMfaInput, required: true }) },
      resolve: async (_r, { input }, ctx) => signedIn(ctx, await verifyMfa(rtOf(ctx), ctx, input)),
    }),
    startTotpEnrolment: t.field({
      type: TotpEnrolment,
      authScopes: { public: true },
      description: 'Starts TOTP enrolment: with mfaToken during sign-in, or for the signed-in user.',
      args: { mfaToken: t.arg.string({ validate: short(200) }) },
      resolve: (_r, a, ctx) => {
        if (!a.mfaToken) requireUser(ctx);
        ctx.responseHeaders.set('cache-control', 'no-store');
        return startTotpEnrolment(rtOf(ctx), ctx, { mfaToken: a.mfaToken });
      },
    }),
    confirmTotpEnrolment: t.field({
      type: TotpConfirmation,
      authScopes: { public: true },
      args: { input: t.arg({ type: ConfirmTotpInput, required: true }) },
      resolve: async (_r, { input }, ctx) => {
        if (!input.mfaToken) requireUser(ctx);
        const r = await confirmTotpEnrolment(rtOf(ctx), ctx, input);
        ctx.responseHeaders.set('cache-control', 'no-store');
        return { recoveryCodes: r.recoveryCodes, login: r.session ? signedIn(ctx, r.session) : null };
      },
    }),
    regenerateRecoveryCodes: t.stringList({
      authScopes: { user: true },
      args: { code: t.arg.string({ required: true, validate: short(16) }) },
      resolve: (_r, a, ctx) => regenerateRecoveryCodes(rtOf(ctx), ctx, a.code),
    }),
    acceptInvitation: t.field({
      type: User,
      authScopes: { public: true },
      description: 'Sets the password of an invited user (single-use token). Then sign in with login.',
      args: { input: t.arg({ type: AcceptInvitationInput, required: true }) },
      resolve: (_r, { input }, ctx) => acceptInvitation(rtOf(ctx), ctx, input),
    }),
    logout: t.boolean({
      authScopes: { user: true },
      description: 'Ends the session of this access token and clears the refresh cookie.',
      resolve: async (_r, _a, ctx) => {
        ctx.responseHeaders.set('set-cookie', clearRefreshCookie());
        return logoutCurrent(rtOf(ctx), ctx);
      },
    }),
    changePassword: t.boolean({
      authScopes: { user: true },
      description: 'Changes my password; my other sessions end.',
      args: { input: t.arg({ type: ChangePasswordInput, required: true }) },
      resolve: (_r, { input }, ctx) => changePassword(rtOf(ctx), ctx, input),
    }),
    revokeSession: t.boolean({
      authScopes: { user: true },
      args: { id: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, a, ctx) => revokeMySession(rtOf(ctx), ctx, a.id),
    }),
    revokeMySessions: t.int({
      authScopes: { user: true },
      description: 'Ends all my sessions (except this one unless keepCurrent is false); returns how many ended.',
      args: { keepCurrent: t.arg.boolean({ defaultValue: true }) },
      resolve: (_r, a, ctx) => revokeMySessions(rtOf(ctx), ctx, a.keepCurrent ?? true),
    }),
    createTenant: t.field({
      type: CreateTenantPayload,
      authScopes: { permission: 'tenant:create' },
      args: { input: t.arg({ type: CreateTenantInput, required: true }) },
      resolve: (_r, { input }, ctx) => createTenant(rtOf(ctx), ctx, { ...input, adminName: input.adminName ?? undefined }),
    }),
    inviteUser: t.field({
      type: InvitationPayload,
      authScopes: { permission: 'user:invite' },
      args: { input: t.arg({ type: InviteUserInput, required: true }) },
      resolve: (_r, { input }, ctx) => inviteUser(rtOf(ctx), ctx, input),
    }),
    resendInvitation: t.field({
      type: InvitationPayload,
      authScopes: { permission: 'user:invite' },
      description: 'A new invitation token for a user who has not accepted yet; earlier tokens stop working.',
      args: { userId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, a, ctx) => resendInvitation(rtOf(ctx), ctx, a.userId),
    }),
    deactivateUser: t.field({
      type: User,
      authScopes: { permission: 'user:manage' },
      description: 'Deactivates a user: sessions end at once, sign-in is refused.',
      args: { userId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, a, ctx) => setUserStatus(rtOf(ctx), ctx, a.userId, false),
    }),
    reactivateUser: t.field({
      type: User,
      authScopes: { permission: 'user:manage' },
      args: { userId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, a, ctx) => setUserStatus(rtOf(ctx), ctx, a.userId, true),
    }),
    setUserRoles: t.field({
      type: User,
      authScopes: { permission: 'user:manage' },
      description: 'Replaces a user\u2019s roles; the user\u2019s sessions end so the change applies at once.',
      args: { userId: t.arg({ type: 'UUID', required: true }), roles: t.arg({ type: [Role], required: true }) },
      resolve: (_r, a, ctx) => setUserRoles(rtOf(ctx), ctx, a.userId, a.roles),
    }),
    resetUserMfa: t.field({
      type: User,
      authScopes: { permission: 'user:manage' },
      description: 'Removes a user\u2019s authenticator and recovery codes (lost device); they enrol again at next sign-in.',
      args: { userId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, a, ctx) => adminResetMfa(rtOf(ctx), ctx, a.userId),
    }),
    revokeUserSessions: t.int({
      authScopes: { permission: 'session:manage' },
      args: { userId: t.arg({ type: 'UUID', required: true }) },
      resolve: (_r, a, ctx) => revokeUserSessions(rtOf(ctx), ctx, a.userId),
    }),
    updateAuthSettings: t.field({
      type: AuthSettingsRef,
      authScopes: { permission: 'tenant:manage' },
      args: { input: t.arg({ type: AuthSettingsInput, required: true }) },
      resolve: (_r, { input }, ctx) =>
        updateAuthSettings(rtOf(ctx), ctx, {
          mfaRequired: input.mfaRequired ?? undefined,
          idleTimeoutMinutes: input.idleTimeoutMinutes ?? undefined,
          sessionLifetimeHours: input.sessionLifetimeHours ?? undefined,
        }),
    }),
    rotateSigningKeys: t.field({
      type: SigningKeyRotation,
      authScopes: { permission: 'signingkey:rotate' },
      description: 'New JWT signing key now. Old keys verify their tokens until expiry, unless revokePrevious (compromise): then those tokens stop working.',
      args: { revokePrevious: t.arg.boolean({ defaultValue: false }) },
      resolve: async (_r, a, ctx) => {
        const me = requireUser(ctx);
        const kid = await rtOf(ctx).keys.rotate('on_demand', { revokePrevious: a.revokePrevious ?? false, actorId: me.userId });
        return { kid: kid! };
      },
    }),
  }));
}
