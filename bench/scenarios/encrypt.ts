import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { AwsKmsKeyProvider, createFieldCrypto, createMemoryIndexKeyStore, cryptoMetrics, KmsTestServer } from '../../src/platform/crypto/index.js';
import { createLogger } from '../../src/platform/logger.js';
import { Registry } from 'prom-client';

const N = Number(process.env.BENCH_VALUES ?? 10_000);

/** Raw AES-256-GCM under one static key: the floor envelope encryption is compared with. */
function rawGcm(values: string[]) {
  const key = randomBytes(32);
  const t0 = performance.now();
  const out = values.map((v) => {
    const iv = randomBytes(12);
    const c = createCipheriv('aes-256-gcm', key, iv);
    const ct = Buffer.concat([c.update(v, 'utf8'), c.final()]);
    return { iv, ct, tag: c.getAuthTag() };
  });
  const encMs = performance.now() - t0;
  const t1 = performance.now();
  for (const o of out) {
    const d = createDecipheriv('aes-256-gcm', key, o.iv);
    d.setAuthTag(o.tag);
    Buffer.concat([d.update(o.ct), d.final()]).toString('utf8');
  }
  return { encMs, decMs: performance.now() - t1 };
}

/**
 * encrypt: envelope encryption through the real AWS SDK against the KMS
 * wire-protocol test server (10,000 values of one tenant/column, as 10,000
 * patient creates would), decrypt in a fresh process-like cache (so unwrapping
 * is counted), plus blind indexes; compared with raw AES-GCM in this run.
 */
export async function run() {
  const kms = await KmsTestServer.start({ port: 0 });
  const log = createLogger('silent');
  const metrics = cryptoMetrics(new Registry());
  const provider = new AwsKmsKeyProvider({ keyId: kms.defaultKey.keyId, region: 'us-east-1', endpoint: kms.endpoint, credentials: { accessKeyId: 'test', secretAccessKey: 'test' }, metrics, logger: log });
  const values = Array.from({ length: N }, (_, i) => `${String(100 + (i % 800)).padStart(3, '0')}-${String(10 + (i % 89))}-${String(1000 + i).slice(-4)}`);
  const ctx = { tenantId: '00000000-0000-4000-8000-000000000001', table: 'patients', column: 'ssn' };

  const base = rawGcm(values);

  const writer = createFieldCrypto({ provider, indexKeys: createMemoryIndexKeyStore(), metrics });
  kms.resetCounts();
  const t0 = performance.now();
  const envelopes = [];
  for (const v of values) envelopes.push(await writer.encrypt(v, ctx));
  const encMs = performance.now() - t0;
  const generateCalls = kms.callCount('GenerateDataKey');

  const reader = createFieldCrypto({ provider, indexKeys: createMemoryIndexKeyStore(), metrics }); // cold cache: unwraps once
  kms.resetCounts();
  const t1 = performance.now();
  for (const e of envelopes) await reader.decrypt(e, ctx);
  const decMs = performance.now() - t1;
  const decryptCalls = kms.callCount('Decrypt');

  kms.resetCounts();
  const t2 = performance.now();
  for (const v of values) await writer.blindIndex(v, ctx);
  const idxMs = performance.now() - t2;
  const indexCalls = kms.callCount();

  writer.close();
  reader.close();
  provider.close();
  await kms.close();

  const rate = (ms: number) => Math.round((N / ms) * 1000);
  console.log(`values: ${N} (one tenant, one column), KMS: AWS SDK -> local KMS wire-protocol test server`);
  console.log('| operation | carebase values/s | raw AES-GCM values/s | ratio | KMS calls for all values |');
  console.log('|---|---|---|---|---|');
  console.log(`| encrypt (envelope) | ${rate(encMs)} | ${rate(base.encMs)} | ${(base.encMs / encMs).toFixed(2)}x | ${generateCalls} GenerateDataKey |`);
  console.log(`| decrypt (envelope) | ${rate(decMs)} | ${rate(base.decMs)} | ${(base.decMs / decMs).toFixed(2)}x | ${decryptCalls} Decrypt |`);
  console.log(`| blind index (HMAC) | ${rate(idxMs)} | - | - | ${indexCalls} (first use of the tenant key) |`);
  return { encPerSec: rate(encMs), decPerSec: rate(decMs), generateCalls, decryptCalls };
}
