import { randomUUID } from 'node:crypto';
import { bytea, pgTable, text, uuid } from 'drizzle-orm/pg-core';
import { encryptedColumn } from '../../../src/platform/crypto/index.js';
import type { TestDatabase } from '../../helpers/db.js';
import { enableTenantRls } from '../../helpers/rls.js';

/** A tenant-owned table with encrypted columns, as a module would declare it. */
export const testPatients = pgTable('crypto_test_patients', {
  id: uuid('id').primaryKey(),
  tenantId: uuid('tenant_id').notNull(),
  displayId: text('display_id').notNull(),
  ssn: encryptedColumn('ssn'),
  dateOfBirth: encryptedColumn('date_of_birth'),
  ssnIndex: bytea('ssn_index'),
});

/** Creates crypto_test_patients (with RLS, like a migrated module table) and `n` tenants; returns tenant ids. */
export async function createFixtures(db: TestDatabase, tenantCount: number): Promise<string[]> {
  await db.owner.unsafe(`
    create table crypto_test_patients (
      id uuid primary key,
      tenant_id uuid not null references tenants(id),
      display_id text not null,
      ssn bytea,
      date_of_birth bytea,
      ssn_index bytea
    );
    grant select, insert, update, delete on crypto_test_patients to carebase_app;
  `);
  await enableTenantRls(db.owner, 'crypto_test_patients');
  const ids: string[] = [];
  for (let i = 0; i < tenantCount; i++) {
    const id = randomUUID();
    await db.owner`insert into tenants (id, slug, name) values (${id}, ${`clinic-${id.slice(0, 8)}`}, ${`Clinic ${i}`})`;
    ids.push(id);
  }
  return ids;
}
