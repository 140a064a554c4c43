import type { CryptoMetrics, KeyCacheName } from './metrics.js';

export interface KeyCacheOptions {
  /** a cached key serves at most this many operations (default 10,000) */
  maxUses: number;
  /** ... and for at most this long after it was fetched (default 300 s) */
  ttlMs: number;
  /** at most this many keys are held; the least recently used is evicted (default 1,000) */
  maxEntries: number;
  /** clock in ms, injectable for tests */
  now: () => number;
}

export const DEFAULT_KEY_CACHE: KeyCacheOptions = {
  maxUses: 10_000,
  ttlMs: 300_000,
  maxEntries: 1_000,
  now: Date.now,
};

type EvictReason = 'exhausted' | 'expired' | 'capacity' | 'cleared' | 'failed';

interface Entry<T> {
  value: Promise<T>;
  resolved?: T;
  uses: number;
  createdAt: number;
  /** operations that claimed this key and have not finished */
  holders: number;
  retired: boolean;
}

/**
 * Plaintext keys (data keys, unwrapped keys, index keys) held in memory with
 * hard bounds: uses, age and count. A key is zeroed (Buffer.fill(0)) as soon
 * as it is evicted and no operation still holds it. Concurrent callers for a
 * missing key share one load, so N parallel misses cost one KMS call.
 */
export class KeyCache<T extends { plaintext: Buffer }> {
  private readonly entries = new Map<string, Entry<T>>();
  private readonly opts: KeyCacheOptions;

  constructor(
    private readonly name: KeyCacheName,
    opts: Partial<KeyCacheOptions>,
    private readonly metrics: CryptoMetrics,
  ) {
    this.opts = { ...DEFAULT_KEY_CACHE, ...opts };
    if (!(this.opts.maxUses >= 1 && this.opts.ttlMs > 0 && this.opts.maxEntries >= 1)) {
      throw new RangeError('key cache: maxUses, ttlMs and maxEntries must be positive');
    }
  }

  /**
   * Runs `fn` with the cached key for `cacheKey`, loading it first when it is
   * missing, used up or expired. `fn` must be synchronous: the key may be
   * zeroed once it returns.
   */
  async use<R>(cacheKey: string, load: () => Promise<T>, fn: (key: T) => R): Promise<R> {
    let entry = this.entries.get(cacheKey);
    if (entry && !this.usable(entry)) {
      this.evict(cacheKey, entry, entry.uses >= this.opts.maxUses ? 'exhausted' : 'expired');
      entry = undefined;
    }
    if (entry) {
      this.metrics.cacheLookups.inc({ cache: this.name, result: 'hit' });
      this.entries.delete(cacheKey); // re-insert: Map order is the LRU order
      this.entries.set(cacheKey, entry);
    } else {
      this.metrics.cacheLookups.inc({ cache: this.name, result: 'miss' });
      entry = this.create(cacheKey, load);
    }
    entry.uses++;
    entry.holders++;
    if (entry.uses >= this.opts.maxUses) this.evict(cacheKey, entry, 'exhausted'); // zeroed once released
    try {
      return fn(await entry.value);
    } finally {
      entry.holders--;
      if (entry.retired) this.zeroIfFree(entry);
    }
  }

  /** Evicts (and zeroes) every used-up or expired key; run periodically. */
  sweep(): void {
    for (const [k, e] of this.entries) {
      if (!this.usable(e)) this.evict(k, e, e.uses >= this.opts.maxUses ? 'exhausted' : 'expired');
    }
  }

  /** Evicts (and zeroes) one key. */
  invalidate(cacheKey: string): void {
    const e = this.entries.get(cacheKey);
    if (e) this.evict(cacheKey, e, 'cleared');
  }

  /** Evicts (and zeroes) everything. */
  clear(): void {
    for (const [k, e] of this.entries) this.evict(k, e, 'cleared');
  }

  get size(): number {
    return this.entries.size;
  }

  private usable(e: Entry<T>): boolean {
    return e.uses < this.opts.maxUses && this.opts.now() - e.createdAt < this.opts.ttlMs;
  }

  private create(cacheKey: string, load: () => Promise<T>): Entry<T> {
    const entry: Entry<T> = { value: load(), uses: 0, createdAt: this.opts.now(), holders: 0, retired: false };
    entry.value.then(
      (v) => {
        entry.resolved = v;
        if (entry.retired) this.zeroIfFree(entry);
      },
      () => {
        if (this.entries.get(cacheKey) === entry) this.evict(cacheKey, entry, 'failed');
      },
    );
    this.entries.set(cacheKey, entry);
    while (this.entries.size > this.opts.maxEntries) {
      const [oldestKey, oldest] = this.entries.entries().next().value as [string, Entry<T>];
      this.evict(oldestKey, oldest, 'capacity');
    }
    return entry;
  }

  private evict(cacheKey: string, e: Entry<T>, reason: EvictReason): void {
    if (this.entries.get(cacheKey) === e) this.entries.delete(cacheKey);
    if (e.retired) return;
    e.retired = true;
    if (reason !== 'failed') this.metrics.cacheEvictions.inc({ cache: this.name, reason });
    this.zeroIfFree(e);
  }

  private zeroIfFree(e: Entry<T>): void {
    if (e.holders === 0 && e.resolved) e.resolved.plaintext.fill(0);
  }
}
