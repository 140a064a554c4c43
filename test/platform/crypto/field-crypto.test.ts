import { DecryptCommand, KMSClient } from '@aws-sdk/client-kms';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { ErrorCode } from '../../../src/platform/errors.js';
import {
  createFieldCrypto,
  CryptoError,
  decodeEnvelope,
  KmsTestServer,
  KmsUnavailableError,
  type KeyCacheOptions,
  type KeyProvider,
} from '../../../src/platform/crypto/index.js';
import { counterValue, freshMetrics, isZero, kmsProvider, spyOn, TEST_CREDENTIALS } from './helpers.js';

let server: KmsTestServer;
const open: Array<{ close(): void }> = [];
const ctx = { tenantId: '6f1c2d3e-0000-4000-8000-000000000001', table: 'patients', column: 'ssn' };

beforeAll(async () => {
  server = await KmsTestServer.start();
});
afterAll(() => server.close());
afterEach(() => {
  server.setDown(false);
  server.setLatency(0);
  server.failNext(0);
  while (open.length) open.pop()!.close();
});

function setup(opts: { cache?: Partial<KeyCacheOptions>; requestMs?: number; provider?: KeyProvider } = {}) {
  const metrics = freshMetrics();
  const provider = opts.provider ?? kmsProvider(server, { metrics, requestMs: opts.requestMs });
  const fc = createFieldCrypto({ provider, cache: opts.cache, metrics });
  open.push(fc, provider);
  server.resetCounts();
  return { fc, provider, metrics };
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection');
}

describe('field crypto against the KMS test server (real AWS SDK)', () => {
  it('round-trips values; the envelope holds no plaintext and names the key ARN', async () => {
    const { fc } = setup();
    for (const value of ['123-45-6789', '', 'Renée O’Brien, 12 Rue de la Paix']) {
      const env = await fc.encrypt(value, ctx);
      expect(env.includes(Buffer.from(value)) && value !== '').toBe(false);
      expect(fc.keyIdOf(env)).toBe(server.defaultKey.arn);
      expect(await fc.decrypt(env, ctx)).toBe(value);
    }
  });

  it('refuses to decrypt under another tenant, table or column (KMS context and AAD)', async () => {
    const { fc } = setup();
    const env = await fc.encrypt('123-45-6789', ctx);
    await fc.decrypt(env, ctx); // the unwrapped key is now cached for the right context
    for (const other of [{ ...ctx, tenantId: 'other-tenant' }, { ...ctx, table: 'staff' }, { ...ctx, column: 'phone' }]) {
      const err = await rejection(fc.decrypt(env, other));
      expect(err).toBeInstanceOf(CryptoError);
      expect((err as CryptoError).failure).toBe('DECRYPT_FAILED');
      expect(err.message).not.toContain('123');
    }
    expect(server.callCount('Decrypt')).toBe(4); // 1 + one refused KMS Decrypt per wrong context
  });

  it('binds the wrapped data key to the context in KMS itself (EncryptionContext is sent)', async () => {
    const { fc } = setup();
    const env = decodeEnvelope(await fc.encrypt('123-45-6789', ctx));
    const kms = new KMSClient({ region: 'us-east-1', endpoint: server.endpoint, credentials: TEST_CREDENTIALS, maxAttempts: 1 });
    const unwrap = (EncryptionContext?: Record<string, string>) =>
      kms.send(new DecryptCommand({ CiphertextBlob: env.wrappedKey, KeyId: env.keyId, EncryptionContext }));
    await expect(unwrap()).rejects.toMatchObject({ name: 'InvalidCiphertextException' });
    await expect(unwrap({ ...ctx, tenantId: 'other' })).rejects.toMatchObject({ name: 'InvalidCiphertextException' });
    expect((await unwrap({ ...ctx })).Plaintext?.length).toBe(32);
    kms.destroy();
  });

  it('refuses tampered ciphertext, tag or wrapped key', async () => {
    const { fc } = setup();
    const env = await fc.encrypt('123-45-6789', ctx);
    const wrappedAt = 1 + 2 + Buffer.byteLength(fc.keyIdOf(env)) + 2 + 5;
    for (const pos of [env.length - 20, env.length - 1, wrappedAt]) {
      const bad = Buffer.from(env);
      bad[pos]! ^= 0x80;
      const err = await rejection(fc.decrypt(bad, ctx));
      expect((err as CryptoError).failure).toBe('DECRYPT_FAILED');
    }
  });

  it('refuses unknown envelope versions and non-envelopes with a typed error', async () => {
    const { fc } = setup();
    const env = Buffer.from(await fc.encrypt('x', ctx));
    env[0] = 9;
    expect(((await rejection(fc.decrypt(env, ctx))) as CryptoError).failure).toBe('ENVELOPE_UNSUPPORTED_VERSION');
    expect(((await rejection(fc.decrypt(Buffer.from([1, 0]), ctx))) as CryptoError).failure).toBe('ENVELOPE_MALFORMED');
  });

  it('refuses a context that is not ids and SQL names', async () => {
    const { fc } = setup();
    for (const bad of [{ ...ctx, tenantId: 'John Smith' }, { ...ctx, table: 'Patients; drop' }, { ...ctx, column: '' }]) {
      expect(((await rejection(fc.encrypt('x', bad))) as CryptoError).failure).toBe('INVALID_INPUT');
    }
    expect(server.callCount()).toBe(0);
  });
});

describe('KMS failures', () => {
  it('retries throttling with backoff: 2 throttles then success', async () => {
    const { fc, metrics } = setup();
    server.failNext(2, 'ThrottlingException');
    const env = await fc.encrypt('a', ctx);
    expect(await fc.decrypt(env, ctx)).toBe('a');
    expect(server.callCount('GenerateDataKey')).toBe(3);
    expect(await counterValue(metrics.kmsRequests, { operation: 'GenerateDataKey', outcome: 'throttled' })).toBe(2);
    expect(await counterValue(metrics.kmsRequests, { operation: 'GenerateDataKey', outcome: 'success' })).toBe(1);
  });

  it('gives up after 3 throttled attempts with KMS_UNAVAILABLE, then recovers (no poisoned cache)', async () => {
    const { fc } = setup();
    server.failNext(3, 'ThrottlingException');
    const err = await rejection(fc.encrypt('a', ctx));
    expect(err).toBeInstanceOf(KmsUnavailableError);
    expect((err as KmsUnavailableError).code).toBe(ErrorCode.KMS_UNAVAILABLE);
    expect((err as KmsUnavailableError).extensions.code).toBe('KMS_UNAVAILABLE');
    expect((err as KmsUnavailableError).reason).toBe('throttled');
    expect(server.callCount('GenerateDataKey')).toBe(3);
    expect(await fc.decrypt(await fc.encrypt('b', ctx), ctx)).toBe('b');
    expect(server.callCount('GenerateDataKey')).toBe(4);
  });

  it('does not retry AccessDenied: one call, KMS_UNAVAILABLE (denied)', async () => {
    const { fc, metrics } = setup();
    server.failNext(1, 'AccessDeniedException', { message: 'not authorized' });
    const err = (await rejection(fc.encrypt('a', ctx))) as KmsUnavailableError;
    expect([err.code, err.reason]).toEqual(['KMS_UNAVAILABLE', 'denied']);
    expect(server.callCount('GenerateDataKey')).toBe(1);
    expect(await counterValue(metrics.kmsRequests, { outcome: 'denied' })).toBe(1);
  });

  it('retries KMS internal errors and succeeds', async () => {
    const { fc } = setup();
    server.failNext(1, 'KMSInternalException');
    await fc.encrypt('a', ctx);
    expect(server.callCount('GenerateDataKey')).toBe(2);
  });

  it('outage (connections reset) → KMS_UNAVAILABLE on encrypt and decrypt; works again after', async () => {
    const { fc } = setup();
    const env = await fc.encrypt('a', { ...ctx, column: 'other' });
    fc.close(); // forget cached keys so decrypt needs KMS
    const { fc: fc2, metrics } = setup();
    server.setDown(true);
    for (const attempt of [() => fc2.encrypt('a', ctx), () => fc2.decrypt(env, { ...ctx, column: 'other' })]) {
      const err = (await rejection(attempt())) as KmsUnavailableError;
      expect([err.code, err.reason]).toEqual(['KMS_UNAVAILABLE', 'unavailable']);
    }
    expect(await counterValue(metrics.kmsRequests, { outcome: 'unavailable' })).toBe(6); // 3 attempts each
    server.setDown(false);
    expect(await fc2.decrypt(env, { ...ctx, column: 'other' })).toBe('a');
  });

  it('connection refused (nothing listening) → KMS_UNAVAILABLE', async () => {
    const gone = await KmsTestServer.start();
    const provider = kmsProvider(gone);
    await gone.close();
    const { fc } = setup({ provider });
    const err = (await rejection(fc.encrypt('a', ctx))) as KmsUnavailableError;
    expect(err.code).toBe('KMS_UNAVAILABLE');
  });

  it('latency above the request timeout → KMS_UNAVAILABLE; latency is measured', async () => {
    const { fc, metrics } = setup({ requestMs: 100 });
    server.setLatency(250);
    const err = (await rejection(fc.encrypt('a', ctx))) as KmsUnavailableError;
    expect([err.code, err.reason]).toEqual(['KMS_UNAVAILABLE', 'unavailable']);
    server.setLatency(30);
    await fc.encrypt('a', ctx);
    const { values } = await metrics.kmsLatency.get();
    const count = values.find((v) => v.metricName === 'carebase_kms_request_duration_seconds_count' && v.labels.operation === 'GenerateDataKey');
    const sum = values.find((v) => v.metricName === 'carebase_kms_request_duration_seconds_sum' && v.labels.operation === 'GenerateDataKey');
    expect(count?.value).toBe(4);
    expect(sum!.value).toBeGreaterThan(0.3 + 0.03);
  });
});

describe('data-key cache', () => {
  it('defaults: 10,000 encryptions in one context cost exactly 1 GenerateDataKey; 10,000 decryptions 1 Decrypt', async () => {
    const { fc, metrics } = setup();
    const envs = [];
    for (let i = 0; i < 10_000; i++) envs.push(await fc.encrypt(`value-${i}`, ctx));
    expect(server.callCount('GenerateDataKey')).toBe(1);
    const { fc: reader } = setup(); // another process: nothing cached
    for (let i = 0; i < envs.length; i++) expect(await reader.decrypt(envs[i]!, ctx)).toBe(`value-${i}`);
    expect(server.callCount('Decrypt')).toBe(1);
    expect(server.callCount()).toBe(1);
    expect(await counterValue(metrics.cacheLookups, { cache: 'data_key', result: 'miss' })).toBe(1);
    expect(await counterValue(metrics.cacheLookups, { cache: 'data_key', result: 'hit' })).toBe(9_999);
  });

  it('maxUses=100: 10,000 encryptions cost exactly 100 GenerateDataKey, sequential or concurrent', async () => {
    const { fc } = setup({ cache: { maxUses: 100 } });
    for (let i = 0; i < 10_000; i++) await fc.encrypt('v', ctx);
    expect(server.callCount('GenerateDataKey')).toBe(100);
    const { fc: parallel } = setup({ cache: { maxUses: 100 } });
    await Promise.all(Array.from({ length: 10_000 }, () => parallel.encrypt('v', ctx)));
    expect(server.callCount('GenerateDataKey')).toBe(100);
  });

  it('concurrent misses share one KMS call', async () => {
    const { fc } = setup();
    server.setLatency(50);
    await Promise.all(Array.from({ length: 50 }, (_, i) => fc.encrypt(`v${i}`, ctx)));
    expect(server.callCount('GenerateDataKey')).toBe(1);
  });

  it('keys the cache by context: each tenant/table/column gets its own data key', async () => {
    const { fc } = setup();
    await fc.encrypt('a', ctx);
    await fc.encrypt('a', { ...ctx, column: 'dob' });
    await fc.encrypt('a', { ...ctx, tenantId: 'tenant-2' });
    await fc.encrypt('b', ctx);
    expect(server.callCount('GenerateDataKey')).toBe(3);
  });

  it('TTL: a data key expires after ttlMs (injected clock) and is zeroed', async () => {
    let now = 1_000_000;
    const spy = spyOn(kmsProvider(server));
    const { fc } = setup({ provider: spy.provider, cache: { ttlMs: 60_000, now: () => now } });
    await fc.encrypt('a', ctx);
    now += 59_999;
    await fc.encrypt('a', ctx);
    expect(server.callCount('GenerateDataKey')).toBe(1);
    expect(isZero(spy.generated[0]!)).toBe(false);
    now += 1;
    await fc.encrypt('a', ctx);
    expect(server.callCount('GenerateDataKey')).toBe(2);
    expect(isZero(spy.generated[0]!)).toBe(true);
    expect(isZero(spy.generated[1]!)).toBe(false);
  });

  it('zeroes keys on every eviction: used up, capacity, expiry sweep, close', async () => {
    let now = 0;
    const spy = spyOn(kmsProvider(server));
    const { fc } = setup({ provider: spy.provider, cache: { maxUses: 2, maxEntries: 2, ttlMs: 1_000, now: () => now } });
    const env = await fc.encrypt('a', ctx);
    await fc.encrypt('a', ctx);
    await fc.encrypt('a', ctx); // third use: key 0 used up
    expect(spy.generated.map(isZero)).toEqual([true, false]);
    await fc.encrypt('a', { ...ctx, column: 'c2' });
    await fc.encrypt('a', { ...ctx, column: 'c3' }); // capacity 2: ctx's key 1 is least recently used
    expect(spy.generated.map(isZero)).toEqual([true, true, false, false]);

    expect(await fc.decrypt(env, ctx)).toBe('a');
    expect(isZero(spy.unwrapped[0]!)).toBe(false);
    now += 1_000;
    await new Promise((r) => setTimeout(r, 0));
    (fc as unknown as { close(): void }).close(); // close() evicts (sweep covers expiry the same way)
    expect(spy.generated.every(isZero)).toBe(true);
    expect(spy.unwrapped.every(isZero)).toBe(true);
  });

  it('unwrapped keys obey the same bounds (maxUses) and are zeroed when used up', async () => {
    const spy = spyOn(kmsProvider(server));
    const { fc } = setup({ provider: spy.provider, cache: { maxUses: 3 } });
    const env = await fc.encrypt('a', ctx);
    for (let i = 0; i < 7; i++) await fc.decrypt(env, ctx);
    expect(server.callCount('Decrypt')).toBe(3);
    expect(spy.unwrapped.map(isZero)).toEqual([true, true, false]);
  });

  it('never zeroes a key an in-flight operation still holds', async () => {
    const spy = spyOn(kmsProvider(server));
    const { fc } = setup({ provider: spy.provider, cache: { maxUses: 1 } });
    server.setLatency(30);
    const values = Array.from({ length: 20 }, (_, i) => `value-${i}`);
    const envs = await Promise.all(values.map((v) => fc.encrypt(v, ctx)));
    server.setLatency(0);
    expect(server.callCount('GenerateDataKey')).toBe(20);
    expect(await Promise.all(envs.map((e) => fc.decrypt(e, ctx)))).toEqual(values);
    expect(spy.generated.every(isZero)).toBe(true);
  });
});

describe('metrics', () => {
  it('count KMS calls by operation and outcome, and cache hits and misses', async () => {
    const { fc, metrics } = setup();
    const env = await fc.encrypt('a', ctx);
    await fc.encrypt('b', ctx);
    await fc.decrypt(env, ctx);
    await fc.decrypt(env, ctx);
    expect(await counterValue(metrics.kmsRequests, { operation: 'GenerateDataKey', outcome: 'success' })).toBe(1);
    expect(await counterValue(metrics.kmsRequests, { operation: 'Decrypt', outcome: 'success' })).toBe(1);
    expect(await counterValue(metrics.cacheLookups, { cache: 'data_key', result: 'hit' })).toBe(1);
    expect(await counterValue(metrics.cacheLookups, { cache: 'unwrapped_key', result: 'miss' })).toBe(1);
    expect(await counterValue(metrics.cacheLookups, { cache: 'unwrapped_key', result: 'hit' })).toBe(1);
  });
});

