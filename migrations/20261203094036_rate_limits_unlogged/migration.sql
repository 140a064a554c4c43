-- Rate-limit counters need no crash durability: an unlogged table writes no WAL, so the upsert each request makes
-- (RateLimiterPostgres, when REDIS_URL is not set) no longer waits for a WAL flush. After a crash PostgreSQL empties
-- the table: every window starts afresh, which a rate limiter tolerates (docs/operations.md). Counters are not
-- replicated to standbys; the limiter only ever talks to the primary.
ALTER TABLE "rate_limits" SET UNLOGGED;
