import { generateKeyPairSync, createPrivateKey, createPublicKey, randomUUID, type KeyObject } from 'node:crypto';
import { and, desc, gt, isNull, sql } from 'drizzle-orm';
import { calculateJwkThumbprint, exportJWK, SignJWT, type JWK, type JWTPayload } from 'jose';
import type postgres from 'postgres';
import type { FieldCrypto } from '../../platform/crypto/index.js';
import { withTenant } from '../../platform/db/index.js';
import type { Logger } from '../../platform/logger.js';
import { CLOCK_TOLERANCE_SECONDS, JWT_ALG, JWT_TYP, MAX_ACCESS_TTL_SECONDS, PLATFORM_TENANT_ID } from './constants.js';
import { recordEvent } from './events.js';
import { signingKeys } from './tables.js';

/** Arbitrary constant: the advisory lock rotations take, so two instances do not both rotate. */
const ROTATION_LOCK_ID = 4_210_771_003;
/** After an unknown kid, reload from the database at most this often (a flood of random kids costs nothing). */
const MISS_RELOAD_MS = 5_000;

interface PublishedKey {
  kid: string;
  key: KeyObject;
  jwk: JWK;
  retiresAt: Date;
  expiresAt: Date;
}

export interface SigningKeysOptions {
  pool: postgres.Sql;
  crypto: FieldCrypto;
  log: Logger;
  now: () => Date;
  /** a key signs for this long, then the next one takes over */
  rotationMs: number;
}

/**
 * Ed25519 JWT signing keys, stored in auth_signing_keys (platform tenant)
 * with the private key encrypted by the field-encryption platform (local key
 * ring in development, KMS when configured). Public keys are cached in
 * memory; a key is published (JWKS) and accepted until its last token has
 * expired: retiresAt + the longest access-token lifetime + clock tolerance.
 */
export class SigningKeys {
  private published = new Map<string, PublishedKey>();
  private privateKeys = new Map<string, KeyObject>();
  private signing?: { kid: string; key: KeyObject; retiresAt: Date };
  private lastMissReload = 0;
  private reloading?: Promise<void>;
  /** called after the set of accepted keys shrank (a key was revoked) */
  onRevoked: () => void = () => undefined;

  constructor(private readonly o: SigningKeysOptions) {}

  /** Loads the keys and makes sure one can sign. */
  async init(): Promise<void> {
    await this.reload();
    await this.ensureCurrent();
  }

  /** Scheduled rotation: a new key when the current one has retired (or none exists). */
  async ensureCurrent(): Promise<void> {
    if (this.signing && this.signing.retiresAt > this.o.now()) return;
    await this.rotate('scheduled');
  }

  reload(): Promise<void> {
    this.reloading ??= this.load().finally(() => {
      this.reloading = undefined;
    });
    return this.reloading;
  }

  private async load(): Promise<void> {
    const now = this.o.now();
    const rows = await withTenant(this.o.pool, PLATFORM_TENANT_ID, (db) =>
      db
        .select()
        .from(signingKeys)
        .where(and(gt(signingKeys.expiresAt, now), isNull(signingKeys.revokedAt)))
        .orderBy(desc(signingKeys.createdAt)),
    );
    const next = new Map<string, PublishedKey>();
    for (const r of rows) {
      if (r.alg !== JWT_ALG) continue;
      const jwk = r.publicJwk as JWK;
      next.set(r.kid, { kid: r.kid, key: createPublicKey({ key: jwk as never, format: 'jwk' }), jwk, retiresAt: r.retiresAt, expiresAt: r.expiresAt });
    }
    const revoked = [...this.published.keys()].some((kid) => !next.has(kid));
    this.published = next;
    for (const kid of this.privateKeys.keys()) if (!next.has(kid)) this.privateKeys.delete(kid);
    const current = rows.find((r) => r.retiresAt > now && next.has(r.kid));
    if (current) {
      let key = this.privateKeys.get(current.kid);
      if (!key) {
        const { privateKey } = await this.o.crypto.decryptFields(signingKeys, PLATFORM_TENANT_ID, { privateKey: current.privateKey });
        key = createPrivateKey({ key: privateKey, format: 'pem' });
        this.privateKeys.set(current.kid, key);
      }
      this.signing = { kid: current.kid, key, retiresAt: current.retiresAt };
    } else {
      this.signing = undefined;
    }
    if (revoked) this.onRevoked();
  }

  /**
   * Creates a key and makes it the signing key. Previous keys stop signing
   * now and stay published until their tokens expire, or, with
   * revokePrevious, are withdrawn at once (their tokens stop verifying).
   * A scheduled rotation that finds a key another instance just created does nothing.
   */
  async rotate(reason: 'scheduled' | 'on_demand', opts: { revokePrevious?: boolean; actorId?: string } = {}): Promise<string | null> {
    const kid = await withTenant(this.o.pool, PLATFORM_TENANT_ID, async (db) => {
      await db.execute(sql`select pg_advisory_xact_lock(${ROTATION_LOCK_ID})`);
      const now = this.o.now();
      if (reason === 'scheduled') {
        const [live] = await db
          .select({ kid: signingKeys.kid })
          .from(signingKeys)
          .where(and(gt(signingKeys.retiresAt, now), isNull(signingKeys.revokedAt)))
          .limit(1);
        if (live) return null;
      }
      const { publicKey, privateKey } = generateKeyPairSync('ed25519');
      const jwk = await exportJWK(publicKey);
      const kid = await calculateJwkThumbprint(jwk);
      const pem = privateKey.export({ format: 'pem', type: 'pkcs8' }).toString();
      const sealed = await this.o.crypto.encryptFields(signingKeys, PLATFORM_TENANT_ID, { privateKey: pem });
      const lastTokenMs = (MAX_ACCESS_TTL_SECONDS + CLOCK_TOLERANCE_SECONDS) * 1000;
      const previous = opts.revokePrevious
        ? { retiresAt: now, expiresAt: now, revokedAt: now }
        : { retiresAt: now, expiresAt: new Date(now.getTime() + lastTokenMs) };
      const replaced = await db
        .update(signingKeys)
        .set(previous)
        .where(and(gt(signingKeys.retiresAt, now), isNull(signingKeys.revokedAt), gt(signingKeys.expiresAt, now)))
        .returning({ kid: signingKeys.kid });
      if (opts.revokePrevious) {
        await db
          .update(signingKeys)
          .set({ revokedAt: now, expiresAt: now })
          .where(and(gt(signingKeys.expiresAt, now), isNull(signingKeys.revokedAt)));
      }
      const retiresAt = new Date(now.getTime() + this.o.rotationMs);
      await db.insert(signingKeys).values({
        kid,
        tenantId: PLATFORM_TENANT_ID,
        alg: JWT_ALG,
        publicJwk: { ...jwk },
        privateKey: sealed.privateKey,
        createdAt: now,
        retiresAt,
        expiresAt: new Date(retiresAt.getTime() + lastTokenMs),
      });
      await recordEvent(db, PLATFORM_TENANT_ID, {
        type: 'signing_key.rotated',
        actorId: opts.actorId ?? null,
        details: { kid, reason, previous: replaced.map((r) => r.kid), previousRevoked: !!opts.revokePrevious },
      });
      return kid;
    });
    if (kid) this.o.log.info({ kid, reason }, 'JWT signing key rotated');
    await this.reload();
    return kid;
  }

  /** Signs an access token with the current key (rotating first if it has retired). */
  async sign(claims: JWTPayload & { sub: string }, ttlSeconds: number): Promise<{ token: string; expiresAt: Date }> {
    await this.ensureCurrent();
    const signing = this.signing;
    if (!signing) throw new Error('no JWT signing key available');
    const now = Math.floor(this.o.now().getTime() / 1000);
    const exp = now + Math.min(ttlSeconds, MAX_ACCESS_TTL_SECONDS);
    const token = await new SignJWT(claims)
      .setProtectedHeader({ alg: JWT_ALG, kid: signing.kid, typ: JWT_TYP })
      .setIssuedAt(now)
      .setNotBefore(now)
      .setExpirationTime(exp)
      .setJti(randomUUID())
      .sign(signing.key);
    return { token, expiresAt: new Date(exp * 1000) };
  }

  /** The public key for a kid, reloading (rate-limited) when it is unknown: another instance may have rotated. */
  async publicKey(kid: string): Promise<KeyObject | undefined> {
    const now = this.o.now();
    const hit = this.published.get(kid);
    if (hit) return hit.expiresAt > now ? hit.key : undefined;
    const wall = Date.now();
    if (wall - this.lastMissReload < MISS_RELOAD_MS) return undefined;
    this.lastMissReload = wall;
    await this.reload();
    const k = this.published.get(kid);
    return k && k.expiresAt > now ? k.key : undefined;
  }

  /** JWKS document: every key whose tokens may still be valid. */
  jwks(): { keys: JWK[] } {
    const now = this.o.now();
    return {
      keys: [...this.published.values()]
        .filter((k) => k.expiresAt > now)
        .map((k) => ({ kty: k.jwk.kty, crv: k.jwk.crv, x: k.jwk.x, kid: k.kid, alg: JWT_ALG, use: 'sig' })),
    };
  }

  get currentKid(): string | undefined {
    return this.signing?.kid;
  }
}
