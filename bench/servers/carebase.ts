/**
 * Carebase itself for a benchmark: the real createApp, on DATABASE_URL or the
 * embedded database in DATA_DIR (default .data/bench). Prints `BENCH_URL <url>`.
 * Rate limits are raised (the load comes from one IP); everything else is as shipped.
 */
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';

const config = loadConfig({
  // one IP sends everything: the per-IP budgets would answer 429s instead of serverInfo (raised unless set);
  // every other guard (load shedding, armor limits, CSRF prevention, error masking) stays at its default
  RATE_LIMIT_ANON_IP_PER_MINUTE: '1000000',
  RATE_LIMIT_AUTH_IP_PER_MINUTE: '1000000',
  RATE_LIMIT_USER_PER_MINUTE: '10000000',
  ...process.env,
  PORT: '0',
  HOST: '127.0.0.1',
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  DATA_DIR: process.env.DATA_DIR ?? '.data/bench',
});
const app = await createApp(config);
const url = await app.listen();
console.log(`BENCH_URL ${url}`);
const stop = () => void app.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
