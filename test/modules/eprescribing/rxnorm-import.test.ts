import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { routeOf } from '../../../src/modules/eprescribing/catalog/rxnorm-import.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.js';

/**
 * `npm run rx:import -- --rxnorm <dir>` on a small release in RxNorm's RRF layout (test/fixtures/rxnorm/rrf): clinical
 * and branded drugs with strength, dose form, route, brand, generic, DEA schedule and NDCs, each drug's ingredients;
 * suppressed concepts and other sources' rows left out; a second run changes nothing.
 */
const run = promisify(execFile);
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ poolMax: 2 });
});
afterAll(async () => {
  await db?.drop();
});

const importCli = (dir: string) =>
  run(process.execPath, ['--import', 'tsx', 'src/cli/rx-import.ts', '--rxnorm', dir], {
    env: { ...process.env, DATABASE_URL: db.ownerUrl, NODE_ENV: 'development', LOG_LEVEL: 'error', DATA_DIR: `.test-data/rx-import-${db.name}` },
    timeout: 120_000,
  });

const snapshot = async () => ({
  drugs: await db.owner`select rxcui, name, tty, strength, dose_form, route, brand_name, generic_rxcui, dea_schedule, source from rx_drugs order by rxcui`,
  links: await db.owner`select drug_rxcui, ingredient_rxcui, strength, strength_value::float as value, strength_unit from rx_drug_ingredients order by 1, 2`,
  ndcs: await db.owner`select ndc, drug_rxcui from rx_drug_ndcs order by ndc`,
});

describe('RxNorm RRF import', () => {
  it('loads drugs, ingredients, schedules and NDCs from the release files; a second run changes nothing', { timeout: 240_000 }, async () => {
    const out = await importCli('test/fixtures/rxnorm/rrf');
    expect(JSON.parse(out.stdout.trim().split('\n').at(-1)!)).toEqual({ ingredients: 2, drugs: 3, drugIngredients: 3, ndcs: 2 });
    const s = await snapshot();
    expect(s.drugs).toEqual([
      { rxcui: '104377', name: 'lisinopril 10 MG Oral Tablet [Zestril]', tty: 'SBD', strength: '10 MG', dose_form: 'Oral Tablet', route: 'oral', brand_name: 'Zestril', generic_rxcui: '314076', dea_schedule: null, source: 'rxnorm' },
      { rxcui: '1049621', name: 'oxycodone hydrochloride 5 MG Oral Tablet', tty: 'SCD', strength: '5 MG', dose_form: 'Oral Tablet', route: 'oral', brand_name: null, generic_rxcui: null, dea_schedule: 'CII', source: 'rxnorm' },
      { rxcui: '314076', name: 'lisinopril 10 MG Oral Tablet', tty: 'SCD', strength: '10 MG', dose_form: 'Oral Tablet', route: 'oral', brand_name: null, generic_rxcui: null, dea_schedule: null, source: 'rxnorm' },
    ]);
    expect(s.links).toEqual([
      { drug_rxcui: '104377', ingredient_rxcui: '29046', strength: '10 MG', value: 10, strength_unit: 'MG' },
      { drug_rxcui: '1049621', ingredient_rxcui: '7804', strength: '5 MG', value: 5, strength_unit: 'MG' },
      { drug_rxcui: '314076', ingredient_rxcui: '29046', strength: '10 MG', value: 10, strength_unit: 'MG' },
    ]);
    expect(s.ndcs).toEqual([
      { ndc: '00310013010', drug_rxcui: '314076' },
      { ndc: '00310013110', drug_rxcui: '104377' },
    ]);
    await importCli('test/fixtures/rxnorm/rrf');
    expect(await snapshot()).toEqual(s);
  });

  it('refuses a folder without the release files with a clear message', async () => {
    const err = await importCli('test/fixtures').then(
      () => null,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toContain('RXNCONSO.RRF not found');
  });

  it('derives the route from the RxNorm dose form', () => {
    expect(['Oral Tablet', 'Sublingual Tablet', 'Injectable Solution', 'Metered Dose Inhaler', 'Topical Cream', 'Ophthalmic Solution', 'Transdermal System'].map(routeOf)).toEqual([
      'oral',
      'sublingual',
      'injection',
      'inhalation',
      'topical',
      'ophthalmic',
      'transdermal',
    ]);
  });
});
