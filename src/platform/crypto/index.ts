/**
 * Field encryption: the only module other code imports from platform/crypto.
 * See docs/security.md, "Field encryption".
 */
import type { Config } from '../../config.js';
import type { Logger } from '../logger.js';
import { AwsKmsKeyProvider, type RetryOptions } from './aws-kms-provider.js';
import { LocalKeyProvider } from './local-provider.js';
import { cryptoMetrics, type CryptoMetrics } from './metrics.js';
import type { KeyProvider } from './types.js';

export { AwsKmsKeyProvider, classifyKmsError, type AwsKmsKeyProviderOptions, type RetryOptions } from './aws-kms-provider.js';
export { LocalKeyProvider, LOCAL_KEYRING_FILE } from './local-provider.js';
export { createFieldCrypto, INDEX_KEY_CONTEXT, type FieldCrypto, type FieldCryptoOptions } from './field-crypto.js';
export { KeyCache, DEFAULT_KEY_CACHE, type KeyCacheOptions } from './key-cache.js';
export { normalisers, computeBlindIndex, createMemoryIndexKeyStore, type IndexKeyStore, type Normaliser } from './blind-index.js';
export {
  encryptedColumn,
  isEncryptedColumn,
  fieldContext,
  type EncryptedValue,
  type EncryptedKeys,
  type EncryptedFields,
  type DecryptedRow,
} from './column.js';
export { decodeEnvelope, encodeHeader, isEnvelope, ENVELOPE_VERSION, type Envelope } from './envelope.js';
export { CryptoError, KmsUnavailableError, type CryptoFailure, type KmsFailureReason } from './errors.js';
export { cryptoMetrics, type CryptoMetrics } from './metrics.js';
export { KmsTestServer, DEFAULT_ALIAS, type KmsTestServerOptions, type KmsTestOperation, type TestKey } from './kms-test-server.js';
export type { DataKey, FieldContext, KeyProvider, KmsContext } from './types.js';
export { cryptoKeys, cryptoIndexKeys, cryptoRotationJobs, type RotationTableProgress } from './tables.js';
export { createDbIndexKeyStore } from './db-store.js';
export {
  runRotation,
  rotationStatus,
  encryptedTables,
  envelopeKeyId,
  RotationError,
  type RotationOptions,
  type RotationProgress,
  type RotationResult,
  type RotationStatus,
} from './rotation.js';

export interface KeyProviderOverrides {
  /** explicit credentials (tests against the KMS test server); unset = the SDK's default chain */
  credentials?: { accessKeyId: string; secretAccessKey: string; sessionToken?: string };
  retry?: Partial<RetryOptions>;
  timeouts?: { connectMs?: number; requestMs?: number };
  metrics?: CryptoMetrics;
}

/**
 * AWS KMS when KMS_KEY_ID is set (KMS_ENDPOINT, e.g. the KMS test server,
 * overrides the regional endpoint), otherwise the local key ring in DATA_DIR,
 * which is refused when NODE_ENV=production.
 */
export function createKeyProvider(
  config: Pick<Config, 'kms' | 'dataDir' | 'isProduction'>,
  logger: Logger,
  overrides: KeyProviderOverrides = {},
): KeyProvider {
  const log = logger.child({ component: 'crypto' });
  if (config.kms.keyId) {
    log.info({ provider: 'aws-kms', region: config.kms.region, customEndpoint: Boolean(config.kms.endpoint) }, 'key provider ready');
    return new AwsKmsKeyProvider({
      keyId: config.kms.keyId,
      region: config.kms.region,
      endpoint: config.kms.endpoint,
      credentials: overrides.credentials,
      retry: overrides.retry,
      timeouts: overrides.timeouts,
      metrics: overrides.metrics ?? cryptoMetrics(),
      logger: log,
    });
  }
  const provider = LocalKeyProvider.open({ dataDir: config.dataDir, isProduction: config.isProduction });
  log.warn({ provider: 'local' }, 'key provider: local master key in DATA_DIR (development only; set KMS_KEY_ID for AWS KMS)');
  return provider;
}
