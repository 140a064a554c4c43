import { Counter, Histogram, register as defaultRegistry, type Registry } from 'prom-client';

export type KmsOutcome = 'success' | 'throttled' | 'unavailable' | 'denied' | 'invalid_ciphertext';
export type KeyCacheName = 'data_key' | 'unwrapped_key' | 'index_key';

export interface CryptoMetrics {
  kmsRequests: Counter<'operation' | 'outcome'>;
  kmsLatency: Histogram<'operation'>;
  cacheLookups: Counter<'cache' | 'result'>;
  cacheEvictions: Counter<'cache' | 'reason'>;
}

const memo = new WeakMap<Registry, CryptoMetrics>();

/** The crypto metrics, registered once per registry (prom-client's default one unless given). */
export function cryptoMetrics(registry: Registry = defaultRegistry): CryptoMetrics {
  const existing = memo.get(registry);
  if (existing) return existing;
  const registers = [registry];
  const metrics: CryptoMetrics = {
    kmsRequests: new Counter({
      name: 'carebase_kms_requests_total',
      help: 'KMS requests (each attempt), by operation and outcome',
      labelNames: ['operation', 'outcome'],
      registers,
    }),
    kmsLatency: new Histogram({
      name: 'carebase_kms_request_duration_seconds',
      help: 'KMS request latency (each attempt)',
      labelNames: ['operation'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers,
    }),
    cacheLookups: new Counter({
      name: 'carebase_crypto_key_cache_lookups_total',
      help: 'Key cache lookups: hit = served without a KMS call',
      labelNames: ['cache', 'result'],
      registers,
    }),
    cacheEvictions: new Counter({
      name: 'carebase_crypto_key_cache_evictions_total',
      help: 'Cached keys evicted (and zeroed), by reason',
      labelNames: ['cache', 'reason'],
      registers,
    }),
  };
  memo.set(registry, metrics);
  return metrics;
}
