import fs from 'node:fs/promises';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Config } from '../../config.js';

/**
 * Where modules keep binary objects (a visit's shared documents and images).
 * The store holds bytes only: callers encrypt before put and decrypt after
 * get (an envelope from the crypto module, bound to the tenant), so neither
 * the local disk nor an S3 bucket ever holds plaintext PHI. Keys are
 * `<tenantId>/<module>/<objectId>` made of [A-Za-z0-9/_-] only.
 *
 * Implementations: `local` (files under DATA_DIR/blobs, the default) and
 * `s3` (any S3-compatible service, BLOB_STORE=s3 with S3_* settings).
 */
export interface BlobStore {
  readonly kind: 'local' | 's3';
  /** stores `data` under `key` (replaces an object of that key) */
  put(key: string, data: Buffer): Promise<void>;
  /** the object's bytes, or null when there is none */
  get(key: string): Promise<Buffer | null>;
  /** removes the object (no error when it is already gone) */
  delete(key: string): Promise<void>;
  close(): Promise<void>;
}

const KEY = /^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+){0,7}$/;

/** Throws on a key outside the safe alphabet (no `..`, no leading slash, no dots at all). */
export function assertBlobKey(key: string): void {
  if (typeof key !== 'string' || key.length > 512 || !KEY.test(key)) throw new Error('blob store: invalid object key');
}

/** Files under `root` (mode 700 directories, 600 files); a put is written whole under a temporary name, then renamed. */
export class LocalBlobStore implements BlobStore {
  readonly kind = 'local' as const;
  constructor(readonly root: string) {}

  private file(key: string): string {
    assertBlobKey(key);
    return path.join(this.root, ...key.split('/'));
  }

  async put(key: string, data: Buffer): Promise<void> {
    const file = this.file(key);
    await fs.mkdir(path.dirname(file), { recursive: true, mode: 0o700 });
    const tmp = `${file}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`;
    try {
      await fs.writeFile(tmp, data, { mode: 0o600 });
      await fs.rename(tmp, file);
    } catch (e) {
      await fs.rm(tmp, { force: true });
      throw e;
    }
  }

  async get(key: string): Promise<Buffer | null> {
    try {
      return await fs.readFile(this.file(key));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code === 'ENOENT') return null;
      throw e;
    }
  }

  async delete(key: string): Promise<void> {
    await fs.rm(this.file(key), { force: true });
  }

  async close(): Promise<void> {}
}

/** What createBlobStore reads of the Config (boot passes the whole Config). */
export type BlobStoreConfig = Pick<Config, 'dataDir' | 'blobs'>;

/** The configured store: an S3 bucket with BLOB_STORE=s3, otherwise local files under DATA_DIR/blobs. */
export async function createBlobStore(config: BlobStoreConfig): Promise<BlobStore> {
  if (config.blobs.store === 's3') {
    if (!config.blobs.s3) throw new Error('blob store: BLOB_STORE=s3 without its S3 settings');
    const { S3BlobStore } = await import('./s3.js');
    return new S3BlobStore(config.blobs.s3);
  }
  return new LocalBlobStore(path.join(config.dataDir, 'blobs'));
}
