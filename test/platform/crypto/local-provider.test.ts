import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import {
  AwsKmsKeyProvider,
  createFieldCrypto,
  createKeyProvider,
  CryptoError,
  LOCAL_KEYRING_FILE,
  LocalKeyProvider,
} from '../../../src/platform/crypto/index.js';
import { freshMetrics, silentLogger } from './helpers.js';

const dirs: string[] = [];
const tmpDir = () => {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), 'carebase-local-kms-'));
  dirs.push(d);
  return path.join(d, 'data'); // not created yet: the provider creates it
};
afterEach(() => {
  while (dirs.length) fs.rmSync(dirs.pop()!, { recursive: true, force: true });
});
const ctx = { tenantId: 't1', table: 'patients', column: 'ssn' };

function refusal(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CryptoError);
    return (e as CryptoError).failure;
  }
  return undefined;
}

describe('LocalKeyProvider', () => {
  it('creates the master key ring in DATA_DIR with mode 600 and reuses it', async () => {
    const dataDir = tmpDir();
    const a = LocalKeyProvider.open({ dataDir, isProduction: false });
    const file = path.join(dataDir, LOCAL_KEYRING_FILE);
    expect(fs.statSync(file).mode & 0o777).toBe(0o600);
    const b = LocalKeyProvider.open({ dataDir, isProduction: false });
    expect(await b.currentKeyId()).toBe(await a.currentKeyId());
    const dk = await a.generateDataKey({ tenantId: 't1' });
    expect(dk.plaintext.length).toBe(32);
    expect((await b.decryptDataKey(dk.keyId, dk.wrapped, { tenantId: 't1' })).equals(dk.plaintext)).toBe(true);
  });

  it('is refused when NODE_ENV=production', () => {
    expect(refusal(() => LocalKeyProvider.open({ dataDir: tmpDir(), isProduction: true }))).toBe('PROVIDER_REFUSED');
  });

  it('refuses a key file readable by others', () => {
    const dataDir = tmpDir();
    LocalKeyProvider.open({ dataDir, isProduction: false });
    fs.chmodSync(path.join(dataDir, LOCAL_KEYRING_FILE), 0o644);
    expect(refusal(() => LocalKeyProvider.open({ dataDir, isProduction: false }))).toBe('PROVIDER_REFUSED');
  });

  it('refuses a wrong context, a tampered wrapped key and an unknown key id', async () => {
    const p = LocalKeyProvider.open({ dataDir: tmpDir(), isProduction: false });
    const dk = await p.generateDataKey({ tenantId: 't1' });
    await expect(p.decryptDataKey(dk.keyId, dk.wrapped, { tenantId: 't2' })).rejects.toMatchObject({ failure: 'DECRYPT_FAILED' });
    const bad = Buffer.from(dk.wrapped);
    bad[20]! ^= 1;
    await expect(p.decryptDataKey(dk.keyId, bad, { tenantId: 't1' })).rejects.toMatchObject({ failure: 'DECRYPT_FAILED' });
    await expect(p.decryptDataKey('local:nope', dk.wrapped, { tenantId: 't1' })).rejects.toMatchObject({ failure: 'UNKNOWN_KEY' });
  });

  it('rotates to a new master key; values under the old key still decrypt and reencrypt moves them', async () => {
    const dataDir = tmpDir();
    const p = LocalKeyProvider.open({ dataDir, isProduction: false });
    const fc = createFieldCrypto({ provider: p, metrics: freshMetrics() });
    const oldKey = await p.currentKeyId();
    const env = await fc.encrypt('123-45-6789', ctx);
    const newKey = p.rotate();
    expect(newKey).not.toBe(oldKey);
    expect(fs.statSync(path.join(dataDir, LOCAL_KEYRING_FILE)).mode & 0o777).toBe(0o600);
    expect(await fc.decrypt(env, ctx)).toBe('123-45-6789');
    const moved = await fc.reencrypt(env, ctx); // the cached data key is under the old key: must not be reused
    expect(fc.keyIdOf(moved!)).toBe(newKey);
    expect(await fc.reencrypt(moved!, ctx)).toBeNull();
    // another process that opens the ring later reads both
    const other = createFieldCrypto({ provider: LocalKeyProvider.open({ dataDir, isProduction: false }), metrics: freshMetrics() });
    expect(await other.decrypt(env, ctx)).toBe('123-45-6789');
    expect(await other.decrypt(moved!, ctx)).toBe('123-45-6789');
    fc.close();
    other.close();
  });
});

describe('createKeyProvider', () => {
  it('uses the local key ring when KMS_KEY_ID is unset', () => {
    const p = createKeyProvider({ kms: { region: 'us-east-1' }, dataDir: tmpDir(), isProduction: false }, silentLogger);
    expect(p).toBeInstanceOf(LocalKeyProvider);
  });

  it('uses AWS KMS when KMS_KEY_ID is set', () => {
    const p = createKeyProvider(
      { kms: { keyId: 'alias/carebase', region: 'eu-west-1', endpoint: 'http://127.0.0.1:1' }, dataDir: tmpDir(), isProduction: true },
      silentLogger,
      { metrics: freshMetrics() },
    );
    expect(p).toBeInstanceOf(AwsKmsKeyProvider);
    p.close();
  });

  it('refuses the local provider in production', () => {
    expect(refusal(() => createKeyProvider({ kms: { region: 'us-east-1' }, dataDir: tmpDir(), isProduction: true }, silentLogger))).toBe(
      'PROVIDER_REFUSED',
    );
  });
});
