import { DecryptCommand, DescribeKeyCommand, GenerateDataKeyCommand, KMSClient } from '@aws-sdk/client-kms';
import type { Logger } from '../logger.js';
import { CryptoError, KmsUnavailableError, type KmsFailureReason } from './errors.js';
import type { CryptoMetrics, KmsOutcome } from './metrics.js';
import type { DataKey, KeyProvider, KmsContext } from './types.js';

export interface RetryOptions {
  /** total attempts per KMS operation, including the first (default 3) */
  attempts: number;
  /** backoff before attempt n+1 is between base*2^(n-1)/2 and base*2^(n-1), capped (defaults 50 ms, 1 s) */
  baseDelayMs: number;
  maxDelayMs: number;
}

export interface AwsKmsKeyProviderOptions {
  /** key id, key ARN, alias name or alias ARN */
  keyId: string;
  region: string;
  /** e.g. the local KMS test server; unset = the regional AWS endpoint */
  endpoint?: string;
  /** unset = the SDK's default credential chain */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  retry?: Partial<RetryOptions>;
  /** per-attempt limits (defaults 1 s to connect, 3 s for the whole request) */
  timeouts?: { connectMs?: number; requestMs?: number };
  metrics: CryptoMetrics;
  logger: Logger;
}

const RETRYABLE_THROTTLE = new Set(['ThrottlingException', 'LimitExceededException', 'TooManyRequestsException', 'RequestLimitExceeded']);
const RETRYABLE_SERVER = new Set(['KMSInternalException', 'DependencyTimeoutException', 'ServiceUnavailable', 'ServiceUnavailableException', 'InternalFailure', 'InternalError']);
const BAD_CIPHERTEXT = new Set(['InvalidCiphertextException', 'IncorrectKeyException']);

interface Classified {
  outcome: Exclude<KmsOutcome, 'success'>;
  reason: KmsFailureReason;
  retryable: boolean;
}

/** Maps an SDK or network error to what we do about it. */
export function classifyKmsError(err: unknown): Classified {
  const e = err as { name?: string; $metadata?: { httpStatusCode?: number } };
  const name = e?.name ?? '';
  const status = e?.$metadata?.httpStatusCode;
  if (RETRYABLE_THROTTLE.has(name) || status === 429) return { outcome: 'throttled', reason: 'throttled', retryable: true };
  if (BAD_CIPHERTEXT.has(name)) return { outcome: 'invalid_ciphertext', reason: 'denied', retryable: false };
  if (RETRYABLE_SERVER.has(name) || (status !== undefined && status >= 500)) {
    return { outcome: 'unavailable', reason: 'unavailable', retryable: true };
  }
  if (status === undefined && name !== 'CredentialsProviderError') {
    // no HTTP response: connection refused/reset, timeout
    return { outcome: 'unavailable', reason: 'unavailable', retryable: true };
  }
  // AccessDenied, Disabled, NotFound, KMSInvalidState, bad credentials, validation: retrying will not help
  return { outcome: 'denied', reason: 'denied', retryable: false };
}

/**
 * AWS KMS (or anything speaking its JSON protocol) through @aws-sdk/client-kms.
 * SDK retries are off: this class's bounded backoff is the only retry policy,
 * and every attempt is counted and timed in the metrics.
 */
export class AwsKmsKeyProvider implements KeyProvider {
  readonly kind = 'aws-kms' as const;
  private readonly client: KMSClient;
  private readonly retry: RetryOptions;
  private canonicalKeyId?: Promise<string>;

  constructor(private readonly opts: AwsKmsKeyProviderOptions) {
    this.retry = { attempts: 3, baseDelayMs: 50, maxDelayMs: 1_000, ...opts.retry };
    this.client = new KMSClient({
      region: opts.region,
      endpoint: opts.endpoint,
      credentials: opts.credentials,
      maxAttempts: 1,
      requestHandler: {
        connectionTimeout: opts.timeouts?.connectMs ?? 1_000,
        requestTimeout: opts.timeouts?.requestMs ?? 3_000,
        throwOnRequestTimeout: true,
      },
    });
  }

  /** The configured key's ARN (aliases resolved), as stored in envelopes. */
  currentKeyId(): Promise<string> {
    if (!this.canonicalKeyId) {
      const pending = this.call('DescribeKey', () => this.client.send(new DescribeKeyCommand({ KeyId: this.opts.keyId }))).then((res) => {
        if (!res.KeyMetadata?.Arn) throw new KmsUnavailableError('unavailable', 'DescribeKey');
        return res.KeyMetadata.Arn;
      });
      pending.catch(() => {
        if (this.canonicalKeyId === pending) this.canonicalKeyId = undefined; // retry on next call
      });
      this.canonicalKeyId = pending;
    }
    return this.canonicalKeyId;
  }

  async generateDataKey(context: KmsContext): Promise<DataKey> {
    const res = await this.call('GenerateDataKey', () =>
      this.client.send(new GenerateDataKeyCommand({ KeyId: this.opts.keyId, KeySpec: 'AES_256', EncryptionContext: { ...context } })),
    );
    if (!res.Plaintext || !res.CiphertextBlob || !res.KeyId || res.Plaintext.length !== 32) {
      throw new KmsUnavailableError('unavailable', 'GenerateDataKey');
    }
    const plaintext = Buffer.from(res.Plaintext);
    res.Plaintext.fill(0);
    return { keyId: res.KeyId, plaintext, wrapped: Buffer.from(res.CiphertextBlob) };
  }

  async decryptDataKey(keyId: string, wrapped: Buffer, context: KmsContext): Promise<Buffer> {
    const res = await this.call('Decrypt', () =>
      this.client.send(new DecryptCommand({ KeyId: keyId, CiphertextBlob: wrapped, EncryptionContext: { ...context } })),
    );
    if (!res.Plaintext || res.Plaintext.length !== 32) throw new KmsUnavailableError('unavailable', 'Decrypt');
    const plaintext = Buffer.from(res.Plaintext);
    res.Plaintext.fill(0);
    return plaintext;
  }

  close(): void {
    this.client.destroy();
  }

  private async call<R>(operation: string, send: () => Promise<R>): Promise<R> {
    const { metrics, logger } = this.opts;
    for (let attempt = 1; ; attempt++) {
      const stopTimer = metrics.kmsLatency.startTimer({ operation });
      try {
        const res = await send();
        stopTimer();
        metrics.kmsRequests.inc({ operation, outcome: 'success' });
        return res;
      } catch (err) {
        stopTimer();
        const c = classifyKmsError(err);
        metrics.kmsRequests.inc({ operation, outcome: c.outcome });
        const error = (err as Error)?.name ?? 'Error';
        if (c.outcome === 'invalid_ciphertext') {
          throw new CryptoError('DECRYPT_FAILED', `KMS ${operation}: ciphertext or encryption context does not match`);
        }
        if (!c.retryable || attempt >= this.retry.attempts) {
          logger.error({ operation, attempts: attempt, error }, 'KMS request failed');
          throw new KmsUnavailableError(c.reason, operation);
        }
        const delay = this.backoff(attempt);
        logger.warn({ operation, attempt, error, delayMs: delay }, 'KMS request failed; retrying');
        await new Promise((r) => setTimeout(r, delay));
      }
    }
  }

  private backoff(attempt: number): number {
    const ceiling = Math.min(this.retry.maxDelayMs, this.retry.baseDelayMs * 2 ** (attempt - 1));
    return Math.round(ceiling / 2 + (Math.random() * ceiling) / 2);
  }
}
