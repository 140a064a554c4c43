/**
 * Server side of the fanout scenario (child process): the real createApp with
 * a bench-only module that authenticates HS256 tokens signed with
 * BENCH_SECRET (stands in for identity's access tokens), plus a bench-only
 * route that emits events:
 *   POST /__bench/emit {mode: 'outbox'|'direct', round}
 *     outbox: emitEvent in a committed transaction -> relay -> socket rooms
 *     direct: realtime.publish (socket fan-out alone)
 * Prints `BENCH_URL <url>` and `BENCH_TENANT <id>`.
 */
import { randomUUID } from 'node:crypto';
import { jwtVerify } from 'jose';
import { createApp } from '../../src/app.js';
import { loadConfig } from '../../src/config.js';
import { tenants } from '../../src/db/schema.js';
import { withTenant } from '../../src/platform/db/index.js';
import { AppError, ErrorCode } from '../../src/platform/errors.js';
import { emitEvent } from '../../src/platform/jobs/index.js';
import type { ModuleManifest } from '../../src/schema/index.js';

const secret = new TextEncoder().encode(process.env.BENCH_SECRET ?? '');
if (secret.length < 16) throw new Error('BENCH_SECRET is required');

const benchAuth: ModuleManifest = {
  name: 'bench-auth',
  phase: 0,
  description: 'bench-only token verification',
  dependsOn: [],
  authenticateToken: async (token) => {
    try {
      const { payload } = await jwtVerify(token, secret, { algorithms: ['HS256'] });
      return { kind: 'user', id: String(payload.sub), tenantId: String(payload.tid), roles: [], permissions: new Set<string>() };
    } catch {
      throw new AppError(ErrorCode.UNAUTHENTICATED, 'Invalid token');
    }
  },
};

const config = loadConfig({
  ...process.env,
  PORT: '0',
  HOST: '127.0.0.1',
  LOG_LEVEL: process.env.LOG_LEVEL ?? 'warn',
  DATA_DIR: process.env.DATA_DIR ?? '.data/bench',
  // 2,000 sockets share one IP: the per-socket limit is what matters here
  SOCKET_EVENTS_PER_SECOND: '1000',
});
const app = await createApp(config, { modules: [benchAuth], background: { relayPollIntervalMs: 1000 } });
const tenantId = randomUUID();
await withTenant(app.database.sql, tenantId, (db) => db.insert(tenants).values({ id: tenantId, slug: `bench-${tenantId.slice(0, 8)}`, name: 'Bench clinic' }));

app.server.post('/__bench/emit', async (req) => {
  const { mode, round } = req.body as { mode: 'outbox' | 'direct'; round: number };
  const sentAt = Date.now();
  if (mode === 'direct') {
    app.background.realtime.publish({
      id: randomUUID(),
      type: 'bench.ping',
      tenantId,
      aggregateId: tenantId,
      payload: { round, sentAt },
      rooms: [`tenant:${tenantId}`],
      jobs: [],
      occurredAt: new Date(sentAt),
    });
  } else {
    await withTenant(app.database.sql, tenantId, (db) =>
      emitEvent(db, { type: 'bench.ping', tenantId, aggregateId: tenantId, payload: { round, sentAt }, rooms: [`tenant:${tenantId}`] }),
    );
  }
  return { ok: true };
});

const url = await app.listen();
console.log(`BENCH_URL ${url}`);
console.log(`BENCH_TENANT ${tenantId}`);
const stop = () => void app.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
