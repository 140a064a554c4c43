import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { PharmacySimulator } from '../../../src/modules/eprescribing/index.js';
import type { TestApp } from '../../helpers/app.js';
import { createRxClinic, errorOf, ok, startRxApp, type RxClinic } from './lifecycle-helpers.js';

/**
 * Catalog lookups through GraphQL over HTTP: drug(rxcui) with its ingredients, schedule and NDCs; drugByNdc in every
 * NDC form; the paginated search (drugsConnection) walked page by page. The curated seed is loaded at boot; the NDCs
 * and the extra drugs below are test rows written as the owner (the seed has no NDCs), not catalog data.
 */
let t: TestApp;
let sim: PharmacySimulator;
let c: RxClinic;

const DRUG_FIELDS = 'rxcui name tty strength doseForm route controlledSchedule active ingredients { rxcui name strength strengthValue strengthUnit } ndcs { ndc labeler packageDescription source }';
const DRUG = `query($r: String!) { drug(rxcui: $r) { ${DRUG_FIELDS} } }`;
const BY_NDC = 'query($n: String!) { drugByNdc(ndc: $n) { rxcui name } }';
const PAGE = 'query($s: String!, $f: Int, $a: String) { drugsConnection(search: $s, first: $f, after: $a) { edges { cursor node { rxcui name brandName } } pageInfo { hasNextPage endCursor } } }';
const LIST = 'query($s: String!, $f: Int) { drugs(search: $s, first: $f) { rxcui name } }';

interface Page {
  drugsConnection: { edges: { cursor: string; node: { rxcui: string; name: string; brandName: string | null } }[]; pageInfo: { hasNextPage: boolean; endCursor: string | null } };
}

// test-only NDC rows (11-digit 5-4-2): lisinopril 10 MG (314076) under three labeler configurations, one for oxycodone
const TEST_NDCS: [string, string][] = [
  ['00310013010', '314076'],
  ['68180051201', '314076'],
  ['12345678901', '314076'],
  ['49999055201', '1049621'],
];
// test-only drugs for the page walk: 10 names for 23 drugs, so RxCUI breaks ties between equal names
const PAGED = Array.from({ length: 23 }, (_, i) => ({ rxcui: String(990_000_100 + i), name: `zzpaginol ${String.fromCharCode(97 + (i % 10))} 1 MG Oral Tablet` }));

beforeAll(async () => {
  ({ t, sim } = await startRxApp());
  c = await createRxClinic(t);
  for (const [ndc, rxcui] of TEST_NDCS) await t.db.owner`insert into rx_drug_ndcs (ndc, drug_rxcui, labeler, source) values (${ndc}, ${rxcui}, 'Test Labeler', 'seed')`;
  for (const d of PAGED) await t.db.owner`insert into rx_drugs (rxcui, name, tty, dose_form, route) values (${d.rxcui}, ${d.name}, 'SCD', 'Oral Tablet', 'oral')`;
  // a branded test drug found by its brand, and an inactive one the search leaves out
  await t.db.owner`insert into rx_drugs (rxcui, name, tty, dose_form, route, brand_name) values ('990000200', 'zzother 1 MG Oral Tablet [Zzpaginol Brand]', 'SBD', 'Oral Tablet', 'oral', 'Zzpaginol Brand')`;
  await t.db.owner`insert into rx_drugs (rxcui, name, tty, dose_form, route, active) values ('990000201', 'zzpaginol retired 1 MG Oral Tablet', 'SCD', 'Oral Tablet', 'oral', false)`;
}, 240_000);
afterAll(async () => {
  await t?.close();
  await sim?.close();
});

describe('drug(rxcui)', () => {
  it('returns the drug with its ingredients, schedule and NDCs', async () => {
    const d = ok(await c.as.provider<{ drug: Record<string, unknown> }>(DRUG, { r: '1049621' })).drug;
    expect(d).toMatchObject({ rxcui: '1049621', name: 'oxycodone hydrochloride 5 MG Oral Tablet', tty: 'SCD', doseForm: 'Oral Tablet', route: 'oral', controlledSchedule: 'CII', active: true });
    expect(d.ingredients).toEqual([{ rxcui: expect.stringMatching(/^\d+$/), name: 'oxycodone', strength: '5 MG', strengthValue: 5, strengthUnit: 'MG' }]);
    expect(d.ndcs).toEqual([{ ndc: '49999055201', labeler: 'Test Labeler', packageDescription: null, source: 'seed' }]);
    const lisinopril = ok(await c.as.provider<{ drug: { controlledSchedule: string | null; ndcs: { ndc: string }[] } }>(DRUG, { r: '314076' })).drug;
    expect(lisinopril.controlledSchedule).toBeNull();
    expect(lisinopril.ndcs.map((n) => n.ndc)).toEqual(['00310013010', '12345678901', '68180051201']);
  });

  it('NOT_FOUND for an unknown RxCUI; BAD_USER_INPUT for a malformed one; FORBIDDEN without rx:catalog:read', async () => {
    expect(errorOf(await c.as.provider(DRUG, { r: '9999999999' })).code).toBe('NOT_FOUND');
    for (const r of ['', 'abc', '12a4', '12345678901', '-1', '1.5', "1' or '1'='1"]) {
      const e = errorOf(await c.as.provider(DRUG, { r }));
      expect(e.code, r).toBe('BAD_USER_INPUT');
      expect(e.extensions.field).toBe('rxcui');
    }
    expect(errorOf(await c.as.patient(DRUG, { r: '314076' })).code).toBe('FORBIDDEN');
  });
});

describe('drugByNdc', () => {
  it('finds the drug from every NDC form (4-4-2, 5-3-2, 5-4-1, 5-4-2 with or without hyphens)', async () => {
    const forms = ['0310-0130-10', '00310-0130-10', '00310013010', '68180-512-01', '68180-0512-01', '68180051201', '12345-6789-1', '12345-6789-01', '12345678901'];
    for (const n of forms) expect(ok(await c.as.provider<{ drugByNdc: { rxcui: string } }>(BY_NDC, { n })).drugByNdc.rxcui, n).toBe('314076');
    expect(ok(await c.as.provider<{ drugByNdc: { rxcui: string } }>(BY_NDC, { n: '49999-0552-1' })).drugByNdc.rxcui).toBe('1049621');
  });

  it('NOT_FOUND for an NDC no drug has; BAD_USER_INPUT for a malformed one; FORBIDDEN without rx:catalog:read', async () => {
    expect(errorOf(await c.as.provider(BY_NDC, { n: '0310-0130-99' })).code).toBe('NOT_FOUND');
    for (const n of ['0310013010', '0310-013-10', '123-4567-89', '12345-67890-1', '003100130100', 'abcd-efgh-ij', '', '0310--0130-10']) {
      const e = errorOf(await c.as.provider(BY_NDC, { n }));
      expect(e.code, n).toBe('BAD_USER_INPUT');
      expect(e.extensions.field).toBe('ndc');
    }
    expect(errorOf(await c.as.patient(BY_NDC, { n: '00310013010' })).code).toBe('FORBIDDEN');
  });
});

describe('drugsConnection (paginated search)', () => {
  it('walks every page once, in name then RxCUI order, and agrees with the drugs list', async () => {
    const seen: { rxcui: string; name: string }[] = [];
    let after: string | null = null;
    let pages = 0;
    for (;;) {
      const page: Page['drugsConnection'] = ok(await c.as.provider<Page>(PAGE, { s: 'ZZ-Pagin', f: 4, a: after })).drugsConnection;
      pages++;
      expect(page.edges.length).toBeLessThanOrEqual(4);
      seen.push(...page.edges.map((e) => e.node));
      expect(page.pageInfo.endCursor).toBe(page.edges.at(-1)?.cursor ?? null);
      if (!page.pageInfo.hasNextPage) break;
      after = page.pageInfo.endCursor;
      expect(pages).toBeLessThan(20);
    }
    const expected = [...PAGED.map((d) => d.rxcui), '990000200'];
    expect(seen).toHaveLength(expected.length); // no duplicates, nothing missed; the inactive drug is left out
    expect(new Set(seen.map((d) => d.rxcui))).toEqual(new Set(expected));
    expect(pages).toBe(Math.ceil(expected.length / 4));
    // ordered by name, then RxCUI: equal names come together, their RxCUIs ascending
    const names = seen.map((d) => d.name);
    expect(names.filter((n, i) => i > 0 && n !== names[i - 1]).length).toBe(new Set(names).size - 1);
    for (let i = 1; i < seen.length; i++) if (seen[i]!.name === seen[i - 1]!.name) expect(Number(seen[i]!.rxcui)).toBeGreaterThan(Number(seen[i - 1]!.rxcui));
    expect(seen.filter((d) => d.name.startsWith('zzpaginol')).map((d) => d.name)).toEqual(PAGED.map((d) => d.name).sort());
    // the list field (existing callers) returns the same drugs in the same order
    const list = ok(await c.as.provider<{ drugs: { rxcui: string }[] }>(LIST, { s: 'zzpagin', f: 100 })).drugs;
    expect(list.map((d) => d.rxcui)).toEqual(seen.map((d) => d.rxcui));
  });

  it('refuses a forged cursor, backward paging and a page size out of range', async () => {
    expect(errorOf(await c.as.provider(PAGE, { s: 'zzpagin', a: 'not-a-cursor' })).code).toBe('BAD_USER_INPUT');
    expect(errorOf(await c.as.provider(PAGE, { s: 'zzpagin', a: Buffer.from(JSON.stringify(['d1', 'x', 'abc'])).toString('base64url') })).code).toBe('BAD_USER_INPUT');
    expect(errorOf(await c.as.provider(PAGE, { s: 'zzpagin', f: 0 })).code).toBe('BAD_USER_INPUT');
    expect(errorOf(await c.as.provider(PAGE, { s: 'zzpagin', f: 101 })).code).toBe('BAD_USER_INPUT');
    expect(errorOf(await c.as.provider('query { drugsConnection(search: "zzpagin", last: 2) { edges { cursor } } }')).code).toBe('BAD_USER_INPUT');
    expect(errorOf(await c.as.provider(PAGE, { s: 'z' })).code).toBe('BAD_USER_INPUT');
    expect(errorOf(await c.as.patient(PAGE, { s: 'zzpagin' })).code).toBe('FORBIDDEN');
  });
});
