import { randomUUID } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import auditModule from '../../../src/modules/audit/index.js';
import identityModule from '../../../src/modules/identity/index.js';
import { auditWriterFor } from '../../../src/platform/audit/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { QUIET_ENV, asHeader, createFixtureTable, createTenant, fixturePatientsModule, seedPatients, testAuthModule } from './fixtures.js';

let t: TestApp;
beforeAll(async () => {
  // a tiny request pool: every connection ends up held by a request that waits for its audit batch
  t = await startTestApp({ env: { ...QUIET_ENV, DATABASE_POOL_MAX: '2' }, modules: [identityModule, testAuthModule, auditModule, fixturePatientsModule] });
  await createFixtureTable(t.db.owner);
});
afterAll(async () => {
  await t?.close();
});

describe('group commit under a full pool', () => {
  it('requests that hold every pool connection while waiting for their batch still complete (the writer has its own connections)', async () => {
    const tenantId = await createTenant(t.db.owner);
    const patients = await seedPatients(t.db.owner, tenantId, 2);
    const headers = asHeader({ id: randomUUID(), tenantId, roles: ['PROVIDER'], permissions: ['patient:read', 'patient:ssn:reveal'] });
    const before = auditWriterFor(t.db.sql).stats();
    const results = await Promise.all(
      Array.from({ length: 12 }, () =>
        t.gql<{ fixturePatients: unknown[] }>('query Q($ids: [UUID!]!) { fixturePatients(ids: $ids) { name ssn } }', { ids: patients.map((p) => p.id) }, headers),
      ),
    );
    for (const r of results) {
      expect(r.body.errors).toBeUndefined();
      expect(r.body.data?.fixturePatients).toHaveLength(2);
    }
    const after = auditWriterFor(t.db.sql).stats();
    expect(after.requests - before.requests).toBe(12);
    expect(after.failures).toBe(before.failures);
    console.log(`12 concurrent reads on a 2-connection pool: ${after.batches - before.batches} batches`);
  });
});
