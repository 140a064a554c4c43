import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { patients } from '../../../src/modules/patients/index.js';
import { isValidMrn } from '../../../src/modules/patients/mrn.js';
import { MASKING, maskProfile } from '../../../src/modules/patients/policy.js';
import { withTenant } from '../../../src/platform/db/index.js';
import { startTestApp, type TestApp } from '../../helpers/app.js';
import { createTenantWithAdmin, createUser, loginAs, userSession, adminSession, type AuthSession, type TestTenant, type TestUser } from '../../helpers/auth.js';
import { ASSIGN, basePatient, CREATE, firstError, GET, gqlAs, ok, patientModules, patientTestEnv, REVEAL, SEARCH, UPDATE } from './helpers.js';

/**
 * The patients module over HTTP with real sign-ins: create/update/search/
 * reveal per role, masking, care-team / break-glass / patient-self access,
 * tenant isolation (also with the tenant filter removed: RLS), validation,
 * optimistic concurrency, merge, audit events, no SSN in logs or errors.
 */

let t: TestApp;
let clinic: TestTenant;
let other: TestTenant;
const s: Record<string, AuthSession> = {};
let providerUser: TestUser;
let nurseUser: TestUser;
let patientUser: TestUser;
/** every SSN this file sends, to look for in logs and bodies */
const ssns: string[] = [];

type P = Record<string, unknown> & { id: string; version: number; mrn: string };
const as = (who: string) => gqlAs(t, s[who]!.headers);

async function create(who: string, over: Record<string, unknown> = {}): Promise<P> {
  const input = basePatient(over);
  if (typeof input.ssn === 'string') ssns.push(input.ssn);
  return ok(await as(who)<{ createPatient: P }>(CREATE, { input })).createPatient;
}

async function auditRows(where: { patientId?: string; action?: string }) {
  return t.db.owner<{ action: string; outcome: string; purpose_of_use: string | null; fields: string[]; categories: string[]; actor_id: string; detail: Record<string, unknown> }[]>`
    select action, outcome, purpose_of_use, fields, categories, actor_id, detail from audit_events
     where (${where.patientId ?? null}::uuid is null or patient_id = ${where.patientId ?? null}::uuid)
       and (${where.action ?? null}::text is null or action = ${where.action ?? null})
     order by at, seq`;
}

beforeAll(async () => {
  t = await startTestApp({ modules: patientModules, env: patientTestEnv });
  clinic = await createTenantWithAdmin(t);
  other = await createTenantWithAdmin(t);
  s.admin = await adminSession(t, clinic);
  await adminSession(t, other); // signed in once (TOTP enrolment) before the parallel invitations below
  providerUser = await createUser(t, clinic, 'PROVIDER');
  nurseUser = await createUser(t, clinic, 'NURSE');
  patientUser = await createUser(t, clinic, 'PATIENT');
  const [frontDesk, billing, provider, provider2, nurse, patient, otherDesk, otherBilling] = await Promise.all([
    userSession(t, clinic, 'FRONT_DESK'),
    userSession(t, clinic, 'BILLING'),
    loginAs(t, providerUser),
    userSession(t, clinic, 'PROVIDER'),
    loginAs(t, nurseUser),
    loginAs(t, patientUser),
    userSession(t, other, 'FRONT_DESK'),
    userSession(t, other, 'BILLING'),
  ]);
  Object.assign(s, { frontDesk, billing, provider, provider2, nurse, patient, otherDesk, otherBilling });
}, 180_000);

afterAll(async () => {
  await t?.close();
});

describe('create and read per role', () => {
  let p: P;
  beforeAll(async () => {
    p = await create('frontDesk', { ssn: '123-45-6780' });
  });

  it('front desk creates a patient: generated MRN with a check digit, version 1, SSN only masked', async () => {
    expect(isValidMrn(p.mrn)).toBe(true);
    expect(p.mrn).toMatch(/^\d{8}$/);
    expect(p.version).toBe(1);
    expect(p).toMatchObject({ givenName: 'Zoë', familyName: 'Ångström', dateOfBirth: '1984-02-29', hasSsn: true, ssnLast4: '6780', ssnMasked: '***-**-6780' });
    expect(p.phones).toEqual([{ use: 'MOBILE', number: '+14155550134' }]);
    // front desk: partial address (no street, postal code cut), full insurance
    expect(p.address).toEqual({ line1: null, line2: null, city: 'Oakland', state: 'CA', postalCode: '946**', country: 'US' });
    expect(p.insurance).toMatchObject({ memberId: 'XJ4455221' });
    const second = await create('frontDesk', { givenName: 'Second' });
    expect(isValidMrn(second.mrn)).toBe(true);
    expect(Number(second.mrn.slice(0, 7))).toBe(Number(p.mrn.slice(0, 7)) + 1);
  });

  it('concurrent registrations get distinct MRNs; the counter cannot be taken inside a tenant transaction', async () => {
    const made = await Promise.all(Array.from({ length: 12 }, (_, i) => create('frontDesk', { givenName: `Burst ${'ABCDEFGHIJKL'[i]}` })));
    const counters = made.map((m) => Number(m.mrn.slice(0, 7)));
    expect(new Set(counters).size).toBe(12);
    expect(made.every((m) => isValidMrn(m.mrn))).toBe(true);
    // carebase_next_mrns sets the tenant and an asynchronous commit for its own transaction: refused inside a request's
    await expect(
      t.db.sql.begin(async (tx) => {
        await tx`select set_config('app.tenant_id', ${clinic.id}, true)`;
        await tx`select carebase_next_mrns(${clinic.id}, 1)`;
      }),
    ).rejects.toThrow(/own transaction/);
  });

  it('every role sees exactly its row of the masking table', async () => {
    await ok(await as('frontDesk')(ASSIGN, { patientId: p.id, userId: providerUser.id, role: 'PRIMARY_PROVIDER' }));
    const roles: [string, string][] = [['frontDesk', 'FRONT_DESK'], ['billing', 'BILLING'], ['provider', 'PROVIDER'], ['admin', 'ADMIN']];
    for (const [who, role] of roles) {
      const got = ok(await as(who)<{ patient: P & { masking: { field: string; level: string }[] } }>(GET, { id: p.id })).patient;
      const expected = maskProfile([role]);
      expect(Object.fromEntries(got.masking.map((m) => [m.field, m.level.toLowerCase()])), role).toEqual(expected);
      expect(expected).toEqual(MASKING[role as keyof typeof MASKING]);
      // what each level means on the wire
      expect(got.dateOfBirth === null, role).toBe(expected.dateOfBirth !== 'full');
      expect(got.birthYear, role).toBe(expected.dateOfBirth === 'hidden' ? null : 1984);
      expect(got.ssnLast4, role).toBe(expected.ssn === 'hidden' ? null : '6780');
      expect(got.hasSsn, role).toBe(expected.ssn === 'hidden' ? null : true);
      expect(got.genderIdentity, role).toBe(expected.genderIdentity === 'full' ? 'woman' : null);
      const address = got.address as Record<string, unknown> | null;
      if (expected.address === 'hidden') expect(address, role).toBeNull();
      else expect(address?.line1, role).toBe(expected.address === 'full' ? '12 Harbor Way' : null);
      const insurance = got.insurance as Record<string, unknown> | null;
      if (expected.insurance === 'hidden') expect(insurance, role).toBeNull();
      else expect(insurance?.memberId, role).toBe(expected.insurance === 'full' ? 'XJ4455221' : null);
      const ec = got.emergencyContact as Record<string, unknown> | null;
      if (expected.emergencyContact === 'hidden') expect(ec, role).toBeNull();
      else expect(ec?.phone, role).toBe(expected.emergencyContact === 'full' ? '+14155550188' : null);
      const email = got.email as string | null;
      expect(email, role).toBe(expected.contact === 'full' ? 'zoe.angstrom@example.test' : expected.contact === 'partial' ? 'z***@example.test' : null);
      // never the full SSN on a patient read
      expect(JSON.stringify(got)).not.toContain('123-45-6780');
      expect(JSON.stringify(got)).not.toContain('123456780');
    }
  });

  it('providers and nurses read only patients on their care team; front desk assigns them', async () => {
    const q = await create('frontDesk', { givenName: 'Carol' });
    expect(firstError(await as('provider2')(GET, { id: q.id })).extensions?.code).toBe('FORBIDDEN');
    expect(firstError(await as('nurse')(GET, { id: q.id })).extensions?.code).toBe('FORBIDDEN');
    const team = ok(await as('frontDesk')<{ assignCareTeamMember: { userId: string; role: string }[] }>(ASSIGN, { patientId: q.id, userId: nurseUser.id, role: 'NURSE' }));
    expect(team.assignCareTeamMember).toEqual([{ userId: nurseUser.id, role: 'NURSE' }]);
    const read = ok(await as('nurse')<{ patient: P }>(GET, { id: q.id })).patient;
    expect(read.careTeam).toEqual([{ userId: nurseUser.id, role: 'NURSE', displayName: expect.any(String) }]);
    // a nurse cannot hold a provider role on the team
    const bad = firstError(await as('frontDesk')(ASSIGN, { patientId: q.id, userId: nurseUser.id, role: 'PRIMARY_PROVIDER' }));
    expect(bad.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'userId' });
    // removing the nurse closes access again
    ok(await as('frontDesk')(`mutation($p: UUID!, $u: UUID!) { removeCareTeamMember(patientId: $p, userId: $u) { userId } }`, { p: q.id, u: nurseUser.id }));
    expect(firstError(await as('nurse')(GET, { id: q.id })).extensions?.code).toBe('FORBIDDEN');
    // the refusal is in the audit log, naming the patient
    const denied = (await auditRows({ patientId: q.id })).filter((r) => r.outcome === 'denied');
    expect(denied.length).toBeGreaterThanOrEqual(3);
  });

  it('break-glass opens one patient to a provider outside the care team, audited as ETREAT', async () => {
    const q = await create('frontDesk', { givenName: 'Emergency' });
    expect(firstError(await as('provider2')(GET, { id: q.id })).extensions?.code).toBe('FORBIDDEN');
    ok(
      await as('provider2')(`mutation($input: InvokeBreakGlassInput!) { invokeBreakGlass(input: $input) { id } }`, {
        input: { patientId: q.id, reason: 'unconscious patient in the emergency room' },
      }),
    );
    const got = ok(await as('provider2')<{ patient: P }>(GET, { id: q.id })).patient;
    expect(got.id).toBe(q.id);
    const reads = (await auditRows({ patientId: q.id, action: 'read' })).filter((r) => r.outcome === 'allowed' && r.actor_id === s.provider2!.user.id);
    expect(reads.at(-1)?.purpose_of_use).toBe('ETREAT');
    // break-glass never opens the SSN
    expect(got.ssnLast4).toBeNull();
  });

  it('a PATIENT user reads only the record linked to their account', async () => {
    const mine = await create('frontDesk', { givenName: 'Pat', familyName: 'Selfton', ssn: '219-44-1234' });
    const notMine = await create('frontDesk', { givenName: 'Other', familyName: 'Selfton' });
    expect(firstError(await as('patient')(GET, { id: mine.id })).extensions?.code).toBe('FORBIDDEN');
    // only tenant-wide writers link accounts
    const link = `mutation($p: UUID!, $u: UUID) { linkPatientUser(patientId: $p, userId: $u) { id linkedUserId } }`;
    expect(firstError(await as('provider')(link, { p: mine.id, u: patientUser.id })).extensions?.code).toBe('FORBIDDEN');
    expect(ok(await as('frontDesk')<{ linkPatientUser: { linkedUserId: string } }>(link, { p: mine.id, u: patientUser.id })).linkPatientUser.linkedUserId).toBe(patientUser.id);
    // one account, one record
    expect(firstError(await as('frontDesk')(link, { p: notMine.id, u: patientUser.id })).extensions?.code).toBe('CONFLICT');
    const own = ok(await as('patient')<{ patient: P }>(GET, { id: mine.id })).patient;
    expect(own).toMatchObject({ givenName: 'Pat', ssnLast4: '1234', dateOfBirth: '1984-02-29' });
    expect(ok(await as('patient')<{ myPatientRecord: { id: string } }>(`{ myPatientRecord { id } }`)).myPatientRecord.id).toBe(mine.id);
    expect(firstError(await as('patient')(GET, { id: notMine.id })).extensions?.code).toBe('FORBIDDEN');
    const found = ok(await as('patient')<{ patients: { edges: { node: { id: string } }[] } }>(SEARCH, { filter: { familyName: 'selfton' } })).patients.edges;
    expect(found.map((e) => e.node.id)).toEqual([mine.id]);
    // patients cannot write
    expect(firstError(await as('patient')(UPDATE, { id: mine.id, version: 2, input: { language: 'es' } })).extensions?.code).toBe('FORBIDDEN');
    ssns.push('219-44-1234');
  });
});

describe('update', () => {
  it('changes only the given fields, bumps the version and clears with null', async () => {
    const p = await create('frontDesk', { ssn: '321-54-9876' });
    const u = ok(await as('frontDesk')<{ updatePatient: P }>(UPDATE, { id: p.id, version: 1, input: { preferredName: 'Zo', email: null, ssn: '321-54-9877', phones: [{ use: 'HOME', number: '+44 20 7946 0958' }] } })).updatePatient;
    ssns.push('321-54-9877');
    expect(u).toMatchObject({ version: 2, preferredName: 'Zo', email: null, ssnLast4: '9877', givenName: 'Zoë', phones: [{ use: 'HOME', number: '+442079460958' }] });
    const d = ok(await as('frontDesk')<{ updatePatient: P }>(UPDATE, { id: p.id, version: 2, input: { status: 'DECEASED', deceasedDate: '2020-01-02' } })).updatePatient;
    expect(d).toMatchObject({ status: 'DECEASED', deceasedDate: '2020-01-02', version: 3 });
    const bad = firstError(await as('frontDesk')(UPDATE, { id: p.id, version: 3, input: { deceasedDate: '1970-01-01' } }));
    expect(bad.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'deceasedDate' });
    const events = await t.db.owner<{ type: string; payload: Record<string, unknown> }[]>`
      select type, payload from outbox where aggregate_id = ${p.id} order by created_at`;
    expect(events.map((e) => e.type)).toEqual(['patient.created', 'patient.updated', 'patient.updated']);
    // ids and numbers only
    for (const e of events) for (const v of Object.values(e.payload)) expect(typeof v === 'number' || /^[0-9a-f-]{36}$/.test(String(v))).toBe(true);
  });

  it('two concurrent updates from the same version: one wins, the other gets CONFLICT and changes nothing', async () => {
    const p = await create('frontDesk');
    const [a, b] = await Promise.all([
      as('frontDesk')<{ updatePatient: P }>(UPDATE, { id: p.id, version: 1, input: { language: 'fr' } }),
      as('admin')<{ updatePatient: P }>(UPDATE, { id: p.id, version: 1, input: { language: 'de' } }),
    ]);
    const results = [a, b];
    const winners = results.filter((r) => !r.body.errors);
    const losers = results.filter((r) => r.body.errors);
    expect(winners).toHaveLength(1);
    expect(losers).toHaveLength(1);
    expect(losers[0]!.body.errors![0]!.extensions).toMatchObject({ code: 'CONFLICT', currentVersion: 2 });
    const now = ok(await as('frontDesk')<{ patient: P }>(GET, { id: p.id })).patient;
    expect(now.version).toBe(2);
    expect(now.language).toBe(winners[0] === a ? 'fr' : 'de');
    // a stale version afterwards is refused too
    expect(firstError(await as('frontDesk')(UPDATE, { id: p.id, version: 1, input: { language: 'it' } })).extensions?.code).toBe('CONFLICT');
  });

  it('providers update only patients on their care team; billing never', async () => {
    const p = await create('frontDesk');
    expect(firstError(await as('provider2')(UPDATE, { id: p.id, version: 1, input: { language: 'es' } })).extensions?.code).toBe('FORBIDDEN');
    expect(firstError(await as('billing')(UPDATE, { id: p.id, version: 1, input: { language: 'es' } })).extensions?.code).toBe('FORBIDDEN');
    const mine = await create('provider2', { givenName: 'Walkin' });
    // a provider who registers a patient is on their care team
    expect(mine.careTeam).toEqual([expect.objectContaining({ userId: s.provider2!.user.id, role: 'PROVIDER' })]);
    expect(ok(await as('provider2')<{ updatePatient: P }>(UPDATE, { id: mine.id, version: 1, input: { language: 'es' } })).updatePatient.language).toBe('es');
  });
});

describe('validation', () => {
  const cases: [string, Record<string, unknown>, string][] = [
    ['SSN format', { ssn: '12-345-6789' }, 'ssn'],
    ['SSN area 000', { ssn: '000-12-3456' }, 'ssn'],
    ['SSN area 666', { ssn: '666-12-3456' }, 'ssn'],
    ['SSN area 9xx', { ssn: '912-12-3456' }, 'ssn'],
    ['SSN group 00', { ssn: '123-00-4567' }, 'ssn'],
    ['SSN serial 0000', { ssn: '123-45-0000' }, 'ssn'],
    ['DOB not a calendar date', { dateOfBirth: '1990-02-30' }, 'dateOfBirth'],
    ['DOB in the future', { dateOfBirth: '2999-01-01' }, 'dateOfBirth'],
    ['DOB format', { dateOfBirth: '02/03/1990' }, 'dateOfBirth'],
    ['email', { email: 'zoe at example' }, 'email'],
    ['phone', { phones: [{ number: '555-01' }] }, 'phones.0.number'],
    ['phone (NANP exchange)', { phones: [{ number: '415-055-0134' }] }, 'phones.0.number'],
    ['emergency phone', { emergencyContact: { name: 'Mia', relationship: 'sister', phone: 'call me' } }, 'emergencyContact.phone'],
    ['ZIP code', { address: { line1: '1 Main St', city: 'Oakland', postalCode: '9460' } }, 'address.postalCode'],
    ['name', { givenName: '<script>' }, 'givenName'],
  ];
  it.each(cases)('%s: BAD_USER_INPUT naming the field, value not echoed, nothing written', async (_name, over, field) => {
    const before = (await t.db.owner<{ n: number }[]>`select count(*)::int as n from patients`)[0]!.n;
    const res = await as('frontDesk')(CREATE, { input: basePatient(over) });
    const err = firstError(res);
    expect(err.extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
    const body = JSON.stringify(res.body);
    for (const v of Object.values(over).flatMap((v) => (typeof v === 'string' ? [v] : [JSON.stringify(v)]))) {
      if (typeof v === 'string' && v.length > 3 && !v.startsWith('{') && !v.startsWith('[')) expect(body).not.toContain(v);
    }
    const after = (await t.db.owner<{ n: number }[]>`select count(*)::int as n from patients`)[0]!.n;
    expect(after).toBe(before);
    if (typeof over.ssn === 'string') ssns.push(over.ssn);
  });

  it('search filters are validated too', async () => {
    expect(firstError(await as('frontDesk')(SEARCH, { filter: { ssn: '000-00-0000' } })).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'filter.ssn' });
    expect(firstError(await as('frontDesk')(SEARCH, { filter: { mrn: '12345678' } })).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'filter.mrn' });
    expect(firstError(await as('frontDesk')(SEARCH, { filter: { dateOfBirth: '1990-13-01' } })).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'filter.dateOfBirth' });
    expect(firstError(await as('frontDesk')(SEARCH, { first: 1000 })).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
  });
});

describe('search', () => {
  const family = `Nuñez-Ærø${Date.now().toString(36).replace(/\d/g, (d) => 'abcdefghij'[Number(d)]!)}`;
  const made: P[] = [];
  beforeAll(async () => {
    const givens = ['Ana', 'Álvaro', 'Beatriz', 'Bruno', 'Carla', 'Cécile', 'Dario'];
    for (const [i, g] of givens.entries()) {
      made.push(await create('frontDesk', { familyName: family, givenName: g, dateOfBirth: `1990-01-0${i + 1}`, phones: [{ use: 'MOBILE', number: `+1 (212) 555-01${10 + i}` }], ssn: `501-23-45${10 + i}` }));
    }
  });
  const search = async (who: string, filter: Record<string, unknown>, first?: number, after?: string) =>
    ok(await as(who)<{ patients: { edges: { cursor: string; node: { id: string; givenName: string } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } } }>(SEARCH, { filter, first, after })).patients;

  it('name prefix, case and accent insensitive, ordered by family then given name', async () => {
    const prefix = family.slice(0, 8).toUpperCase().replace('Ñ', 'N'); // NUNEZ-AE...
    const r = await search('frontDesk', { familyName: prefix.normalize('NFD').replace(/\p{M}/gu, '') });
    expect(r.edges.map((e) => e.node.givenName)).toEqual(['Álvaro', 'Ana', 'Beatriz', 'Bruno', 'Carla', 'Cécile', 'Dario']);
    const both = await search('frontDesk', { name: `${family.toLowerCase()}, ce` });
    expect(both.edges.map((e) => e.node.givenName)).toEqual(['Cécile']);
    const given = await search('frontDesk', { givenName: 'alv', familyName: 'nunez' });
    expect(given.edges.map((e) => e.node.givenName)).toEqual(['Álvaro']);
  });

  it('keyset pagination walks every match once', async () => {
    const seen: string[] = [];
    let after: string | undefined;
    for (let i = 0; i < 10; i++) {
      const page = await search('frontDesk', { familyName: family }, 3, after);
      seen.push(...page.edges.map((e) => e.node.givenName));
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor!;
    }
    expect(seen).toEqual(['Álvaro', 'Ana', 'Beatriz', 'Bruno', 'Carla', 'Cécile', 'Dario']);
    expect(firstError(await as('frontDesk')(SEARCH, { filter: { familyName: family }, after: 'bm9wZQ' })).extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
  });

  it('exact DOB, MRN, phone (any format) and SSN (blind index)', async () => {
    expect((await search('frontDesk', { dateOfBirth: '1990-01-03', familyName: family })).edges.map((e) => e.node.givenName)).toEqual(['Beatriz']);
    expect((await search('frontDesk', { mrn: made[3]!.mrn })).edges.map((e) => e.node.id)).toEqual([made[3]!.id]);
    expect((await search('frontDesk', { phone: '212.555.0114' })).edges.map((e) => e.node.id)).toEqual([made[4]!.id]);
    expect((await search('frontDesk', { ssn: '501234515' })).edges.map((e) => e.node.id)).toEqual([made[5]!.id]);
    for (let i = 0; i < 7; i++) ssns.push(`501-23-45${10 + i}`);
    // the search itself is audited with the filter names, never values
    const logged = await t.db.owner<{ fields: string[] }[]>`
      select fields from audit_events where patient_id is null and action = 'read' and 'Patient.ssn' = any(fields) and tenant_id = ${clinic.id}`;
    expect(logged.length).toBeGreaterThan(0);
  });

  it('a page fetches the columns its selection reads: contact and SSN fields through aliases and fragments still answer', async () => {
    type Node = { id: string; givenName: string; e?: string | null; phones?: { number: string }[]; ssnMasked?: string | null; address?: unknown };
    type Page = { patients: { edges: { node: Node }[] } };
    const q = `query Q($f: PatientSearchInput) { patients(filter: $f, first: 1) { edges { node { id givenName ...Contact ... on Patient { ssnMasked } } } } }
      fragment Contact on Patient { e: email phones { number } }`;
    const [withContact] = ok(await as('frontDesk')<Page>(q, { f: { familyName: family, givenName: 'Ana' } })).patients.edges.map((e) => e.node);
    expect(withContact!.phones).toEqual([{ number: expect.stringContaining('555') }]);
    expect(withContact!.ssnMasked).toMatch(/^\*\*\*-\*\*-\d{4}$/);
    // names only: the same patient, the same names
    const [names] = (await search('frontDesk', { familyName: family, givenName: 'Ana' })).edges.map((e) => e.node);
    expect(names).toMatchObject({ id: withContact!.id, givenName: withContact!.givenName, familyName: family, dateOfBirth: '1990-01-01' });
    // every other column a field reads
    const meta = `query Q($f: PatientSearchInput) { patients(filter: $f, first: 1) { edges { node { __typename status version createdAt updatedAt hasSsn birthYear masking { field level } } } } }`;
    const [m] = ok(await as('frontDesk')<{ patients: { edges: { node: Record<string, unknown> }[] } }>(meta, { f: { familyName: family, givenName: 'Ana' } })).patients.edges.map((e) => e.node);
    expect(m).toMatchObject({ __typename: 'Patient', status: 'ACTIVE', version: 1, createdAt: expect.any(String), updatedAt: expect.any(String), hasSsn: true, birthYear: 1990 });
  });

  it('providers find only their care team; other clinics find nothing', async () => {
    expect((await search('provider2', { familyName: family })).edges).toEqual([]);
    await ok(await as('frontDesk')(ASSIGN, { patientId: made[6]!.id, userId: s.provider2!.user.id, role: 'PROVIDER' }));
    expect((await search('provider2', { familyName: family })).edges.map((e) => e.node.id)).toEqual([made[6]!.id]);
    expect((await search('otherDesk', { familyName: family })).edges).toEqual([]);
    expect((await search('otherDesk', { mrn: made[0]!.mrn })).edges.map((e) => e.node.id)).not.toContain(made[0]!.id);
    expect((await search('otherDesk', { ssn: '501-23-4510' })).edges).toEqual([]);
  });
});

describe('SSN reveal', () => {
  let p: P;
  beforeAll(async () => {
    p = await create('frontDesk', { ssn: '078-12-3456' });
  });

  it('billing reveals with purpose and reason: full SSN, audited as a reveal with the purpose, reason kept for compliance', async () => {
    const r = ok(await as('billing')<{ revealPatientSsn: { ssn: string; revealId: string } }>(REVEAL, { patientId: p.id, purpose: 'HPAYMT', reason: 'claim rejected: payer needs SSN' }));
    expect(r.revealPatientSsn.ssn).toBe('078-12-3456');
    const ev = (await auditRows({ patientId: p.id, action: 'reveal' })).filter((e) => e.outcome === 'allowed');
    expect(ev).toHaveLength(1);
    expect(ev[0]).toMatchObject({ purpose_of_use: 'HPAYMT', categories: ['ssn'], actor_id: s.billing!.user.id, detail: { revealId: r.revealPatientSsn.revealId } });
    expect(ev[0]!.fields).toContain('Patient.ssn');
    const [rec] = await t.db.owner<{ reason: string; purpose_of_use: string }[]>`select reason, purpose_of_use from patient_ssn_reveals where id = ${r.revealPatientSsn.revealId}`;
    expect(rec).toEqual({ reason: 'claim rejected: payer needs SSN', purpose_of_use: 'HPAYMT' });
    // the reason is not in the audit event (free text stays in patient_ssn_reveals)
    expect(JSON.stringify(ev)).not.toContain('claim rejected');
  });

  it('refused without the permission, without a purpose or without a reason; each refusal audited as denied', async () => {
    const attempts: [string, Record<string, unknown>, string | undefined][] = [
      ['frontDesk', { purpose: 'HOPERAT', reason: 'verify identity at check-in' }, undefined],
      ['provider', { purpose: 'TREAT', reason: 'need it for the referral' }, undefined],
      ['billing', { reason: 'claim rejected: payer needs SSN' }, 'PURPOSE_REQUIRED'],
      ['billing', { purpose: 'HPAYMT', reason: 'x' }, 'REASON_REQUIRED'],
      ['billing', { purpose: 'HPAYMT' }, 'REASON_REQUIRED'],
      ['otherBilling', { purpose: 'HPAYMT', reason: 'claim rejected: payer needs SSN' }, undefined],
    ];
    const before = (await auditRows({ action: 'reveal' })).filter((e) => e.outcome === 'denied').length;
    for (const [who, args, reason] of attempts) {
      const res = await as(who)(REVEAL, { patientId: p.id, ...args });
      const err = firstError(res);
      expect(['FORBIDDEN', 'NOT_FOUND'], `${who} ${JSON.stringify(args)}`).toContain(err.extensions?.code);
      if (reason) expect(err.extensions?.reason).toBe(reason);
      expect(res.body.data?.revealPatientSsn ?? null).toBeNull();
      expect(JSON.stringify(res.body)).not.toContain('3456');
    }
    const denied = (await t.db.owner<{ n: number }[]>`select count(*)::int as n from audit_events where action = 'reveal' and outcome = 'denied'`)[0]!.n;
    // every refusal by policy is a denied event; the other clinic just finds no such patient (NOT_FOUND)
    expect(denied - before).toBe(attempts.length - 1);
    const here = (await auditRows({ patientId: p.id, action: 'reveal' })).filter((e) => e.outcome === 'denied');
    expect(here.length).toBeGreaterThanOrEqual(5);
    const n = (await t.db.owner<{ n: number }[]>`select count(*)::int as n from patient_ssn_reveals where patient_id = ${p.id}`)[0]!.n;
    expect(n).toBe(1);
    ssns.push('078-12-3456');
  });
});

describe('tenant isolation', () => {
  it('another clinic cannot read, update, assign or link a patient', async () => {
    const p = await create('frontDesk', { ssn: '234-56-7891' });
    ssns.push('234-56-7891');
    for (const [q, v] of [
      [GET, { id: p.id }],
      [UPDATE, { id: p.id, version: 1, input: { language: 'es' } }],
      [ASSIGN, { patientId: p.id, userId: s.otherDesk!.user.id, role: 'OTHER' }],
    ] as const) {
      const err = firstError(await as('otherDesk')(q, v));
      expect(['NOT_FOUND', 'FORBIDDEN']).toContain(err.extensions?.code);
    }
    const still = ok(await as('frontDesk')<{ patient: P }>(GET, { id: p.id })).patient;
    expect(still.version).toBe(1);
  });

  it('row level security holds when the query has no tenant filter', async () => {
    const p = await create('frontDesk');
    // the app role, scoped to the other clinic, selecting without any WHERE
    const rows = await withTenant(t.db.sql, other.id, (db) => db.select({ id: patients.id, tenantId: patients.tenantId }).from(patients));
    expect(rows.every((r) => r.tenantId === other.id)).toBe(true);
    expect(rows.map((r) => r.id)).not.toContain(p.id);
    // no tenant at all: nothing
    expect(await withTenant(t.db.sql, null, (db) => db.select({ id: patients.id }).from(patients))).toEqual([]);
    // and it cannot write into another tenant either
    await expect(
      withTenant(t.db.sql, other.id, (db) => db.update(patients).set({ language: 'xx' }).returning({ id: patients.id })),
    ).resolves.not.toContainEqual({ id: p.id });
    const [row] = await t.db.owner<{ language: string }[]>`select language from patients where id = ${p.id}`;
    expect(row!.language).toBe('en');
  });
});

describe('merge', () => {
  it('merges a duplicate: care team and account link move, missing fields fill in, source becomes MERGED', async () => {
    const target = await create('frontDesk', { givenName: 'Dup', familyName: 'Licate', email: null, ssn: undefined });
    const source = await create('frontDesk', { givenName: 'Dup', familyName: 'Licate', ssn: '345-67-8912', phones: [{ use: 'HOME', number: '+1 646 555 0199' }] });
    ssns.push('345-67-8912');
    await ok(await as('frontDesk')(ASSIGN, { patientId: source.id, userId: nurseUser.id, role: 'NURSE' }));
    const MERGE = `mutation($input: MergePatientsInput!) { mergePatients(input: $input) { mergedPatientId mergeId patient { id version email ssnLast4 phones { number } careTeam { userId } } } }`;
    expect(firstError(await as('provider')(MERGE, { input: { sourceId: source.id, targetId: target.id, sourceVersion: 1, targetVersion: 1 } })).extensions?.code).toBe('FORBIDDEN');
    expect(firstError(await as('frontDesk')(MERGE, { input: { sourceId: source.id, targetId: target.id, sourceVersion: 9, targetVersion: 1 } })).extensions?.code).toBe('CONFLICT');
    const m = ok(await as('frontDesk')<{ mergePatients: { mergedPatientId: string; patient: P } }>(MERGE, { input: { sourceId: source.id, targetId: target.id, sourceVersion: 1, targetVersion: 1 } })).mergePatients;
    expect(m.mergedPatientId).toBe(source.id);
    expect(m.patient).toMatchObject({ id: target.id, version: 2, email: 'zoe.angstrom@example.test', ssnLast4: '8912' });
    expect((m.patient.phones as { number: string }[]).map((x) => x.number)).toEqual(['+14155550134', '+16465550199']);
    expect(m.patient.careTeam).toEqual([{ userId: nurseUser.id }]);
    const src = ok(await as('frontDesk')<{ patient: P }>(GET, { id: source.id })).patient;
    expect(src).toMatchObject({ status: 'MERGED', mergedInto: target.id, careTeam: [] });
    // merged records leave searches (unless asked for) and refuse updates
    const found = ok(await as('frontDesk')<{ patients: { edges: { node: { id: string } }[] } }>(SEARCH, { filter: { familyName: 'licate', givenName: 'dup' } })).patients.edges.map((e) => e.node.id);
    expect(found).toContain(target.id);
    expect(found).not.toContain(source.id);
    expect(firstError(await as('frontDesk')(UPDATE, { id: source.id, version: src.version, input: { language: 'es' } })).extensions?.code).toBe('CONFLICT');
    // the SSN search now finds the target (the envelope moved, no re-encryption needed)
    const bySsn = ok(await as('frontDesk')<{ patients: { edges: { node: { id: string } }[] } }>(SEARCH, { filter: { ssn: '345678912' } })).patients.edges.map((e) => e.node.id);
    expect(bySsn).toContain(target.id);
    // trail: the merge record, the audit events of both patients, the event
    const [merge] = await t.db.owner<{ source_id: string; target_id: string; moved: Record<string, number> }[]>`select source_id, target_id, moved from patient_merges where source_id = ${source.id}`;
    expect(merge).toMatchObject({ target_id: target.id, moved: { careTeam: 1 } });
    for (const id of [source.id, target.id]) expect((await auditRows({ patientId: id, action: 'update' })).some((e) => e.fields.includes('Patient.mergedInto'))).toBe(true);
    const [ev] = await t.db.owner<{ payload: Record<string, unknown> }[]>`select payload from outbox where type = 'patient.merged' and aggregate_id = ${target.id}`;
    expect(ev!.payload).toMatchObject({ patientId: target.id, mergedPatientId: source.id });
  });
});

describe('no SSN outside the encrypted columns', () => {
  it('no SSN in the logs, error bodies or outbox', async () => {
    // an error path that involves an SSN-bearing input
    const res = await as('frontDesk')(CREATE, { input: { ...basePatient(), ssn: '987-65-4329', dateOfBirth: 'nope' } });
    expect(JSON.stringify(res.body)).not.toContain('987-65-4329');
    ssns.push('987-65-4329');
    const logs = t.logText();
    const outbox = JSON.stringify(await t.db.owner`select payload from outbox`);
    expect(ssns.length).toBeGreaterThan(10);
    for (const ssn of ssns) {
      const digits = ssn.replace(/\D/g, '');
      for (const form of [ssn, digits]) {
        expect(logs).not.toContain(form);
        expect(outbox).not.toContain(form);
      }
    }
    // the logs did record requests (the check is not vacuous)
    expect(logs).toContain('"route":"/graphql"');
  });
});
