import { randomBytes } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { CryptoError, decodeEnvelope, ENVELOPE_VERSION, isEnvelope } from '../../../src/platform/crypto/index.js';
import { open, seal } from '../../../src/platform/crypto/envelope.js';

const ctx = { tenantId: 't1', table: 'patients', column: 'ssn' };
const dataKey = randomBytes(32);
const wrapped = randomBytes(60);
const keyId = 'arn:aws:kms:us-east-1:000000000000:key/11111111-2222-3333-4444-555555555555';

function failure(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(CryptoError);
    return (e as CryptoError).failure;
  }
  return undefined;
}

describe('envelope format', () => {
  it('encodes version, key id, wrapped key, nonce, ciphertext and tag, and round-trips', () => {
    const plaintext = Buffer.from('123-45-6789');
    const env = seal(dataKey, keyId, wrapped, plaintext, ctx);
    expect(env[0]).toBe(ENVELOPE_VERSION);
    const d = decodeEnvelope(env);
    expect(d.keyId).toBe(keyId);
    expect(d.wrappedKey.equals(wrapped)).toBe(true);
    expect(d.nonce.length).toBe(12);
    expect(d.tag.length).toBe(16);
    expect(d.ciphertext.length).toBe(plaintext.length);
    expect(env.length).toBe(1 + 2 + Buffer.byteLength(keyId) + 2 + wrapped.length + 12 + plaintext.length + 16);
    expect(env.includes(plaintext)).toBe(false);
    expect(open(dataKey, d, ctx).toString()).toBe('123-45-6789');
  });

  it('encrypts the empty string and multi-byte text', () => {
    for (const value of ['', 'Zoë Ñúñez 🩺']) {
      const env = seal(dataKey, keyId, wrapped, Buffer.from(value), ctx);
      expect(open(dataKey, decodeEnvelope(env), ctx).toString()).toBe(value);
    }
  });

  it('uses a fresh nonce per value', () => {
    const a = seal(dataKey, keyId, wrapped, Buffer.from('same'), ctx);
    const b = seal(dataKey, keyId, wrapped, Buffer.from('same'), ctx);
    expect(a.equals(b)).toBe(false);
  });

  it('rejects an unknown format version with a typed error', () => {
    const env = seal(dataKey, keyId, wrapped, Buffer.from('x'), ctx);
    env[0] = 2;
    expect(failure(() => decodeEnvelope(env))).toBe('ENVELOPE_UNSUPPORTED_VERSION');
    expect(isEnvelope(env)).toBe(false);
  });

  it('rejects every truncation with a typed error', () => {
    const env = seal(dataKey, keyId, wrapped, Buffer.from('x'), ctx);
    // shortest valid: header + nonce + tag with 0 ciphertext bytes; cutting 1 byte of the value is still parseable
    const minimum = env.length - 1;
    for (let len = 0; len < minimum; len++) {
      expect(failure(() => decodeEnvelope(env.subarray(0, len)))).toMatch(/^ENVELOPE_(MALFORMED|UNSUPPORTED_VERSION)$/);
    }
    expect(failure(() => decodeEnvelope(Buffer.alloc(0)))).toBe('ENVELOPE_MALFORMED');
  });

  it('refuses a flipped bit anywhere: header, nonce, ciphertext or tag', () => {
    const env = seal(dataKey, keyId, wrapped, Buffer.from('123-45-6789'), ctx);
    const keyIdStart = 3;
    for (const pos of [keyIdStart + 5, env.length - 16 - 11 - 12, env.length - 16 - 3, env.length - 1]) {
      const bad = Buffer.from(env);
      bad[pos]! ^= 0x01;
      expect(failure(() => open(dataKey, decodeEnvelope(bad), ctx))).toBe('DECRYPT_FAILED');
    }
  });

  it('binds the encryption context as AAD: another tenant, table or column does not open it', () => {
    const env = decodeEnvelope(seal(dataKey, keyId, wrapped, Buffer.from('secret'), ctx));
    for (const other of [
      { ...ctx, tenantId: 't2' },
      { ...ctx, table: 'staff' },
      { ...ctx, column: 'phone' },
    ]) {
      expect(failure(() => open(dataKey, env, other))).toBe('DECRYPT_FAILED');
    }
    expect(failure(() => open(randomBytes(32), env, ctx))).toBe('DECRYPT_FAILED');
  });
});
