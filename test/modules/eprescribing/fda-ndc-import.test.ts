import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { drugNameComponents, productKeys, rxnormDoseForm, rxnormStrength } from '../../../src/modules/eprescribing/catalog/fda-ndc-import.js';
import { normalizeNdc } from '../../../src/modules/eprescribing/catalog/ndc.js';
import { createTestDatabase, type TestDatabase } from '../../helpers/db.js';

/**
 * `npm run rx:import -- --ndc <dir>` on hand-written FDA NDC directory files (test/fixtures/fda-ndc, fixtures, not
 * data) after the RxNorm fixture release: packages linked by RxNorm's NDC mapping (and their product's other
 * packages), by ingredient + strength + dose form, or left unmatched; NDCs normalised to 11 digits; the DEA schedule
 * set from DEASCHEDULE; a second run changes nothing.
 */
const run = promisify(execFile);
let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase({ poolMax: 2 });
});
afterAll(async () => {
  await db?.drop();
});

const importCli = (...args: string[]) =>
  run(process.execPath, ['--import', 'tsx', 'src/cli/rx-import.ts', ...args], {
    env: { ...process.env, DATABASE_URL: db.ownerUrl, NODE_ENV: 'development', LOG_LEVEL: 'error', DATA_DIR: `.test-data/ndc-import-${db.name}` },
    timeout: 120_000,
  });
const lastJson = (stdout: string) => JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, number>;

const snapshot = async () => ({
  ndcs: await db.owner`select ndc, drug_rxcui, labeler, package_description, source from rx_drug_ndcs order by ndc`,
  drugs: await db.owner`select rxcui, dea_schedule, updated_at from rx_drugs order by rxcui`,
  sources: await db.owner`select name, content_hash, counts, loaded_at from rx_catalog_sources order by name`,
});

describe('FDA NDC directory import', () => {
  it('links package NDCs to catalog drugs (RxNorm mapping first, then ingredient + strength + dose form), sets DEA schedules; a second run changes nothing', { timeout: 300_000 }, async () => {
    await importCli('--rxnorm', 'test/fixtures/rxnorm/rrf');
    // a release without the DCSA attribute: the FDA file's DEASCHEDULE sets it
    await db.owner`update rx_drugs set dea_schedule = null where rxcui = '1049621'`;

    const first = await importCli('--ndc', 'test/fixtures/fda-ndc');
    expect(lastJson(first.stdout)).toEqual({
      products: 5,
      packages: 8,
      invalidNdcs: 1,
      linkedByRxnorm: 3,
      linkedByMatch: 4,
      unmatched: 1,
      ndcsInserted: 5,
      ndcsUpdated: 2,
      schedulesUpdated: 1,
    });
    const s = await snapshot();
    expect(s.ndcs).toEqual([
      // RxNorm's links keep their drug and source; the FDA file adds labeler and package
      { ndc: '00310013010', drug_rxcui: '314076', labeler: 'Fixture Labeler One', package_description: '100 TABLET in 1 BOTTLE (0310-0130-10)', source: 'rxnorm' },
      // another package of the same product follows the RxNorm link
      { ndc: '00310013039', drug_rxcui: '314076', labeler: 'Fixture Labeler One', package_description: '1000 TABLET in 1 BOTTLE (0310-0130-39)', source: 'fda-ndc' },
      { ndc: '00310013110', drug_rxcui: '104377', labeler: 'Fixture Labeler One', package_description: '100 TABLET in 1 BOTTLE (0310-0131-10)', source: 'rxnorm' },
      // 4-4-2 / 5-3-2 / 5-4-1 package codes, 11 digits; matched by LISINOPRIL 10 mg/1 TABLET ORAL and OXYCODONE HYDROCHLORIDE 5 mg/1
      { ndc: '49999055201', drug_rxcui: '1049621', labeler: 'Fixture Labeler Three', package_description: '100 TABLET in 1 BOTTLE (49999-0552-1)', source: 'fda-ndc' },
      { ndc: '49999055203', drug_rxcui: '1049621', labeler: 'Fixture Labeler Three', package_description: '30 TABLET in 1 BOTTLE (49999-0552-3)', source: 'fda-ndc' },
      { ndc: '68180051201', drug_rxcui: '314076', labeler: 'Fixture Labeler Two', package_description: '90 TABLET in 1 BOTTLE (68180-512-01)', source: 'fda-ndc' },
      { ndc: '68180051202', drug_rxcui: '314076', labeler: 'Fixture Labeler Two', package_description: '1000 TABLET in 1 BOTTLE (68180-512-02)', source: 'fda-ndc' },
    ]);
    expect(s.drugs.map((d) => [d.rxcui, d.dea_schedule])).toEqual([
      ['104377', null],
      ['1049621', 'CII'],
      ['314076', null],
    ]);
    expect(s.sources.map((r) => r.name)).toEqual(['fda-ndc', 'rxnorm:rxnorm']);

    const second = await importCli('--ndc', 'test/fixtures/fda-ndc');
    expect(lastJson(second.stdout)).toMatchObject({ linkedByRxnorm: 3, linkedByMatch: 4, unmatched: 1, ndcsInserted: 0, ndcsUpdated: 0, schedulesUpdated: 0 });
    expect(await snapshot()).toEqual(s);
  });

  it('refuses a folder without the directory files, and usage without a folder', async () => {
    const err = await importCli('--ndc', 'test/fixtures/rxnorm').then(
      () => null,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(err?.code).toBe(1);
    expect(err?.stderr).toContain('product.txt not found');
    const usage = await importCli('--ndc').then(
      () => null,
      (e: { code?: number; stderr?: string }) => e,
    );
    expect(usage?.code).toBe(2);
  });
});

describe('NDC forms and RxNorm-style keys', () => {
  it('normalises the FDA forms to 11 digits (5-4-2) and refuses anything else', () => {
    expect(['0310-0130-10', '68180-512-01', '12345-6789-1', '00310-0130-10', '00310013010', ' 00310013010 '].map(normalizeNdc)).toEqual(['00310013010', '68180051201', '12345678901', '00310013010', '00310013010', '00310013010']);
    expect(['0310013010', '0310-013-10', '123-4567-89', '12345-67890-1', '00310-0130-100', 'abcde-fghi-jk', '003100130100', ''].map(normalizeNdc)).toEqual(Array(8).fill(null));
  });

  it('writes FDA strengths, forms and substances the way RxNorm names clinical drugs', () => {
    expect(rxnormStrength('5', 'mg/1')).toBe('5 MG');
    expect(rxnormStrength('125', 'mg/5mL')).toBe('25 MG/ML');
    expect(rxnormStrength('90', 'ug/1')).toBe('90 MCG');
    expect(rxnormStrength('5', 'furlongs/1')).toBeNull();
    expect(rxnormDoseForm('TABLET, FILM COATED', 'ORAL')).toBe('Oral Tablet');
    expect(rxnormDoseForm('TABLET', 'SUBLINGUAL')).toBe('Sublingual Tablet');
    expect(rxnormDoseForm('CAPSULE, EXTENDED RELEASE', 'ORAL')).toBe('Extended Release Oral Capsule');
    expect(rxnormDoseForm('SOLUTION', 'OPHTHALMIC')).toBe('Ophthalmic Solution');
    // two ingredients, in any order; salt words dropped for the looser key
    const combo = productKeys({ substances: 'HYDROCODONE BITARTRATE; ACETAMINOPHEN', strengths: '5; 325', units: 'mg/1; mg/1', dosageForm: 'TABLET', route: 'ORAL' })!;
    expect(combo.key).toBe('acetaminophen 325 mg / hydrocodone bitartrate 5 mg | oral tablet');
    expect(combo.baseKey).toBe('acetaminophen 325 mg / hydrocodone 5 mg | oral tablet');
    expect(productKeys({ substances: 'AMLODIPINE BESYLATE', strengths: '5', units: 'mg/1', dosageForm: 'TABLET', route: 'ORAL' })!.baseKey).toBe('amlodipine 5 mg | oral tablet');
    expect(drugNameComponents('12 HR oxycodone hydrochloride 10 MG Extended Release Oral Tablet', 'Extended Release Oral Tablet')).toEqual(['oxycodone hydrochloride 10 mg']);
    expect(drugNameComponents('acetaminophen 300 MG / codeine phosphate 30 MG Oral Tablet', 'Oral Tablet')).toEqual(['acetaminophen 300 mg', 'codeine phosphate 30 mg']);
  });
});
