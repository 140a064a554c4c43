import { execFile } from 'node:child_process';
import { createPublicKey, generateKeyPairSync, randomUUID, verify } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config.js';
import auditModule from '../../../src/modules/audit/index.js';
import identityModule from '../../../src/modules/identity/index.js';
import {
  chainHash,
  checkpointKeys,
  exportCheckpointPublicKey,
  rowToEvent,
  signCheckpoints,
  verifyAllTenants,
  type CheckpointKeys,
} from '../../../src/platform/audit/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { appendEvents as appendTo, asDba, asHeader, createTenant, QUIET_ENV, testAuthModule } from './fixtures.js';

let t: TestApp;
let keys: CheckpointKeys;

const appendEvents = (tenantId: string, n: number) => appendTo(t.db.sql, tenantId, n);

async function tenantWithEvents(n: number): Promise<string> {
  const tenantId = await createTenant(t.db.owner);
  await appendEvents(tenantId, n);
  return tenantId;
}

/**
 * The attack the chain alone cannot show: change an event and recompute the
 * hash of every event after it and the head, so that the chain is
 * consistent again.
 */
async function rewriteHistory(tenantId: string, seq: number) {
  await asDba(t.db.owner, tenantId, async (tx) => {
    await tx`update audit_events set actor_id = 'someone-else' where tenant_id = ${tenantId} and seq = ${seq}`;
    const rows = await tx<Parameters<typeof rowToEvent>[0][]>`select * from audit_events where tenant_id = ${tenantId} order by seq`;
    let prev = rows.find((r) => Number(r.seq) === seq - 1)!.hash;
    for (const r of rows.filter((r) => Number(r.seq) >= seq)) {
      const hash = chainHash(prev, rowToEvent(r), Number(r.seq));
      await tx`update audit_events set prev_hash = ${prev}, hash = ${hash} where tenant_id = ${tenantId} and seq = ${r.seq}`;
      prev = hash;
    }
    await tx`update audit_chain_heads set hash = ${prev} where tenant_id = ${tenantId}`;
  });
}

async function verifyOverGraphql(tenantId: string) {
  const res = await t.gql<{
    verifyAuditIntegrity: { ok: boolean; checked: number; checkpoints: number; lastCheckpoint: { seq: number; signedAt: string } | null; brokenAt: { seq: number; reason: string } | null };
  }>(
    '{ verifyAuditIntegrity { ok checked checkpoints lastCheckpoint { seq signedAt } brokenAt { seq reason } } }',
    undefined,
    asHeader({ id: randomUUID(), tenantId, roles: ['COMPLIANCE'], permissions: ['audit:read'], amr: ['pwd', 'otp'] }),
  );
  expect(res.body.errors).toBeUndefined();
  return res.body.data!.verifyAuditIntegrity;
}

const checkpointsOf = (tenantId: string) =>
  t.db.owner<{ seq: string; key_id: string }[]>`select seq, key_id from audit_checkpoints where tenant_id = ${tenantId} order by seq`;

beforeAll(async () => {
  t = await startTestApp({ env: QUIET_ENV, modules: [identityModule, testAuthModule, auditModule] });
  keys = checkpointKeys(t.app.config);
});
afterAll(async () => {
  await t?.close();
});

describe('signed audit checkpoints', () => {
  it("signs each tenant's chain head once, logs the signature, and verification checks it", async () => {
    const a = await tenantWithEvents(3);
    const b = await tenantWithEvents(2);
    await signCheckpoints(t.db.sql, keys, t.app.log);
    expect((await checkpointsOf(a)).map((c) => Number(c.seq))).toEqual([3]);
    expect((await checkpointsOf(b)).map((c) => Number(c.seq))).toEqual([2]);
    expect((await checkpointsOf(a))[0]!.key_id).toBe(keys.keyId);
    // nothing new appended: no second checkpoint
    await signCheckpoints(t.db.sql, keys, t.app.log);
    expect(await checkpointsOf(a)).toHaveLength(1);
    // the copy outside the database
    const logged = t.logs.filter((l) => (l.auditCheckpoint as { tenantId?: string } | undefined)?.tenantId === a);
    expect(logged).toHaveLength(1);
    expect(logged[0]!.auditCheckpoint).toMatchObject({ seq: 3, keyId: keys.keyId, signature: expect.stringMatching(/^[A-Za-z0-9+/]+=*$/) });

    const report = await verifyOverGraphql(a);
    expect(report).toMatchObject({ ok: true, checked: 3, checkpoints: 1, lastCheckpoint: { seq: 3 }, brokenAt: null });
    // more events (the verification above was itself audited), a new checkpoint at the new head
    await appendEvents(a, 2);
    await signCheckpoints(t.db.sql, keys, t.app.log);
    expect((await checkpointsOf(a)).map((c) => Number(c.seq))).toEqual([3, 6]);
    expect(await verifyOverGraphql(a)).toMatchObject({ ok: true, checkpoints: 2, lastCheckpoint: { seq: 6 } });
  });

  it('an auditor checks a logged checkpoint with the key from npm run audit:public-key and the documented message', async () => {
    const tenantId = await tenantWithEvents(2);
    await signCheckpoints(t.db.sql, keys, t.app.log);
    const line = t.logs.find((l) => (l.auditCheckpoint as { tenantId?: string } | undefined)?.tenantId === tenantId)!.auditCheckpoint as Record<string, string | number>;
    const env = { ...process.env, DATA_DIR: t.app.config.dataDir, LOG_LEVEL: 'error', NODE_ENV: 'test' };
    const { stdout } = await promisify(execFile)('node', ['--import', 'tsx', 'src/cli/audit-public-key.ts'], { env });
    const printed = JSON.parse(stdout) as { keyId: string; algorithm: string; publicKey: string };
    expect(printed).toMatchObject({ keyId: keys.keyId, algorithm: 'Ed25519' });
    // docs/compliance.md: the signed message, one field per line
    const message = ['carebase-audit-checkpoint/v1', line.tenantId, line.seq, line.at, line.hash, line.signedAt, line.keyId].join('\n');
    const publicKey = createPublicKey({ key: Buffer.from(printed.publicKey, 'base64'), format: 'der', type: 'spki' });
    expect(verify(null, Buffer.from(message), publicKey, Buffer.from(String(line.signature), 'base64'))).toBe(true);
    expect(verify(null, Buffer.from(message.replace(/\n2\n/, '\n3\n')), publicKey, Buffer.from(String(line.signature), 'base64'))).toBe(false);
  });

  it('detects history rewritten with every later hash recomputed (CHECKPOINT_MISMATCH), which the chain alone cannot', async () => {
    const signed = await tenantWithEvents(5);
    await signCheckpoints(t.db.sql, keys);
    await rewriteHistory(signed, 2);
    expect(await verifyOverGraphql(signed)).toMatchObject({ ok: false, brokenAt: { seq: 5, reason: 'CHECKPOINT_MISMATCH' } });

    // the same rewrite on a chain without a checkpoint passes: that is what the checkpoints add
    const unsigned = await createTenant(t.db.owner);
    await appendEvents(unsigned, 5);
    await rewriteHistory(unsigned, 2);
    expect(await verifyOverGraphql(unsigned)).toMatchObject({ ok: true, checkpoints: 0, brokenAt: null });
  });

  it('refuses a checkpoint changed to match a rewrite, or signed with a key it does not trust (CHECKPOINT_INVALID)', async () => {
    const changed = await tenantWithEvents(4);
    await signCheckpoints(t.db.sql, keys);
    await rewriteHistory(changed, 3);
    await asDba(t.db.owner, changed, async (tx) => {
      const [row] = await tx<{ hash: Buffer }[]>`select hash from audit_events where tenant_id = ${changed} and seq = 4`;
      await tx`update audit_checkpoints set hash = ${row!.hash} where tenant_id = ${changed} and seq = 4`;
    });
    expect(await verifyOverGraphql(changed)).toMatchObject({ ok: false, brokenAt: { seq: 4, reason: 'CHECKPOINT_INVALID' } });

    // a forger who signs the rewritten head with a key of their own
    const forged = await tenantWithEvents(4);
    await rewriteHistory(forged, 2);
    const forger = checkpointKeys({ dataDir: t.app.config.dataDir, auditCheckpoints: { signingKey: newSigningKey(), trustedKeys: [], intervalS: 900 } });
    await signCheckpoints(t.db.sql, forger);
    expect(await checkpointsOf(forged)).toHaveLength(1);
    expect(await verifyOverGraphql(forged)).toMatchObject({ ok: false, brokenAt: { seq: 4, reason: 'CHECKPOINT_INVALID' } });
  });

  it('after a key rotation, checkpoints of the retired key verify while it is listed in AUDIT_TRUSTED_KEYS', async () => {
    const tenantId = await tenantWithEvents(2);
    const old = checkpointKeys({ dataDir: t.app.config.dataDir, auditCheckpoints: { signingKey: newSigningKey(), trustedKeys: [], intervalS: 900 } });
    await signCheckpoints(t.db.sql, old);
    await appendEvents(tenantId, 1);
    const rotated = checkpointKeys({
      dataDir: t.app.config.dataDir,
      auditCheckpoints: { signingKey: newSigningKey(), trustedKeys: [exportCheckpointPublicKey(old)], intervalS: 900 },
    });
    await signCheckpoints(t.db.sql, rotated);
    expect((await checkpointsOf(tenantId)).map((c) => [Number(c.seq), c.key_id])).toEqual([
      [2, old.keyId],
      [3, rotated.keyId],
    ]);
    const verifyWith = async (trusted: CheckpointKeys['trusted']) => (await verifyAllTenants(t.db.owner, trusted)).find((r) => r.tenantId === tenantId)!;
    expect(await verifyWith(rotated.trusted)).toMatchObject({ ok: true, checkpoints: 2, lastCheckpoint: { seq: 3 } });
    const withoutOld = new Map([...rotated.trusted].filter(([id]) => id !== old.keyId));
    expect(await verifyWith(withoutOld)).toMatchObject({ ok: false, brokenAt: { seq: 2, reason: 'CHECKPOINT_INVALID' } });
  });

  it('checkpoints are append-only: the app role cannot change or delete them, the triggers refuse even the owner', async () => {
    const tenantId = await tenantWithEvents(1);
    await signCheckpoints(t.db.sql, keys);
    const asApp = (q: (tx: typeof t.db.sql) => Promise<unknown>) =>
      t.db.sql.begin(async (tx) => {
        await tx`select set_config('app.tenant_id', ${tenantId}, true)`;
        return q(tx as unknown as typeof t.db.sql);
      });
    await expect(asApp((tx) => tx`update audit_checkpoints set seq = 9 where tenant_id = ${tenantId}`)).rejects.toMatchObject({ code: '42501' });
    await expect(asApp((tx) => tx`delete from audit_checkpoints where tenant_id = ${tenantId}`)).rejects.toMatchObject({ code: '42501' });
    await expect(asApp((tx) => tx`truncate audit_checkpoints`)).rejects.toMatchObject({ code: '42501' });
    await expect(t.db.owner`delete from audit_checkpoints where tenant_id = ${tenantId}`).rejects.toThrow(/audit_checkpoints is append-only/);
    await expect(t.db.owner`truncate audit_checkpoints`).rejects.toThrow(/append-only/);
    expect(await checkpointsOf(tenantId)).toHaveLength(1);
  });

  it('the running app signs on its own schedule (AUDIT_CHECKPOINT_INTERVAL_S)', async () => {
    const fast = await startTestApp({ env: { ...QUIET_ENV, AUDIT_CHECKPOINT_INTERVAL_S: '1' }, modules: [identityModule, testAuthModule, auditModule] });
    try {
      const tenantId = await createTenant(fast.db.owner);
      await appendTo(fast.db.sql, tenantId, 1);
      let rows: { seq: string }[] = [];
      for (let i = 0; i < 100 && rows.length === 0; i++) {
        await new Promise((r) => setTimeout(r, 100));
        rows = await fast.db.owner<{ seq: string }[]>`select seq from audit_checkpoints where tenant_id = ${tenantId}`;
      }
      expect(rows.map((r) => Number(r.seq))).toEqual([1]);
    } finally {
      await fast.close();
      await fast.db.drop();
    }
  });

  it('refuses a malformed signing or trusted key at boot, naming the variable', () => {
    const bad = (env: Record<string, string>) => {
      try {
        loadConfig(env);
        return null;
      } catch (e) {
        return e instanceof ConfigError ? e.variable : e;
      }
    };
    expect(bad({ AUDIT_SIGNING_KEY: 'not-a-key' })).toBe('AUDIT_SIGNING_KEY');
    const rsa = generateKeyPairSync('rsa', { modulusLength: 1024 }).privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
    expect(bad({ AUDIT_SIGNING_KEY: rsa })).toBe('AUDIT_SIGNING_KEY');
    expect(bad({ AUDIT_TRUSTED_KEYS: 'AAAA' })).toBe('AUDIT_TRUSTED_KEYS');
    expect(bad({ AUDIT_SIGNING_KEY: newSigningKey(), AUDIT_TRUSTED_KEYS: exportCheckpointPublicKey(keys) })).toBeNull();
    // without AUDIT_SIGNING_KEY, an unusable key file in DATA_DIR is reported the same way
    const dataDir = mkdtempSync(path.join(os.tmpdir(), 'carebase-ckpt-'));
    writeFileSync(path.join(dataDir, 'audit-signing-key.pem'), 'garbage');
    expect(() => checkpointKeys({ dataDir, auditCheckpoints: { trustedKeys: [], intervalS: 900 } })).toThrow(ConfigError);
    expect(() => checkpointKeys({ dataDir, auditCheckpoints: { trustedKeys: [], intervalS: 900 } })).toThrow(/AUDIT_SIGNING_KEY is unset and .*audit-signing-key.pem cannot be used/);
    rmSync(dataDir, { recursive: true });
  });
});

/** A fresh Ed25519 key as AUDIT_SIGNING_KEY takes it (PKCS#8 DER in base64). */
function newSigningKey(): string {
  return generateKeyPairSync('ed25519').privateKey.export({ format: 'der', type: 'pkcs8' }).toString('base64');
}
