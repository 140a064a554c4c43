/**
 * BullMQ's PostgreSQL backend on the jobs' one shared pg pool: a process with many queues and workers adds no
 * listener per queue or worker to the pool (Node warned MaxListenersExceededWarning ... [BoundPool] past 10, as
 * plain text on stderr), and a queue closed and opened again leaks none.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createJobBackend } from '../../src/platform/jobs/index.js';
import { createLogger } from '../../src/platform/logger.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';

let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db?.drop();
});

it('many queues and workers on the shared pool: no MaxListenersExceededWarning', async () => {
  const names = Array.from({ length: 12 }, (_, i) => `pooltest.q${i}`);
  const warnings: string[] = [];
  const onWarning = (w: Error) => warnings.push(`${w.name}: ${w.message}`);
  process.on('warning', onWarning);
  const backend = await createJobBackend({ prefix: 'test', appUrl: db.appUrl, ownerUrl: db.ownerUrl, poolMax: names.length + 4, queues: names, log: createLogger('silent') });
  try {
    expect(backend.kind).toBe('postgres');
    const queues = names.map((n) => backend.queue(n));
    const workers = names.map((n) => backend.worker(n, async () => undefined, { autorun: true }));
    await Promise.all([...queues, ...workers].map((q) => q.waitUntilReady()));
    // close and reopen: nothing left behind on the pool
    for (const q of queues.slice(0, 6)) await q.close();
    await Promise.all(names.slice(0, 6).map((n) => backend.queue(n).waitUntilReady()));
    await new Promise((r) => setImmediate(r)); // process warnings are emitted on the next tick
    expect(warnings.filter((w) => w.includes('MaxListeners'))).toEqual([]);
  } finally {
    process.off('warning', onWarning);
    await backend.close();
  }
});
