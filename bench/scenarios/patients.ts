/**
 * Patients bench helpers (wired into `npm run bench` by bench/run.ts):
 *
 *   seedPatients(pool, { tenantId, count, crypto })   fast bulk seeding with precomputed envelopes
 *   patientReadBody(id) / patientCreateBody(i) / patientSearchBody(prefix)   GraphQL request bodies
 *   rawPatientRead / rawPatientSearch / searchPrefixes   the raw SQL baselines and search inputs
 *   pglReadBody(id) / pglCreateBody(i)   the same read and create on the PostGraphile 5 peer
 *
 * Seeding: rows go in through the app role in tenant-scoped transactions
 * (RLS applies, so it works on any database role), 5,000 rows per
 * INSERT ... SELECT FROM unnest(...), 4 batches in parallel. SSNs are drawn from a pool of
 * `distinctSsns` values whose envelopes (full + last 4) and blind indexes
 * are computed once with the real FieldCrypto, so seeding 1M rows costs
 * `distinctSsns` encryptions, not a million. MRNs come from the tenant's
 * counter like the API's. Names are built from syllables (about 8,000
 * family names, with accents) so that a 3-letter prefix matches a small,
 * realistic share of a large tenant. Measured on the shared 2-core machine
 * (PostgreSQL 15, fsync off): ~3,000 rows/s with one batch at a time (1M in
 * 5.6 min), ~6,600 rows/s with 4 in parallel; the generated unaccent search
 * keys and seven indexes are most of the cost.
 */
import { createHash, randomInt } from 'node:crypto';
import type postgres from 'postgres';
import { formatMrn } from '../../src/modules/patients/mrn.js';
import { patients } from '../../src/modules/patients/tables.js';
import type { FieldCrypto } from '../../src/platform/crypto/index.js';
import { normalisers } from '../../src/platform/crypto/index.js';

const FAMILY_SYLLABLES = ['al', 'bé', 'car', 'dó', 'er', 'fin', 'gar', 'hal', 'ìn', 'jo', 'kel', 'lun', 'mar', 'nø', 'or', 'per', 'quin', 'ros', 'sán', 'tor'];
const GIVEN = ['Ana', 'Álvaro', 'Beatriz', 'Bruno', 'Carla', 'Cécile', 'Dario', 'Elena', 'Émile', 'Farah', 'Gustavo', 'Hana', 'Iñigo', 'Jasmine', 'Kofi', 'Lena', 'Mateo', 'Noor', 'Óscar', 'Priya', 'Quentin', 'Rosa', 'Søren', 'Tomás', 'Uma', 'Víctor', 'Wen', 'Ximena', 'Yusuf', 'Zoë'];

const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);

/** A deterministic family name for index i (about 8,000 distinct). */
export function familyName(i: number): string {
  const n = FAMILY_SYLLABLES.length;
  return cap(FAMILY_SYLLABLES[i % n]! + FAMILY_SYLLABLES[Math.floor(i / n) % n]! + FAMILY_SYLLABLES[Math.floor(i / (n * n)) % n]!);
}
export const givenName = (i: number) => GIVEN[(i * 7) % GIVEN.length]!;

/** A valid random SSN (area 001-665 or 667-899, group 01-99, serial 0001-9999). */
export function randomSsn(): string {
  let area = randomInt(1, 899);
  if (area === 666) area = 667;
  const g = randomInt(1, 100);
  const s = randomInt(1, 10_000);
  return `${String(area).padStart(3, '0')}-${String(g).padStart(2, '0')}-${String(s).padStart(4, '0')}`;
}

export interface SeedOptions {
  tenantId: string;
  count: number;
  /** the app's FieldCrypto (same key provider as the server under test, so it can decrypt) */
  crypto: FieldCrypto;
  /** SSN pool size (envelopes computed once each); 0 = no SSNs */
  distinctSsns?: number;
  batchSize?: number;
  /** batches inserted in parallel (each on its own connection; the pool needs at least this many) */
  concurrency?: number;
  onProgress?: (done: number) => void;
}

export interface SeedResult {
  ids: string[];
  /** the SSNs of the pool (to search by blind index) */
  ssns: string[];
  ms: number;
}

/** Bulk-inserts `count` patients into a tenant through the app role (RLS applies). */
export async function seedPatients(pool: postgres.Sql, opts: SeedOptions): Promise<SeedResult> {
  const started = Date.now();
  const batchSize = opts.batchSize ?? 5_000;
  const ssns = Array.from({ length: opts.distinctSsns ?? 1_000 }, randomSsn);
  const sealed = await Promise.all(
    ssns.map(async (ssn) => {
      const digits = normalisers.ssn(ssn);
      const [env, index] = await Promise.all([
        opts.crypto.encryptFields(patients, opts.tenantId, { ssn: digits, ssnLast4: digits.slice(-4) }),
        opts.crypto.blindIndex(digits, { tenantId: opts.tenantId, table: 'patients', column: 'ssn' }, normalisers.ssn),
      ]);
      return { ssn: (env.ssn as Buffer).toString('hex'), last4: (env.ssnLast4 as Buffer).toString('hex'), index: index.toString('hex') };
    }),
  );
  const ids: string[] = [];
  const starts = Array.from({ length: Math.ceil(opts.count / batchSize) }, (_, b) => b * batchSize);
  const insertBatch = async (done: number) => {
    const n = Math.min(batchSize, opts.count - done);
    // MRNs in their own short transaction, so that parallel batches do not queue on the counter row
    const first = await pool.begin(async (tx) => {
      await tx`select set_config('app.tenant_id', ${opts.tenantId}, true)`;
      const [c] = await tx<{ last: number }[]>`
        insert into patient_mrn_counters (tenant_id, last_value) values (${opts.tenantId}, ${n})
        on conflict (tenant_id) do update set last_value = patient_mrn_counters.last_value + ${n}
        returning last_value::int as last`;
      return c!.last - n + 1;
    });
    const inserted = await pool.begin(async (tx) => {
      await tx`select set_config('app.tenant_id', ${opts.tenantId}, true)`;
      const mrn: string[] = [];
      const given: string[] = [];
      const family: string[] = [];
      const dob: string[] = [];
      const phones: string[] = [];
      const digits: string[] = [];
      // bytea travels as hex text (postgres-js cannot serialise arrays of Buffers)
      const ssn: (string | null)[] = [];
      const last4: (string | null)[] = [];
      const index: (string | null)[] = [];
      for (let k = 0; k < n; k++) {
        const i = done + k;
        mrn.push(formatMrn(first + k));
        given.push(givenName(i));
        family.push(familyName(randomInt(0, 8_000)));
        dob.push(`${1930 + (i % 80)}-${String((i % 12) + 1).padStart(2, '0')}-${String((i % 28) + 1).padStart(2, '0')}`);
        const phone = `1212${String(5_550_000 + (i % 1_000_000)).padStart(7, '0')}`;
        phones.push(JSON.stringify([{ use: 'mobile', number: `+${phone}` }]));
        digits.push(phone);
        const s = sealed.length ? sealed[i % sealed.length]! : null;
        ssn.push(s?.ssn ?? null);
        last4.push(s?.last4 ?? null);
        index.push(s?.index ?? null);
      }
      return tx<{ id: string }[]>`
        insert into patients (tenant_id, mrn, given_name, family_name, date_of_birth, phones, phone_digits, ssn, ssn_last4, ssn_index)
        select ${opts.tenantId}, m, g, f, d::date, p::jsonb, array[pd], decode(s, 'hex'), decode(l, 'hex'), decode(x, 'hex')
          from unnest(${mrn}::text[], ${given}::text[], ${family}::text[], ${dob}::text[], ${phones}::text[], ${digits}::text[],
                      ${ssn}::text[], ${last4}::text[], ${index}::text[]) as u(m, g, f, d, p, pd, s, l, x)
        returning id`;
    });
    ids.push(...inserted.map((r) => r.id));
    opts.onProgress?.(ids.length);
  };
  const workers = Array.from({ length: Math.max(1, opts.concurrency ?? 4) }, async () => {
    for (let next = starts.shift(); next !== undefined; next = starts.shift()) await insertBatch(next);
  });
  await Promise.all(workers);
  return { ids, ssns, ms: Date.now() - started };
}

// ---------------------------------------------------------------- request bodies

const READ = `query PatientRead($id: UUID!) { patient(id: $id) { id mrn givenName familyName dateOfBirth ssnLast4 phones { number } address { city } version } }`;
const CREATE = `mutation PatientCreate($input: CreatePatientInput!) { createPatient(input: $input) { id mrn ssnLast4 version } }`;
const SEARCH = `query PatientSearch($filter: PatientSearchInput, $first: Int) { patients(filter: $filter, first: $first) { edges { node { id mrn givenName familyName dateOfBirth } } pageInfo { hasNextPage endCursor } } }`;

/** patient-read: one patient by id (JWT + RBAC/ABAC + RLS + audit). */
export const patientReadBody = (id: string) => JSON.stringify({ operationName: 'PatientRead', query: READ, variables: { id } });

/** patient-create: a new patient with an SSN (KMS envelope + blind index + audit + outbox). */
export function patientCreateBody(i: number): string {
  return JSON.stringify({
    operationName: 'PatientCreate',
    query: CREATE,
    variables: {
      input: {
        givenName: givenName(i),
        familyName: familyName(i),
        dateOfBirth: `${1940 + (i % 60)}-0${(i % 9) + 1}-1${i % 10}`,
        ssn: randomSsn(),
        phones: [{ use: 'MOBILE', number: `+1212555${String(i % 10_000).padStart(4, '0')}` }],
        email: `bench${i}@example.test`,
      },
    },
  });
}

/** patient search: a family-name prefix (or any PatientSearchInput). */
export function patientSearchBody(filter: string | Record<string, unknown>, first = 20): string {
  return JSON.stringify({ operationName: 'PatientSearch', query: SEARCH, variables: { filter: typeof filter === 'string' ? { familyName: filter } : filter, first } });
}

/** `count` 3-letter family-name prefixes that exist in seeded data (lower case, accents as seeded). */
export function searchPrefixes(count: number): string[] {
  return Array.from({ length: count }, (_, i) => familyName(i * 37).slice(0, 3));
}

// ---------------------------------------------------------------- PostGraphile 5 peer (bench/servers/postgraphile.ts)

const PGL_READ = `query PglPatientRead($id: UUID!) { patientByRowId(rowId: $id) { rowId mrn givenName familyName dateOfBirth ssnLast4 phones address version } }`;
const PGL_CREATE = `mutation PglPatientCreate($input: CreatePatientInput!) { createPatient(input: $input) { patient { rowId mrn ssnLast4 version } } }`;
const b64 = (s: string | Buffer) => (typeof s === 'string' ? Buffer.from(s) : s).toString('base64');

/** The peer's read by primary key (PostGraphile's row-by-unique field) with the columns patient-read selects. */
export const pglReadBody = (id: string) => JSON.stringify({ operationName: 'PglPatientRead', query: PGL_READ, variables: { id } });

/**
 * The peer's create (PostGraphile's create mutation) with what createPatient stores: names, date of birth, one
 * phone (and its digits, which Carebase derives), email and an SSN in plain bytes (digits, last 4, SHA-256 as
 * the blind-index column) where Carebase stores envelopes and an HMAC. The MRN and id are column defaults.
 */
export function pglCreateBody(i: number): string {
  const ssn = randomSsn().replaceAll('-', '');
  const phone = `1212555${String(i % 10_000).padStart(4, '0')}`;
  return JSON.stringify({
    operationName: 'PglPatientCreate',
    query: PGL_CREATE,
    variables: {
      input: {
        patient: {
          givenName: givenName(i),
          familyName: familyName(i),
          dateOfBirth: `${1940 + (i % 60)}-0${(i % 9) + 1}-1${i % 10}`,
          phones: [{ use: 'mobile', number: `+${phone}` }],
          phoneDigits: [phone],
          email: `bench${i}@example.test`,
          ssn: b64(ssn),
          ssnLast4: b64(ssn.slice(-4)),
          ssnIndex: b64(createHash('sha256').update(ssn).digest()),
        },
      },
    },
  });
}

// ---------------------------------------------------------------- raw SQL baselines

/** What patient-read needs from the database, through postgres-js, without the stack. */
export async function rawPatientRead(pool: postgres.Sql, tenantId: string, id: string) {
  return pool.begin(async (tx) => {
    await tx`select set_config('app.tenant_id', ${tenantId}, true)`;
    return tx`select id, mrn, given_name, family_name, date_of_birth, ssn_last4, phones, address, version from patients where tenant_id = ${tenantId} and id = ${id}`;
  });
}

/** The search query the API runs for a family-name prefix (same index range, order and limit). */
export async function rawPatientSearch(pool: postgres.Sql, tenantId: string, prefix: string, first = 20) {
  return pool.begin(async (tx) => {
    await tx`select set_config('app.tenant_id', ${tenantId}, true)`;
    return tx`
      select id, mrn, given_name, family_name, date_of_birth from patients
       where tenant_id = ${tenantId}
         and family_norm >= carebase_search_norm(${prefix}) and family_norm < carebase_search_norm(${prefix}) || U&'\\+10FFFF'
         and status <> 'merged'
       order by family_norm, given_norm, id limit ${first + 1}`;
  });
}

/**
 * The "bare Apollo + SQL" baseline: the same GraphQL operations (PatientRead, PatientCreate) on a plain Apollo
 * server whose resolvers run the equivalent SQL through postgres-js (a tenant transaction with set_config, so RLS
 * applies; the create takes an MRN from the counter and inserts the row). No JWT, RBAC/ABAC, validation, field
 * encryption, blind index, audit or outbox: the SSN is not stored, only its last 4 digits echoed.
 */
export const BARE_TYPE_DEFS = `
  scalar UUID
  type Phone { use: String number: String! }
  type Address { city: String }
  type Patient { id: ID! mrn: String! givenName: String! familyName: String! dateOfBirth: String! ssnLast4: String phones: [Phone!]! address: Address version: Int! }
  input PhoneInput { use: String number: String! }
  input CreatePatientInput { givenName: String! familyName: String! dateOfBirth: String! ssn: String phones: [PhoneInput!] email: String }
  type Query { patient(id: UUID!): Patient }
  type Mutation { createPatient(input: CreatePatientInput!): Patient! }
`;

type BareRow = { id: string; mrn: string; given_name: string; family_name: string; date_of_birth: string | Date; phones: unknown; address: unknown; version: number };
const bareView = (r: BareRow, last4: string | null = null) => ({
  id: r.id,
  mrn: r.mrn,
  givenName: r.given_name,
  familyName: r.family_name,
  dateOfBirth: r.date_of_birth instanceof Date ? r.date_of_birth.toISOString().slice(0, 10) : r.date_of_birth,
  ssnLast4: last4,
  phones: r.phones ?? [],
  address: r.address,
  version: r.version,
});

export function bareResolvers(pool: postgres.Sql, tenantId: string) {
  return {
    Query: {
      patient: async (_: unknown, { id }: { id: string }) => {
        const [r] = await rawPatientRead(pool, tenantId, id);
        return r ? bareView(r as unknown as BareRow) : null;
      },
    },
    Mutation: {
      createPatient: async (_: unknown, { input }: { input: { givenName: string; familyName: string; dateOfBirth: string; ssn?: string; phones?: unknown[]; email?: string } }) =>
        pool.begin(async (tx) => {
          await tx`select set_config('app.tenant_id', ${tenantId}, true)`;
          const [c] = await tx<{ last: number }[]>`
            insert into patient_mrn_counters (tenant_id, last_value) values (${tenantId}, 1)
            on conflict (tenant_id) do update set last_value = patient_mrn_counters.last_value + 1 returning last_value::int as last`;
          const [r] = await tx<BareRow[]>`
            insert into patients (tenant_id, mrn, given_name, family_name, date_of_birth, email, phones)
            values (${tenantId}, ${formatMrn(c!.last)}, ${input.givenName}, ${input.familyName}, ${input.dateOfBirth}::date, ${input.email ?? null}, ${tx.json((input.phones ?? []) as never)})
            returning id, mrn, given_name, family_name, date_of_birth, phones, address, version`;
          return bareView(r!, input.ssn ? input.ssn.slice(-4) : null);
        }),
    },
  };
}
