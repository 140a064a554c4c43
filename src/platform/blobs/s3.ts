import { DeleteObjectCommand, GetObjectCommand, NoSuchKey, PutObjectCommand, S3Client, S3ServiceException } from '@aws-sdk/client-s3';
import { assertBlobKey, type BlobStore } from './index.js';

export interface S3BlobStoreOptions {
  bucket: string;
  /** prepended to every key (`prefix/<key>`), e.g. one bucket shared by environments */
  prefix?: string;
  region: string;
  /** an S3-compatible service (MinIO, Ceph, R2, the test simulator); unset: AWS S3 */
  endpoint?: string;
  /** path-style URLs (`<endpoint>/<bucket>/<key>`), which most S3-compatible services need */
  forcePathStyle?: boolean;
  /** static credentials; unset: the AWS SDK's default chain (environment, profile, instance role) */
  credentials?: { accessKeyId: string; secretAccessKey: string };
  /** ms before a request is abandoned (default 10 s) */
  timeoutMs?: number;
}

/** A failure of the object store, without the object's content or the credentials. */
export class BlobStoreError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'BlobStoreError';
  }
}

/**
 * Objects in an S3 bucket (AWS or any S3-compatible service) through the AWS SDK v3. Requests are signed with
 * Signature V4; checksums are only sent where an operation requires them (`WHEN_REQUIRED`), which S3-compatible
 * services accept. The bytes put are already encrypted by the caller.
 */
export class S3BlobStore implements BlobStore {
  readonly kind = 's3' as const;
  private readonly client: S3Client;
  private readonly timeoutMs: number;
  /** only the bucket and prefix are kept (the credentials live in the client's provider, never in a field a logger could print) */
  private readonly bucket: string;
  private readonly prefix: string | undefined;

  constructor(opts: S3BlobStoreOptions) {
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.bucket = opts.bucket;
    this.prefix = opts.prefix?.replace(/\/+$/, '') || undefined;
    this.client = new S3Client({
      region: opts.region,
      endpoint: opts.endpoint,
      forcePathStyle: opts.forcePathStyle,
      credentials: opts.credentials,
      requestChecksumCalculation: 'WHEN_REQUIRED',
      responseChecksumValidation: 'WHEN_REQUIRED',
      maxAttempts: 3,
    });
  }

  private key(key: string): string {
    assertBlobKey(key);
    return this.prefix ? `${this.prefix}/${key}` : key;
  }

  private async send<T>(what: string, run: (signal: AbortSignal) => Promise<T>): Promise<T> {
    try {
      return await run(AbortSignal.timeout(this.timeoutMs));
    } catch (e) {
      if (e instanceof S3ServiceException) throw new BlobStoreError(`blob store: ${what} refused (${e.name})`, e.name);
      const name = (e as { name?: string }).name ?? 'Error';
      throw new BlobStoreError(`blob store: ${what} failed (${name === 'TimeoutError' || name === 'AbortError' ? 'no answer in time' : name})`, name);
    }
  }

  async put(key: string, data: Buffer): Promise<void> {
    const Key = this.key(key);
    await this.send('put', (abortSignal) => this.client.send(new PutObjectCommand({ Bucket: this.bucket, Key, Body: data, ContentType: 'application/octet-stream' }), { abortSignal }));
  }

  async get(key: string): Promise<Buffer | null> {
    const Key = this.key(key);
    try {
      const res = await this.client.send(new GetObjectCommand({ Bucket: this.bucket, Key }), { abortSignal: AbortSignal.timeout(this.timeoutMs) });
      return Buffer.from(await res.Body!.transformToByteArray());
    } catch (e) {
      // NoSuchKey, or a bare 404 from an S3-compatible service; a missing bucket stays an error (a misconfiguration, not a missing object)
      const name = (e as { name?: string }).name;
      const status = (e as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode;
      if (e instanceof NoSuchKey || name === 'NoSuchKey' || (status === 404 && name !== 'NoSuchBucket')) return null;
      return this.send('get', () => Promise.reject(e));
    }
  }

  async delete(key: string): Promise<void> {
    const Key = this.key(key);
    await this.send('delete', (abortSignal) => this.client.send(new DeleteObjectCommand({ Bucket: this.bucket, Key }), { abortSignal }));
  }

  async close(): Promise<void> {
    this.client.destroy();
  }
}
