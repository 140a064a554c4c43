import { Registry } from 'prom-client';
import { createLogger } from '../../../src/platform/logger.js';
import {
  AwsKmsKeyProvider,
  cryptoMetrics,
  type CryptoMetrics,
  type DataKey,
  type KeyProvider,
  type KmsContext,
  type KmsTestServer,
} from '../../../src/platform/crypto/index.js';

export const silentLogger = createLogger('silent');
export const TEST_CREDENTIALS = { accessKeyId: 'test', secretAccessKey: 'test' };

/** Metrics on a private registry, so each test reads its own numbers. */
export function freshMetrics(): CryptoMetrics {
  return cryptoMetrics(new Registry());
}

/** The real SDK client pointed at the test server, with short backoff so tests stay fast. */
export function kmsProvider(
  server: KmsTestServer,
  opts: { keyId?: string; metrics?: CryptoMetrics; requestMs?: number; attempts?: number } = {},
): AwsKmsKeyProvider {
  return new AwsKmsKeyProvider({
    keyId: opts.keyId ?? server.defaultKey.arn,
    region: 'us-east-1',
    endpoint: server.endpoint,
    credentials: TEST_CREDENTIALS,
    retry: { attempts: opts.attempts ?? 3, baseDelayMs: 5, maxDelayMs: 20 },
    timeouts: { connectMs: 5_000, requestMs: opts.requestMs ?? 10_000 }, // generous: CI machines can be busy
    metrics: opts.metrics ?? freshMetrics(),
    logger: silentLogger,
  });
}

/** Wraps a provider and keeps every plaintext key it hands out, to check zeroing. */
export function spyOn(inner: KeyProvider) {
  const generated: Buffer[] = [];
  const unwrapped: Buffer[] = [];
  const provider: KeyProvider = {
    kind: inner.kind,
    currentKeyId: () => inner.currentKeyId(),
    async generateDataKey(context: KmsContext): Promise<DataKey> {
      const dk = await inner.generateDataKey(context);
      generated.push(dk.plaintext);
      return dk;
    },
    async decryptDataKey(keyId: string, wrapped: Buffer, context: KmsContext): Promise<Buffer> {
      const key = await inner.decryptDataKey(keyId, wrapped, context);
      unwrapped.push(key);
      return key;
    },
    close: () => inner.close(),
  };
  return { provider, generated, unwrapped };
}

export const isZero = (b: Buffer) => b.length > 0 && b.every((x) => x === 0);

/** Sum of a counter's values whose labels match. */
export async function counterValue(
  metric: { get(): Promise<{ values: Array<{ value: number; labels: Record<string, string | number> }> }> },
  labels: Record<string, string>,
): Promise<number> {
  const { values } = await metric.get();
  return values
    .filter((v) => Object.entries(labels).every(([k, want]) => v.labels[k] === want))
    .reduce((sum, v) => sum + v.value, 0);
}
