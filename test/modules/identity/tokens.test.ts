import { createPrivateKey, generateKeyPairSync, randomUUID } from 'node:crypto';
import { SignJWT, decodeProtectedHeader } from 'jose';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createIdentityModule, invitePlatformAdmin, PLATFORM_TENANT_ID } from '../../../src/modules/identity/index.js';
import { signingKeys } from '../../../src/modules/identity/tables.js';
import { createFieldCrypto, createKeyProvider } from '../../../src/platform/crypto/index.js';
import { createLogger } from '../../../src/platform/logger.js';
import { startTestApp, type TestApp, UNLIMITED } from '../../helpers/app.js';
import { acceptInvitation, adminSession, createTenantWithAdmin, createUser, loginAs, strongPassword, type AuthSession, type TestTenant, type TestUser } from '../../helpers/auth.js';
import { bearer, codeOf, expectAccepted, expectRefused } from './helpers.js';


/**
 * Access-token attacks over HTTP: each is refused with 401 UNAUTHENTICATED,
 * never served as anonymous, and changes nothing.
 */
let t: TestApp;
let clock = Date.now();
const now = () => clock;
let clinic: TestTenant;
let nurse: AuthSession;
let nurseUser: TestUser;

beforeAll(async () => {
  t = await startTestApp({ env: UNLIMITED, modules: [createIdentityModule({ now: () => new Date(clock), keyRotationMs: 60 * 60_000 })] });
  clinic = await createTenantWithAdmin(t);
  nurseUser = await createUser(t, clinic, 'NURSE');
  nurse = await loginAs(t, nurseUser, { now });
});
afterAll(async () => {
  await t?.close();
});

const b64 = (o: unknown) => Buffer.from(JSON.stringify(o)).toString('base64url');
const payloadOf = (token: string) => JSON.parse(Buffer.from(token.split('.')[1]!, 'base64url').toString()) as Record<string, unknown>;

/** The server's current signing key, decrypted the way the server does (proves it is encrypted at rest). */
async function serverKey() {
  const [row] = await t.db.owner<{ kid: string; private_key: Buffer }[]>`
    select kid, private_key from auth_signing_keys where revoked_at is null order by created_at desc limit 1`;
  expect(row!.private_key.toString('latin1')).not.toContain('PRIVATE KEY');
  const crypto = createFieldCrypto({ provider: createKeyProvider(t.app.config, createLogger('silent')) });
  const { privateKey } = await crypto.decryptFields(signingKeys, PLATFORM_TENANT_ID, { privateKey: row!.private_key as never });
  crypto.close();
  return { kid: row!.kid, key: createPrivateKey(privateKey) };
}

async function forge(claims: Record<string, unknown>, opts: { kid?: string; key?: Parameters<SignJWT['sign']>[0]; alg?: string; typ?: string } = {}) {
  const k = opts.key ? { kid: opts.kid ?? 'x', key: opts.key } : await serverKey();
  const base = payloadOf(nurse.token);
  return new SignJWT({ ...base, ...claims })
    .setProtectedHeader({ alg: opts.alg ?? 'EdDSA', kid: opts.kid ?? k.kid, typ: opts.typ ?? 'at+jwt' })
    .sign(k.key);
}

async function usersCount() {
  const [r] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from users where tenant_id = ${clinic.id}`;
  return r!.n;
}

describe('access tokens', () => {
  it('a genuine token works, and a forged one signed with the real key also verifies (sanity check of the forging helper)', async () => {
    await expectAccepted(t, nurse.token);
    await expectAccepted(t, await forge({ jti: randomUUID() }));
  });

  it('alg none', async () => {
    const header = decodeProtectedHeader(nurse.token);
    const none = `${b64({ ...header, alg: 'none' })}.${b64(payloadOf(nurse.token))}.`;
    await expectRefused(t, none);
    await expectRefused(t, `${none}AAAA`);
  });

  it('HS256 signed with the public key', async () => {
    const jwks = (await (await fetch(`${t.url}/.well-known/jwks.json`)).json()) as { keys: { kid: string; x: string }[] };
    const pub = jwks.keys[0]!;
    for (const secret of [Buffer.from(pub.x, 'base64url'), Buffer.from(JSON.stringify(pub)), Buffer.from(pub.x)]) {
      const token = await new SignJWT(payloadOf(nurse.token)).setProtectedHeader({ alg: 'HS256', kid: pub.kid, typ: 'at+jwt' }).sign(secret);
      await expectRefused(t, token);
    }
  });

  it('wrong audience, wrong issuer, wrong type', async () => {
    await expectRefused(t, await forge({ aud: 'another-api' }));
    await expectRefused(t, await forge({ iss: 'https://evil.example' }));
    await expectRefused(t, await forge({}, { typ: 'JWT' }));
  });

  it('expired, future nbf, future iat (beyond the 30 s clock tolerance)', async () => {
    const s = Math.floor(clock / 1000);
    const expired = await forge({ iat: s - 600, nbf: s - 600, exp: s - 60 });
    const res = await expectRefused(t, expired);
    expect(res.body.errors![0]!.extensions!.reason).toBe('token_expired');
    await expectRefused(t, await forge({ nbf: s + 300 }));
    await expectRefused(t, await forge({ iat: s + 300, nbf: s }));
    // within tolerance is fine
    await expectAccepted(t, await forge({ nbf: s + 10 }));
  });

  it('a token older than 15 minutes is refused even with a far exp', async () => {
    const s = Math.floor(clock / 1000);
    await expectRefused(t, await forge({ iat: s - 20 * 60, nbf: s - 20 * 60, exp: s + 3600 }));
  });

  it('unknown kid and a key that is not the server key', async () => {
    const { privateKey } = generateKeyPairSync('ed25519');
    await expectRefused(t, await forge({}, { key: privateKey, kid: 'unknown-kid' }));
    const real = await serverKey();
    await expectRefused(t, await forge({}, { key: privateKey, kid: real.kid }));
  });

  it('tampered payload (roles, tenant, sub) with the original signature', async () => {
    const [h, , sig] = nurse.token.split('.');
    const p = payloadOf(nurse.token);
    for (const change of [{ roles: ['ADMIN'] }, { tenant: PLATFORM_TENANT_ID }, { sub: randomUUID() }]) {
      await expectRefused(t, `${h}.${b64({ ...p, ...change })}.${sig}`);
    }
  });

  it('claims that do not match a live session are refused even when signed', async () => {
    await expectRefused(t, await forge({ sid: randomUUID() }));
    await expectRefused(t, await forge({ sub: clinic.admin.id }));
  });

  it('malformed credentials are refused, never anonymous', async () => {
    for (const h of ['Bearer', 'Bearer ', 'Bearer not-a-jwt', 'Bearer a.b.c', `Bearer ${'eyJ'.padEnd(5000, 'a')}.b.c`]) {
      const res = await t.gql('{ viewer { user { id } } }', {}, { authorization: h });
      expect(res.status, h).toBe(401);
      expect(codeOf(res)).toBe('UNAUTHENTICATED');
    }
    // anonymous is fine without a credential
    const anon = await t.gql<{ viewer: null }>('{ viewer { user { id } } }');
    expect(anon.body.data?.viewer).toBeNull();
  });

  it('a refused token changes nothing (a mutation with a tampered admin token)', async () => {
    const admin = await adminSession(t, clinic);
    const [h, , sig] = admin.token.split('.');
    const tampered = `${h}.${b64({ ...payloadOf(admin.token), jti: randomUUID() })}.${sig}`;
    const before = await usersCount();
    const res = await t.gql(
      'mutation I($input: InviteUserInput!) { inviteUser(input: $input) { invitationToken } }',
      { input: { email: 'x@example.test', displayName: 'X', roles: ['NURSE'] } },
      bearer(tampered),
    );
    expect(res.status).toBe(401);
    expect(JSON.stringify(res.body)).not.toContain('invitationToken":"cbi');
    expect(await usersCount()).toBe(before);
  });

  it('the token of a deactivated user is refused at once; sign-in is refused; reactivation restores sign-in', async () => {
    const u = await createUser(t, clinic, 'FRONT_DESK');
    const s = await loginAs(t, u, { now });
    const admin = await adminSession(t, clinic);
    const d = await t.gql<{ deactivateUser: { status: string } }>('mutation D($u: UUID!) { deactivateUser(userId: $u) { status } }', { u: u.id }, admin.headers);
    expect(d.body.data!.deactivateUser.status).toBe('DEACTIVATED');
    await expectRefused(t, s.token);
    const login = await t.gql('mutation L($input: LoginInput!) { login(input: $input) { status } }', {
      input: { tenantSlug: clinic.slug, email: u.email, password: u.password },
    });
    expect(codeOf(login)).toBe('UNAUTHENTICATED');
    expect(login.body.errors![0]!.message).toBe('Invalid credentials');
    const r = await t.gql<{ reactivateUser: { status: string } }>('mutation R($u: UUID!) { reactivateUser(userId: $u) { status } }', { u: u.id }, admin.headers);
    expect(r.body.data!.reactivateUser.status).toBe('ACTIVE');
    await expectRefused(t, s.token); // the old session stays ended
    await expectAccepted(t, (await loginAs(t, u, { now })).token);
  });

  it('role changes end the user\u2019s sessions so new roles apply at once', async () => {
    const u = await createUser(t, clinic, 'FRONT_DESK');
    const s = await loginAs(t, u, { now });
    const admin = await adminSession(t, clinic);
    const r = await t.gql<{ setUserRoles: { roles: string[] } }>('mutation R($u: UUID!, $r: [Role!]!) { setUserRoles(userId: $u, roles: $r) { roles } }', { u: u.id, r: ['BILLING'] }, admin.headers);
    expect(r.body.data!.setUserRoles.roles).toEqual(['BILLING']);
    await expectRefused(t, s.token);
    const fresh = await loginAs(t, u, { now });
    const v = await t.gql<{ viewer: { roles: string[] } }>('{ viewer { roles } }', {}, fresh.headers);
    expect(v.body.data!.viewer.roles).toEqual(['BILLING']);
    // PLATFORM_ADMIN cannot be given outside the platform tenant
    const pa = await t.gql('mutation R($u: UUID!, $r: [Role!]!) { setUserRoles(userId: $u, roles: $r) { roles } }', { u: u.id, r: ['PLATFORM_ADMIN'] }, admin.headers);
    expect(codeOf(pa)).toBe('BAD_USER_INPUT');
  });
});

describe('signing keys', () => {
  let platform: AuthSession;
  beforeAll(async () => {
    const p = await invitePlatformAdmin(t.db.sql, { email: 'keys@carebase.test' });
    const user: TestUser = { id: p.adminUserId, tenantId: PLATFORM_TENANT_ID, tenantSlug: 'platform', email: 'keys@carebase.test', password: strongPassword(), roles: ['PLATFORM_ADMIN'], recoveryCodes: [] };
    await acceptInvitation(t, p.invitationToken, user.password);
    platform = await loginAs(t, user, { now });
  });

  const jwks = async () => {
    const res = await fetch(`${t.url}/.well-known/jwks.json`);
    expect(res.status).toBe(200);
    return (await res.json()) as { keys: Record<string, string>[] };
  };

  it('JWKS serves Ed25519 public keys only', async () => {
    const { keys } = await jwks();
    expect(keys.length).toBeGreaterThanOrEqual(1);
    for (const k of keys) {
      expect(k).toMatchObject({ kty: 'OKP', crv: 'Ed25519', alg: 'EdDSA', use: 'sig' });
      expect(k.d).toBeUndefined();
    }
    expect(keys.map((k) => k.kid)).toContain(decodeProtectedHeader(nurse.token).kid);
  });

  it('on-demand rotation: new tokens use the new key, old tokens keep working, both keys are published', async () => {
    const oldKid = decodeProtectedHeader(nurse.token).kid;
    const res = await t.gql<{ rotateSigningKeys: { kid: string } }>('mutation { rotateSigningKeys { kid } }', {}, platform.headers);
    expect(res.body.errors).toBeUndefined();
    const newKid = res.body.data!.rotateSigningKeys.kid;
    expect(newKid).not.toBe(oldKid);
    expect((await jwks()).keys.map((k) => k.kid)).toEqual(expect.arrayContaining([oldKid, newKid]));
    await expectAccepted(t, nurse.token);
    const fresh = await loginAs(t, nurseUser, { now });
    expect(decodeProtectedHeader(fresh.token).kid).toBe(newKid);
    // a tenant admin may not rotate
    const admin = await adminSession(t, clinic);
    expect(codeOf(await t.gql('mutation { rotateSigningKeys { kid } }', {}, admin.headers))).toBe('FORBIDDEN');
  });

  it('rotation with revokePrevious withdraws the old keys: their tokens stop verifying', async () => {
    const s = await loginAs(t, nurseUser, { now });
    const oldKid = decodeProtectedHeader(s.token).kid;
    const res = await t.gql<{ rotateSigningKeys: { kid: string } }>('mutation { rotateSigningKeys(revokePrevious: true) { kid } }', {}, platform.headers);
    expect(res.body.errors).toBeUndefined();
    expect((await jwks()).keys.map((k) => k.kid)).toEqual([res.body.data!.rotateSigningKeys.kid]);
    expect(oldKid).not.toBe(res.body.data!.rotateSigningKeys.kid);
    await expectRefused(t, s.token);
    platform = await loginAs(t, platform.user, { now });
  });

  it('scheduled rotation: after the rotation period a new key signs; the old one is published until its tokens expire', async () => {
    const s = await loginAs(t, nurseUser, { now });
    const oldKid = decodeProtectedHeader(s.token).kid;
    clock += 61 * 60_000;
    const later = await loginAs(t, nurseUser, { now });
    const newKid = decodeProtectedHeader(later.token).kid;
    expect(newKid).not.toBe(oldKid);
    expect((await jwks()).keys.map((k) => k.kid)).toEqual(expect.arrayContaining([oldKid, newKid]));
    clock += 16 * 60_000;
    await t.app.server.inject({ method: 'GET', url: '/healthz' });
    const s3 = await loginAs(t, nurseUser, { now });
    expect(decodeProtectedHeader(s3.token).kid).toBe(newKid);
    expect((await jwks()).keys.map((k) => k.kid)).not.toContain(oldKid);
    const [row] = await t.db.owner<{ n: number }[]>`select count(*)::int as n from security_events where tenant_id = ${PLATFORM_TENANT_ID} and type = 'signing_key.rotated'`;
    expect(row!.n).toBeGreaterThanOrEqual(3);
  });
});
