import { createHash, generateKeyPairSync, createPublicKey, sign, verify, type KeyObject } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import type postgres from 'postgres';
import { ConfigError, parseEd25519PrivateKey, parseEd25519PublicKey, type Config } from '../../config.js';
import { withTenant } from '../db/tenancy.js';
import { createFileExclusive } from '../files.js';
import type { Logger } from '../logger.js';
import type { SqlRunner } from './chain.js';
import { toDate } from './types.js';

/**
 * Signed checkpoints of the audit hash chain: an anchor outside the database.
 *
 * The chain shows a changed, removed or reordered row, but someone with the
 * database owner's rights could rewrite a row and recompute every hash after
 * it. Every interval, signCheckpoints() signs each tenant's chain head
 * (tenant, seq, at, hash) with an Ed25519 key that only the application holds
 * (AUDIT_SIGNING_KEY, or a key generated once in DATA_DIR), stores the
 * signature in audit_checkpoints and writes it to the log stream (ids and
 * hashes only), which ships it off the host. The verifier checks each stored
 * checkpoint's signature against the trusted public keys and that the row at
 * its seq still has the signed hash.
 */

export interface CheckpointKeys {
  privateKey: KeyObject;
  keyId: string;
  /** public keys by key id: the signing key's and AUDIT_TRUSTED_KEYS (retired keys) */
  trusted: ReadonlyMap<string, KeyObject>;
}

export const CHECKPOINT_KEY_FILE = 'audit-signing-key.pem';

/** First 16 hex digits of SHA-256 over the public key's SPKI DER. */
export function checkpointKeyId(publicKey: KeyObject): string {
  return createHash('sha256').update(publicKey.export({ format: 'der', type: 'spki' })).digest('hex').slice(0, 16);
}

/** The public key to hand to auditors and to AUDIT_TRUSTED_KEYS after a rotation (SPKI DER, base64). */
export function exportCheckpointPublicKey(keys: CheckpointKeys): string {
  return createPublicKey(keys.privateKey).export({ format: 'der', type: 'spki' }).toString('base64');
}

const cache = new Map<string, CheckpointKeys>();

/**
 * The checkpoint keys of this configuration: AUDIT_SIGNING_KEY, or the key in
 * DATA_DIR/audit-signing-key.pem (created with mode 600 on first use).
 */
export function checkpointKeys(config: Pick<Config, 'dataDir' | 'auditCheckpoints'>): CheckpointKeys {
  const { signingKey, trustedKeys } = config.auditCheckpoints;
  const cacheKey = `${signingKey ?? config.dataDir}\n${trustedKeys.join(',')}`;
  let keys = cache.get(cacheKey);
  if (!keys) {
    const privateKey = signingKey ? parseEd25519PrivateKey(signingKey) : keyFromDataDir(config.dataDir);
    const publicKey = createPublicKey(privateKey);
    const keyId = checkpointKeyId(publicKey);
    const trusted = new Map<string, KeyObject>([[keyId, publicKey]]);
    for (const k of trustedKeys) {
      const pub = parseEd25519PublicKey(k);
      trusted.set(checkpointKeyId(pub), pub);
    }
    keys = { privateKey, keyId, trusted };
    cache.set(cacheKey, keys);
  }
  return keys;
}

/** The key in DATA_DIR, created on first use; a file that cannot be read, written or parsed stops the boot with one line. */
function keyFromDataDir(dataDir: string): KeyObject {
  const file = path.join(dataDir, CHECKPOINT_KEY_FILE);
  try {
    return readOrCreateKey(dataDir, file);
  } catch (e) {
    const why = (e as NodeJS.ErrnoException).code ?? 'not an Ed25519 private key';
    throw new ConfigError('AUDIT_SIGNING_KEY', `is unset and ${file} cannot be used (${why}): set AUDIT_SIGNING_KEY or fix DATA_DIR`);
  }
}

function readOrCreateKey(dataDir: string, file: string): KeyObject {
  try {
    return parseEd25519PrivateKey(fs.readFileSync(file, 'utf8'));
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
  }
  fs.mkdirSync(dataDir, { recursive: true, mode: 0o700 });
  const pem = generateKeyPairSync('ed25519').privateKey.export({ format: 'pem', type: 'pkcs8' }) as string;
  createFileExclusive(file, pem); // a process that lost the race reads the winner's key
  return parseEd25519PrivateKey(fs.readFileSync(file, 'utf8'));
}

interface Checkpoint {
  tenantId: string;
  seq: number;
  at: Date;
  hash: Buffer;
  signedAt: Date;
  keyId: string;
}

/** The signed message: versioned, one field per line, nothing free-form. */
function checkpointMessage(c: Checkpoint): Buffer {
  return Buffer.from(
    ['carebase-audit-checkpoint/v1', c.tenantId, String(c.seq), c.at.toISOString(), c.hash.toString('hex'), c.signedAt.toISOString(), c.keyId].join('\n'),
  );
}

function signCheckpoint(keys: CheckpointKeys, c: Omit<Checkpoint, 'keyId'>): { checkpoint: Checkpoint; signature: Buffer } {
  const checkpoint = { ...c, keyId: keys.keyId };
  return { checkpoint, signature: sign(null, checkpointMessage(checkpoint), keys.privateKey) };
}

/** True when a trusted key with the checkpoint's key id signed exactly this checkpoint. */
function checkpointSignatureValid(trusted: ReadonlyMap<string, KeyObject>, c: Checkpoint, signature: Buffer): boolean {
  const key = trusted.get(c.keyId);
  return !!key && verify(null, checkpointMessage(c), key, signature);
}

/**
 * Signs the chain head of every tenant whose head moved past its last
 * checkpoint (looking back two days, so a missed run is caught up). `pool` is
 * the app role's pool: tenants are listed through
 * carebase_audit_checkpoint_due and each is signed in its own tenant-scoped
 * transaction. Safe in several processes at once (per-tenant
 * try-lock; the (tenant, seq) key refuses a second row). Returns how many
 * checkpoints it wrote.
 */
/** a scheduled run, not a request: a busy database may take longer than a request's deadline */
const CHECKPOINT_STATEMENT_TIMEOUT_MS = 60_000;

export async function signCheckpoints(pool: postgres.Sql, keys: CheckpointKeys, log?: Logger, since = new Date(Date.now() - 2 * 86_400_000)): Promise<number> {
  const tenants = await pool<{ t: string }[]>`select t from carebase_audit_checkpoint_due(${since}) t`;
  let written = 0;
  for (const { t: tenantId } of tenants) {
    try {
      const c = await withTenant(pool, tenantId, async (_db, tx) => {
        const [lock] = await tx<{ ok: boolean }[]>`select pg_try_advisory_xact_lock(hashtext('carebase.audit.checkpoint'), hashtext(${tenantId})) as ok`;
        if (!lock?.ok) return null;
        const [head] = await tx<{ seq: string; hash: Buffer; last: string | null }[]>`
          select h.seq, h.hash, (select max(c.seq) from audit_checkpoints c where c.tenant_id = h.tenant_id) as last
            from audit_chain_heads h where h.tenant_id = ${tenantId}`;
        if (!head || Number(head.seq) === 0 || Number(head.last ?? 0) >= Number(head.seq)) return null;
        const [row] = await tx<{ at: Date | string }[]>`select at from audit_events where tenant_id = ${tenantId} and seq = ${head.seq} limit 1`;
        if (!row) return null; // the verifier reports the missing row
        const { checkpoint, signature } = signCheckpoint(keys, { tenantId, seq: Number(head.seq), at: toDate(row.at), hash: head.hash, signedAt: new Date() });
        await tx`insert into audit_checkpoints (tenant_id, seq, at, hash, signed_at, key_id, signature)
          values (${tenantId}, ${checkpoint.seq}, ${checkpoint.at}, ${checkpoint.hash}, ${checkpoint.signedAt}, ${checkpoint.keyId}, ${signature})
          on conflict do nothing`;
        return { checkpoint, signature };
      }, { statementTimeoutMs: CHECKPOINT_STATEMENT_TIMEOUT_MS });
      if (!c) continue;
      written++;
      // the copy outside the database: ids, hashes and the signature, never an event's content
      log?.info(
        {
          auditCheckpoint: {
            tenantId,
            seq: c.checkpoint.seq,
            at: c.checkpoint.at.toISOString(),
            hash: c.checkpoint.hash.toString('hex'),
            signedAt: c.checkpoint.signedAt.toISOString(),
            keyId: c.checkpoint.keyId,
            signature: c.signature.toString('base64'),
          },
        },
        'audit checkpoint signed',
      );
    } catch (e) {
      const err = e as { code?: string; name?: string };
      log?.error({ tenantId, pgCode: err?.code, errorName: err?.name }, 'audit checkpoint failed for a tenant');
    }
  }
  return written;
}

export type CheckpointBreak = 'CHECKPOINT_INVALID' | 'CHECKPOINT_MISMATCH';

interface CheckpointResult {
  /** checkpoints whose signature and row hash were checked */
  checked: number;
  last: { seq: number; signedAt: Date } | null;
  broken: { seq: number; reason: CheckpointBreak } | null;
}

/**
 * Checks a tenant's checkpoints after seq `fromSeq` (the retention anchor):
 * each must carry a valid signature by a trusted key, and the event at its
 * seq must still have the signed hash. Stops at the first failure.
 */
export async function verifyTenantCheckpoints(sql: SqlRunner, tenantId: string, trusted: ReadonlyMap<string, KeyObject>, fromSeq: number, batchSize = 2000): Promise<CheckpointResult> {
  const result: CheckpointResult = { checked: 0, last: null, broken: null };
  const cursor = sql<{ seq: string; at: Date | string; hash: Buffer; signed_at: Date | string; key_id: string; signature: Buffer; row_hash: Buffer | null }[]>`
    select c.seq, c.at, c.hash, c.signed_at, c.key_id, c.signature,
           (select e.hash from audit_events e where e.tenant_id = c.tenant_id and e.at = c.at and e.seq = c.seq limit 1) as row_hash
      from audit_checkpoints c
     where c.tenant_id = ${tenantId} and c.seq > ${fromSeq}
     order by c.seq`.cursor(batchSize);
  for await (const rows of cursor) {
    for (const r of rows) {
      const c: Checkpoint = { tenantId, seq: Number(r.seq), at: toDate(r.at), hash: r.hash, signedAt: toDate(r.signed_at), keyId: r.key_id };
      if (!checkpointSignatureValid(trusted, c, r.signature)) {
        result.broken = { seq: c.seq, reason: 'CHECKPOINT_INVALID' };
        return result;
      }
      if (!r.row_hash || !r.row_hash.equals(c.hash)) {
        result.broken = { seq: c.seq, reason: 'CHECKPOINT_MISMATCH' };
        return result;
      }
      result.checked++;
      result.last = { seq: c.seq, signedAt: c.signedAt };
    }
  }
  return result;
}
