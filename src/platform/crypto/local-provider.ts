import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { createFileExclusive } from '../files.js';
import { CryptoError } from './errors.js';
import { contextBytes, type DataKey, type KeyProvider, type KmsContext } from './types.js';

/** Key ring file in DATA_DIR: master keys by id and the current one. Mode 600. */
interface KeyRing {
  current: string;
  keys: Record<string, string>;
}

export const LOCAL_KEYRING_FILE = 'local-master-keys.json';

/**
 * Master keys kept in a file in DATA_DIR, for development and the embedded
 * default. Data keys are wrapped with AES-256-GCM under the master key, with
 * the encryption context (and the key id) as AAD. Refused in production.
 */
export class LocalKeyProvider implements KeyProvider {
  readonly kind = 'local' as const;

  private constructor(
    private readonly file: string,
    private ring: KeyRing,
  ) {}

  /** Opens the key ring in `dataDir`, creating it (with one master key) on first use. */
  static open(opts: { dataDir: string; isProduction: boolean }): LocalKeyProvider {
    if (opts.isProduction) {
      throw new CryptoError('PROVIDER_REFUSED', 'the local key provider is refused when NODE_ENV=production; set KMS_KEY_ID');
    }
    fs.mkdirSync(opts.dataDir, { recursive: true, mode: 0o700 });
    const file = path.join(opts.dataDir, LOCAL_KEYRING_FILE);
    if (!fs.existsSync(file)) createFileExclusive(file, JSON.stringify(newRing()));
    return new LocalKeyProvider(file, readRing(file));
  }

  /** Adds a new master key and makes it current; older keys stay for decryption. */
  rotate(): string {
    const ring = readRing(this.file);
    const id = newKeyId();
    const next: KeyRing = { current: id, keys: { ...ring.keys, [id]: randomBytes(32).toString('base64') } };
    const tmp = `${this.file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(next), { mode: 0o600 });
    fs.renameSync(tmp, this.file);
    this.ring = next;
    return id;
  }

  async currentKeyId(): Promise<string> {
    return this.ring.current;
  }

  async generateDataKey(context: KmsContext): Promise<DataKey> {
    const keyId = this.ring.current;
    const plaintext = randomBytes(32);
    const nonce = randomBytes(12);
    const master = this.masterKey(keyId);
    try {
      const cipher = createCipheriv('aes-256-gcm', master, nonce);
      cipher.setAAD(aad(keyId, context));
      const wrapped = Buffer.concat([nonce, cipher.update(plaintext), cipher.final(), cipher.getAuthTag()]);
      return { keyId, plaintext, wrapped };
    } finally {
      master.fill(0);
    }
  }

  async decryptDataKey(keyId: string, wrapped: Buffer, context: KmsContext): Promise<Buffer> {
    if (!this.ring.keys[keyId]) this.ring = readRing(this.file); // rotated by another process
    const master = this.masterKey(keyId);
    try {
      if (wrapped.length !== 12 + 32 + 16) throw new Error('length');
      const decipher = createDecipheriv('aes-256-gcm', master, wrapped.subarray(0, 12));
      decipher.setAAD(aad(keyId, context));
      decipher.setAuthTag(wrapped.subarray(44));
      return Buffer.concat([decipher.update(wrapped.subarray(12, 44)), decipher.final()]);
    } catch {
      throw new CryptoError('DECRYPT_FAILED', 'local key provider: data key authentication failed');
    } finally {
      master.fill(0);
    }
  }

  close(): void {}

  private masterKey(keyId: string): Buffer {
    const b64 = this.ring.keys[keyId];
    if (!b64) throw new CryptoError('UNKNOWN_KEY', `local key provider: unknown master key ${keyId}`);
    return Buffer.from(b64, 'base64');
  }
}

const newKeyId = () => `local:${randomUUID()}`;
const newRing = (): KeyRing => {
  const id = newKeyId();
  return { current: id, keys: { [id]: randomBytes(32).toString('base64') } };
};
const aad = (keyId: string, context: KmsContext) => Buffer.concat([Buffer.from(`${keyId}\0`), contextBytes(context)]);

function readRing(file: string): KeyRing {
  const st = fs.statSync(file);
  if ((st.mode & 0o077) !== 0) {
    throw new CryptoError('PROVIDER_REFUSED', `local key provider: ${file} must be readable by its owner only (chmod 600)`);
  }
  const ring = JSON.parse(fs.readFileSync(file, 'utf8')) as KeyRing;
  if (typeof ring.current !== 'string' || typeof ring.keys?.[ring.current] !== 'string') {
    throw new CryptoError('PROVIDER_REFUSED', `local key provider: ${file} is not a valid key ring`);
  }
  return ring;
}
