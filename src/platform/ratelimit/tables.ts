import { bigint, integer, pgTable, varchar } from 'drizzle-orm/pg-core';

/**
 * Counters of rate-limiter-flexible's Postgres store (used when REDIS_URL is
 * not set and the database is external). Not tenant-owned: keys are hashed
 * (policy prefix + SHA-256 of the IP / user id / key id), never PHI.
 * Column names and types are the ones RateLimiterPostgres expects. The table
 * is UNLOGGED (migration rate_limits_unlogged): no WAL flush per request; a
 * crash empties it, so every window starts afresh.
 */
export const rateLimits = pgTable('rate_limits', {
  key: varchar('key', { length: 255 }).primaryKey(),
  points: integer('points').notNull().default(0),
  /** epoch ms when the window ends */
  expire: bigint('expire', { mode: 'number' }),
});
