import { createCipheriv, createDecipheriv, randomBytes } from 'node:crypto';
import { CryptoError } from './errors.js';
import { contextBytes, type KmsContext } from './types.js';

/**
 * The stored form of one encrypted value (format version 1), big-endian:
 *
 *   u8   version (1)
 *   u16  key id length, then the key id (UTF-8): the master key that wrapped the data key
 *   u16  wrapped data key length, then the wrapped data key (opaque, provider-specific)
 *   12   AES-256-GCM nonce (random per value)
 *   ...  ciphertext (same length as the UTF-8 plaintext)
 *   16   GCM tag
 *
 * GCM AAD = the header (version .. wrapped key) followed by the canonical
 * encryption context, so neither the header nor the context can be swapped.
 */
export const ENVELOPE_VERSION = 1;
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const MAX_FIELD = 0xffff;

export interface Envelope {
  version: number;
  keyId: string;
  wrappedKey: Buffer;
  nonce: Buffer;
  ciphertext: Buffer;
  tag: Buffer;
  /** version .. wrapped key, as stored: part of the AAD */
  header: Buffer;
}

export function encodeHeader(keyId: string, wrappedKey: Buffer): Buffer {
  const id = Buffer.from(keyId, 'utf8');
  if (id.length === 0 || id.length > MAX_FIELD || wrappedKey.length === 0 || wrappedKey.length > MAX_FIELD) {
    throw new CryptoError('INVALID_INPUT', 'envelope: key id or wrapped key has an invalid length');
  }
  const header = Buffer.alloc(1 + 2 + id.length + 2 + wrappedKey.length);
  let o = header.writeUInt8(ENVELOPE_VERSION, 0);
  o = header.writeUInt16BE(id.length, o);
  o += id.copy(header, o);
  o = header.writeUInt16BE(wrappedKey.length, o);
  wrappedKey.copy(header, o);
  return header;
}

/** Parses without decrypting; throws CryptoError on an unknown version or a truncated buffer. */
export function decodeEnvelope(buf: Buffer): Envelope {
  if (!Buffer.isBuffer(buf) || buf.length < 1) throw malformed();
  const version = buf.readUInt8(0);
  if (version !== ENVELOPE_VERSION) {
    throw new CryptoError('ENVELOPE_UNSUPPORTED_VERSION', `envelope: unsupported format version ${version}`);
  }
  let o = 1;
  const field = (): Buffer => {
    if (o + 2 > buf.length) throw malformed();
    const len = buf.readUInt16BE(o);
    o += 2;
    if (len === 0 || o + len > buf.length) throw malformed();
    o += len;
    return buf.subarray(o - len, o);
  };
  const keyId = field().toString('utf8');
  const wrappedKey = field();
  const headerEnd = o;
  if (buf.length - headerEnd < NONCE_BYTES + TAG_BYTES) throw malformed();
  return {
    version,
    keyId,
    wrappedKey,
    header: buf.subarray(0, headerEnd),
    nonce: buf.subarray(headerEnd, headerEnd + NONCE_BYTES),
    ciphertext: buf.subarray(headerEnd + NONCE_BYTES, buf.length - TAG_BYTES),
    tag: buf.subarray(buf.length - TAG_BYTES),
  };
}

const malformed = () => new CryptoError('ENVELOPE_MALFORMED', 'envelope: truncated or malformed');

/** True when `buf` parses as an envelope (does not authenticate it). */
export function isEnvelope(buf: unknown): buf is Buffer {
  if (!Buffer.isBuffer(buf)) return false;
  try {
    decodeEnvelope(buf);
    return true;
  } catch {
    return false;
  }
}

/** AES-256-GCM under `dataKey`, bound to the header and `context`. */
export function seal(dataKey: Buffer, keyId: string, wrappedKey: Buffer, plaintext: Buffer, context: KmsContext): Buffer {
  const header = encodeHeader(keyId, wrappedKey);
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', dataKey, nonce);
  cipher.setAAD(Buffer.concat([header, contextBytes(context)]));
  const ciphertext = Buffer.concat([cipher.update(plaintext), cipher.final()]);
  return Buffer.concat([header, nonce, ciphertext, cipher.getAuthTag()]);
}

/** Decrypts and authenticates; throws CryptoError(DECRYPT_FAILED) on any mismatch. */
export function open(dataKey: Buffer, env: Envelope, context: KmsContext): Buffer {
  try {
    const decipher = createDecipheriv('aes-256-gcm', dataKey, env.nonce);
    decipher.setAAD(Buffer.concat([env.header, contextBytes(context)]));
    decipher.setAuthTag(env.tag);
    return Buffer.concat([decipher.update(env.ciphertext), decipher.final()]);
  } catch {
    throw new CryptoError('DECRYPT_FAILED', 'envelope: authentication failed (tampered data or wrong context)');
  }
}
