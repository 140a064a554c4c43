/**
 * Request quotas counted in batches on the PostgreSQL store.
 *
 * A quota such as "1,200 requests per user per minute" is checked on every
 * request. Counting it in `rate_limits` one upsert per request costs a
 * statement and a round trip on every request. Here each process counts its
 * own requests and sends what it counted for every key in ONE upsert per
 * flush (every `flushMs`, 100 ms by default, and at once when a caller waits):
 * the answer carries every key's shared total, and the next decisions are
 * made against it in memory.
 *
 * - A key this process knows nothing about in the current window (its first
 *   request, or the window ended) waits for the next flush: the decision is
 *   made against the shared total, like the per-request store.
 * - A known key is decided at once against the last shared total plus what
 *   this process counted since. Within one process the count is exact; across
 *   processes, a key can overspend by what the other processes counted in the
 *   last `flushMs` (at 1,200 per minute, a few requests).
 * - If the flush fails (database down, or no answer within the store's
 *   timeout), the waiting callers are decided by the per-process insurance
 *   limiter, as with the per-request store, and the keys are forgotten so
 *   that the next request asks the store again.
 *
 * Only policies with `batched: true` use it (the request quotas of
 * policies.ts); lockouts (block durations) and sign-in budgets stay exact.
 * The table and its semantics are RateLimiterPostgres's, so processes of
 * either kind count into the same rows.
 */
import { RateLimiterRes } from 'rate-limiter-flexible';

interface PgQueryable {
  query(q: { text: string; values?: unknown[] }): Promise<{ rows: Record<string, unknown>[] }>;
}

interface KeyState {
  /** points of the shared row at the last flush (this process's flushed points included) */
  shared: number;
  /** epoch ms when the shared window ends */
  expire: number;
  /** counted here since the last flush */
  pending: number;
  /** points of `pending` sent by the flush in flight */
  sending: number;
  /** window length, for the row a flush creates when the shared window has ended */
  durationMs: number;
}

interface Waiter {
  /** decides this call per process (the insurance limiter) when the store fails */
  alone: () => Promise<RateLimiterRes>;
  points: number;
  limit: number;
  durationMs: number;
  resolve: (r: RateLimiterRes) => void;
  reject: (e: unknown) => void;
}

/** Most keys remembered; expired ones are dropped after a flush, at most once per SWEEP_MS. */
const MAX_KEYS = 100_000;
const SWEEP_MS = 1_000;

export class BatchedPgCounter {
  private keys = new Map<string, KeyState>();
  /** keys with points counted here and not yet sent (pending > 0): what a flush sends, without scanning every key */
  private dirty = new Set<string>();
  private sweptAt = 0;
  private waiting = new Map<string, Waiter[]>();
  private timer: NodeJS.Timeout | undefined;
  private immediate: NodeJS.Immediate | undefined;
  private flushing: Promise<void> | undefined;
  private closed = false;

  constructor(
    private readonly pg: PgQueryable,
    private readonly opts: {
      flushMs: number;
      now: () => number;
      onStoreOk: () => void;
    },
  ) {}

  /**
   * Spends `points` of a `limit` per window of `durationMs` for `key` (the stored key: prefix + hash); `alone`
   * decides the call per process if it must wait for a flush that fails.
   */
  consume(key: string, points: number, limit: number, durationMs: number, alone: () => Promise<RateLimiterRes>): Promise<RateLimiterRes> {
    if (this.closed) return Promise.reject(new Error('rate limiter is closed'));
    const now = this.opts.now();
    const s = this.keys.get(key);
    if (s && s.expire > now && !this.waiting.has(key)) {
      const consumed = s.shared + s.pending + points;
      const res = new RateLimiterRes(Math.max(0, limit - consumed), s.expire - now, consumed, false);
      if (consumed > limit) return Promise.reject(res);
      s.pending += points;
      this.dirty.add(key);
      this.schedule(false);
      return Promise.resolve(res);
    }
    return new Promise((resolve, reject) => {
      const list = this.waiting.get(key);
      const w = { alone, points, limit, durationMs, resolve, reject };
      if (list) list.push(w);
      else this.waiting.set(key, [w]);
      this.schedule(true);
    });
  }

  /** Resolves once what was counted so far is in the table (reads of the exact store see it). */
  async sent(): Promise<void> {
    while (this.flushing) await this.flushing;
    await this.flush();
  }

  /** Forgets what this process knows of a key (after a reset or reward through the exact store). */
  forget(key: string): void {
    this.keys.delete(key);
    this.dirty.delete(key);
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.immediate) clearImmediate(this.immediate);
    this.timer = this.immediate = undefined;
    await this.sent(); // what was counted since the last flush
  }

  private schedule(urgent: boolean) {
    if (this.flushing || this.closed) return; // the flush in flight schedules the next one
    if (urgent) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      this.immediate ??= setImmediate(() => {
        this.immediate = undefined;
        void this.flush();
      });
    } else if (!this.timer && !this.immediate) {
      this.timer = setTimeout(() => {
        this.timer = undefined;
        void this.flush();
      }, this.opts.flushMs);
      this.timer.unref();
    }
  }

  private flush(): Promise<void> {
    if (this.flushing) return this.flushing;
    const waiting = this.waiting;
    this.waiting = new Map();
    const rows = new Map<string, { points: number; durationMs: number }>();
    for (const key of this.dirty) {
      const s = this.keys.get(key)!;
      rows.set(key, { points: s.pending, durationMs: s.durationMs });
      s.sending = s.pending;
    }
    for (const [key, list] of waiting) {
      // a waiter's points are counted whether it fits or not, as the per-request store counts refused requests
      rows.set(key, { points: (rows.get(key)?.points ?? 0) + list.reduce((n, w) => n + w.points, 0), durationMs: list[0]!.durationMs });
    }
    if (rows.size === 0) return Promise.resolve();
    this.flushing = this.send(rows, waiting).finally(() => {
      this.flushing = undefined;
      this.sweep();
      if (this.waiting.size) this.schedule(true);
      else if (this.dirty.size) this.schedule(false);
    });
    return this.flushing;
  }

  /**
   * One statement: adds each key's points (counted here since the last flush, and the waiters') and returns the
   * shared totals; each waiter is decided in its order of arrival. Keys are sorted: concurrent flushes of several processes
   * lock rows in the same order (no deadlock).
   */
  private async send(rows: Map<string, { points: number; durationMs: number }>, waiting: Map<string, Waiter[]>) {
    const now = this.opts.now();
    const keys = [...rows.keys()].sort();
    const points = keys.map((k) => rows.get(k)!.points);
    const expires = keys.map((k) => now + rows.get(k)!.durationMs);
    let answer: { rows: Record<string, unknown>[] };
    try {
      answer = await this.pg.query({
        text: `insert into rate_limits (key, points, expire)
                 select * from unnest($1::varchar[], $2::int[], $3::bigint[])
               on conflict (key) do update set
                 points = case when rate_limits.expire <= $4 then excluded.points else rate_limits.points + excluded.points end,
                 expire = case when rate_limits.expire <= $4 then excluded.expire else rate_limits.expire end
               returning key, points, expire`,
        values: [keys, points, expires, now],
      });
    } catch {
      // decided per process; the keys are asked again once the store answers
      for (const key of keys) this.forget(key);
      for (const list of waiting.values()) for (const w of list) w.alone().then(w.resolve, w.reject);
      return;
    }
    this.opts.onStoreOk();
    const at = this.opts.now();
    for (const r of answer.rows) {
      const key = String(r.key);
      const shared = Number(r.points);
      const expire = Number(r.expire);
      const s = this.keys.get(key);
      const state: KeyState = { shared, expire, pending: s ? s.pending - s.sending : 0, sending: 0, durationMs: rows.get(key)!.durationMs };
      this.keys.set(key, state);
      if (state.pending > 0) this.dirty.add(key);
      else this.dirty.delete(key);
      const list = waiting.get(key) ?? [];
      // the waiters' points are in `shared`: each one sees those of the waiters before it
      let before = shared - list.reduce((n, w) => n + w.points, 0);
      for (const w of list) {
        before += w.points;
        const consumed = before + state.pending;
        const res = new RateLimiterRes(Math.max(0, w.limit - consumed), Math.max(0, expire - at), consumed, false);
        if (consumed > w.limit) w.reject(res);
        else w.resolve(res);
      }
    }
  }

  /** Drops keys whose window ended with nothing left to send (at most once per SWEEP_MS); bounds the map. */
  private sweep() {
    const now = this.opts.now();
    if (now - this.sweptAt >= SWEEP_MS || now < this.sweptAt) {
      this.sweptAt = now;
      for (const [key, s] of this.keys) if (s.expire <= now && s.pending === 0) this.forget(key);
    }
    while (this.keys.size > MAX_KEYS) this.forget(this.keys.keys().next().value!);
  }
}
