import { spawn, type ChildProcess } from 'node:child_process';
import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.js';
import { QUIET_ENV, asHeader, createFixtureTable, createTenant, seedPatients, type TestPrincipal } from './fixtures.js';

let db: TestDatabase;
let tenantId: string;
let patients: { id: string }[];
const children = new Set<ChildProcess>();

function startChild(): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, ['--import', 'tsx', 'test/modules/audit/child-server.ts'], {
    env: { ...process.env, DATABASE_URL: db.ownerUrl, DATABASE_APP_URL: db.appUrl, PORT: '0', HOST: '127.0.0.1', NODE_ENV: 'test', FEATURES: 'all', LOG_LEVEL: 'error', ...QUIET_ENV },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.add(child);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    child.stdout!.on('data', (d: Buffer) => {
      out += String(d);
      const m = /LISTENING (\S+)/.exec(out);
      if (m) resolve({ child, url: m[1]! });
    });
    child.stderr!.on('data', (d: Buffer) => {
      err += String(d);
      if (process.env.AUDIT_DEBUG) process.stderr.write(d);
    });
    child.once('exit', (code) => reject(new Error(`child exited ${code}: ${err.slice(0, 500)}`)));
  });
}

beforeAll(async () => {
  db = await createTestDatabase();
  await createFixtureTable(db.owner);
  tenantId = await createTenant(db.owner);
  patients = await seedPatients(db.owner, tenantId, 5);
});
afterAll(async () => {
  for (const c of children) c.kill('SIGKILL');
  await db?.drop();
});

describe('durability', () => {
  it('killing the process right after a response never loses that response’s events', async () => {
    const principal: TestPrincipal = { id: randomUUID(), tenantId, roles: ['PROVIDER'], permissions: ['patient:read', 'patient:write', 'patient:ssn:reveal'] };
    let answered = 0;
    for (let round = 0; round < 3; round++) {
      const { child, url } = await startChild();
      const exited = new Promise((r) => child.once('exit', r));
      const received: { requestId: string; kind: 'read' | 'write'; patientIds: string[] }[] = [];
      let killed = false;
      const requests = Array.from({ length: 24 }, async (_, i) => {
        const requestId = randomUUID();
        const write = i % 4 === 3;
        const ids = write ? [patients[i % 5]!.id] : patients.slice(0, 3).map((p) => p.id);
        const body = write
          ? { query: 'mutation W($id: UUID!, $n: String!) { fixtureRenamePatient(id: $id, name: $n) { id name } }', variables: { id: ids[0], n: `Name ${round}-${i}` } }
          : { query: 'query R($ids: [UUID!]!) { fixturePatients(ids: $ids) { id name ssn } }', variables: { ids } };
        try {
          const res = await fetch(`${url}/graphql`, {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'x-request-id': requestId, ...asHeader(principal) },
            body: JSON.stringify(body),
          });
          const json = (await res.json()) as { data?: Record<string, unknown> | null; errors?: unknown[] };
          if (process.env.AUDIT_DEBUG && json.errors) process.stderr.write(`${res.status} ${JSON.stringify(json.errors)}\n`);
          if (res.status === 200 && json.data && !json.errors) {
            received.push({ requestId, kind: write ? 'write' : 'read', patientIds: ids });
            // the moment the first PHI response is in our hands, the server dies
            if (!killed) {
              killed = true;
              child.kill('SIGKILL');
            }
          }
        } catch {
          // connection cut by the kill: no response, no promise made
        }
      });
      await Promise.all(requests);
      if (!killed) child.kill('SIGKILL'); // no successful response at all: fail below, don't hang
      await exited;
      expect(received.length).toBeGreaterThan(0);
      for (const r of received) {
        // (a read of several patients is one event naming them all; a write one event per patient)
        const rows = await db.owner<{ patient: string; action: string; outcome: string }[]>`
          select p.patient, action, outcome
            from audit_events, unnest(case when cardinality(patient_ids) = 0 then array[patient_id] else patient_ids end) as p(patient)
           where request_id = ${r.requestId}`;
        expect(rows.map((x) => x.patient).sort()).toEqual([...r.patientIds].sort());
        expect(rows.every((x) => x.outcome === 'allowed' && x.action === (r.kind === 'write' ? 'update' : 'read'))).toBe(true);
      }
      console.log(`durability round ${round}: ${received.length} responses received before/around SIGKILL, all with their audit events`);
      answered += received.length;
    }
    expect(answered).toBeGreaterThanOrEqual(3);
  }, 180_000); // three cold starts of the app in a child process
});
