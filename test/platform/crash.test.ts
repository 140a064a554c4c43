import { spawn } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { withTenant } from '../../src/platform/db/index.js';
import { tenants } from '../../src/db/schema.js';
import { createTestDatabase, type TestDatabase } from '../helpers/db.js';
import { createNotesTable } from './fixtures/notes-module.js';

const ADD = 'mutation Add($body: String!, $clientRef: String) { addNote(body: $body, clientRef: $clientRef) { id } }';

function startChild(db: TestDatabase) {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/platform/fixtures/notes-server.ts'], {
    env: { ...process.env, NODE_OPTIONS: '', DATABASE_URL: db.ownerUrl, DATABASE_APP_URL: db.appUrl },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr.on('data', (d) => (err += d));
  const url = new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /URL (\S+)/.exec(out);
      if (m) resolve(m[1]!);
    });
    child.on('exit', (code) => reject(new Error(`server exited ${code}: ${err.slice(-500)}`)));
  });
  const exited = new Promise<void>((r) => child.on('exit', () => r()));
  return { child, url, exited };
}

describe('crash safety: kill -9 under concurrent writes', () => {
  let db: TestDatabase;
  let who: Record<string, string>;
  beforeAll(async () => {
    db = await createTestDatabase();
    await createNotesTable(db.owner);
    const tenantId = randomUUID();
    await withTenant(db.sql, tenantId, (tx) => tx.insert(tenants).values({ id: tenantId, slug: `c-${tenantId.slice(0, 8)}`, name: 'Crashy clinic' }));
    who = { 'x-test-principal': `${tenantId}:${randomUUID()}` };
  });
  afterAll(async () => {
    await db?.drop();
  });

  it('loses no acknowledged write, and retried in-doubt writes (same Idempotency-Key) apply exactly once', { timeout: 120_000 }, async () => {
    const first = startChild(db);
    const url = await first.url;
    const acked = new Set<string>();
    const inDoubt = new Set<string>();
    let killed = false;
    const send = (base: string, ref: string) =>
      fetch(`${base}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'idempotency-key': ref, ...who },
        body: JSON.stringify({ query: ADD, variables: { body: 'load', clientRef: ref } }),
      }).then(async (r) => {
        const body = (await r.json()) as { data?: { addNote?: { id: number } }; errors?: unknown[] };
        if (!body.data?.addNote) throw new Error(`not acknowledged: ${JSON.stringify(body.errors)}`);
      });
    const writer = async () => {
      while (!killed) {
        const ref = `w-${randomUUID()}`;
        try {
          await send(url, ref);
          acked.add(ref);
        } catch {
          inDoubt.add(ref);
        }
      }
    };
    const writers = Array.from({ length: 8 }, writer);
    // kill under load, once writes are flowing (however slow the machine)
    await new Promise((r) => setTimeout(r, 1000));
    for (let i = 0; i < 150 && acked.size <= 20; i++) await new Promise((r) => setTimeout(r, 100));
    first.child.kill('SIGKILL');
    killed = true;
    await Promise.all(writers);
    await first.exited;
    expect(acked.size).toBeGreaterThan(10);

    // every acknowledged write survived the crash
    const rows = await db.owner<{ client_ref: string }[]>`select client_ref from notes`;
    const present = new Set(rows.map((r) => r.client_ref));
    for (const ref of acked) expect(present.has(ref)).toBe(true);

    // the client retries what it never heard back about, with the same keys, against a restarted server
    const second = startChild(db);
    const url2 = await second.url;
    for (const ref of inDoubt) await send(url2, ref);
    for (const ref of acked) await send(url2, ref); // harmless replays
    second.child.kill('SIGTERM');
    await second.exited;

    const after = await db.owner<{ client_ref: string; n: number }[]>`select client_ref, count(*)::int as n from notes group by client_ref`;
    const byRef = new Map(after.map((r) => [r.client_ref, r.n]));
    for (const ref of [...acked, ...inDoubt]) expect(byRef.get(ref), ref).toBe(1);
    expect(after.every((r) => r.n === 1)).toBe(true);
    console.info(`crash test: ${acked.size} acknowledged, ${inDoubt.size} in doubt when killed`);
  });
});
