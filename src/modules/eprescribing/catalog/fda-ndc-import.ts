import { createHash } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import postgres from 'postgres';
import { normalizeNdc } from './ndc.js';

/**
 * Imports the FDA NDC Directory (https://www.fda.gov/drugs/drug-approvals-and-databases/national-drug-code-directory,
 * the "NDC database file - Text version": product.txt and package.txt, tab-delimited with a header row) into the
 * catalog's NDCs, as the owner. It adds no drugs: each package's NDC (normalised to 11 digits, 5-4-2) is linked to a
 * catalog drug that is already there (the seed, an RxNorm import):
 *
 *   1. by RxNorm's NDC mapping (rx_drug_ndcs rows the RxNorm import wrote from RXNSAT ATN=NDC): such a package keeps
 *      its RxNorm drug, and the other packages of the same FDA product follow it (one product is one formulation);
 *   2. otherwise by ingredient + strength + dose form: the product's SUBSTANCENAME / ACTIVE_NUMERATOR_STRENGTH /
 *      ACTIVE_INGRED_UNIT and DOSAGEFORMNAME + ROUTENAME, written the way RxNorm names a clinical drug
 *      ("oxycodone hydrochloride 5 MG" + "Oral Tablet"), against the catalog's clinical drugs (SCD); when that finds
 *      nothing, again with salt words dropped on both sides (FDA "AMLODIPINE BESYLATE 5 mg/1" = RxNorm
 *      "amlodipine 5 MG Oral Tablet"). A product whose PROPRIETARYNAME is the brand of a branded drug (SBD) of the
 *      matched clinical drug is linked to the branded drug. Two candidates: ambiguous, not linked.
 *
 * It also sets each linked drug's DEA schedule from the products' DEASCHEDULE (CII..CV; the most restrictive when
 * products of one drug disagree; a product without a schedule never clears one). The labeler and package description
 * are stored with each NDC. Only HUMAN PRESCRIPTION DRUG and HUMAN OTC DRUG products are read, and rows flagged as
 * excluded (NDC_EXCLUDE_FLAG other than N) are skipped.
 *
 * Idempotent: rows are written only where something differs, so a second run of the same files changes nothing
 * (counts ndcsInserted, ndcsUpdated and schedulesUpdated are 0). Writes go in batches, one transaction per batch.
 * Nothing is deleted: an NDC a later directory no longer lists keeps its link (old prescriptions and claims carry it).
 *
 * product.txt columns: PRODUCTID PRODUCTNDC PRODUCTTYPENAME PROPRIETARYNAME PROPRIETARYNAMESUFFIX NONPROPRIETARYNAME
 *   DOSAGEFORMNAME ROUTENAME STARTMARKETINGDATE ENDMARKETINGDATE MARKETINGCATEGORYNAME APPLICATIONNUMBER LABELERNAME
 *   SUBSTANCENAME ACTIVE_NUMERATOR_STRENGTH ACTIVE_INGRED_UNIT PHARM_CLASSES DEASCHEDULE NDC_EXCLUDE_FLAG
 *   LISTING_RECORD_CERTIFIED_THROUGH (multi-valued fields separated by "; ")
 * package.txt columns: PRODUCTID PRODUCTNDC NDCPACKAGECODE PACKAGEDESCRIPTION STARTMARKETINGDATE ENDMARKETINGDATE
 *   NDC_EXCLUDE_FLAG SAMPLE_PACKAGE
 * Columns are found by their header name, so added or reordered columns do not matter.
 */
export interface NdcImportCounts {
  /** products read (human prescription / OTC, not excluded) */
  products: number;
  /** packages of those products with a valid NDC */
  packages: number;
  /** package rows whose NDCPACKAGECODE is not an NDC */
  invalidNdcs: number;
  linkedByRxnorm: number;
  linkedByMatch: number;
  unmatched: number;
  ndcsInserted: number;
  ndcsUpdated: number;
  schedulesUpdated: number;
}

type Schedule = 'CII' | 'CIII' | 'CIV' | 'CV';
const SCHEDULE_RANK: Record<Schedule, number> = { CII: 2, CIII: 3, CIV: 4, CV: 5 };
const PRODUCT_TYPES = new Set(['HUMAN PRESCRIPTION DRUG', 'HUMAN OTC DRUG']);
const BATCH = 500;

interface Product {
  id: string;
  brand: string;
  labeler: string;
  schedule: Schedule | null;
  /** the RxNorm-style match keys: exact, then with salt words dropped (null: not expressible) */
  key: string | null;
  baseKey: string | null;
  packages: { ndc: string; description: string | null }[];
}

async function* tsv(file: string, required: readonly string[]): AsyncGenerator<(name: string) => string> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  let cols: Map<string, number> | null = null;
  for await (const raw of lines) {
    const line = raw.replace(/^\uFEFF/, '');
    if (!line.trim()) continue;
    const cells = line.split('\t');
    if (!cols) {
      cols = new Map(cells.map((c, i) => [c.trim().toUpperCase(), i]));
      const missing = required.filter((c) => !cols!.has(c));
      if (missing.length) throw new Error(`${path.basename(file)}: header lacks ${missing.join(', ')} (is this the FDA NDC directory text file?)`);
      continue;
    }
    const at = cols;
    yield (name) => (cells[at.get(name) ?? -1] ?? '').trim();
  }
}

// ------------------------------------------------------------------ RxNorm-style keys

/** FDA DOSAGEFORMNAME (+ first ROUTENAME) -> RxNorm dose form; null when this importer does not know it. */
export function rxnormDoseForm(dosageForm: string, route: string): string | null {
  const f = dosageForm.trim().toUpperCase();
  const r = route.split(';')[0]!.trim().toUpperCase();
  const tablet = ['TABLET', 'TABLET, FILM COATED', 'TABLET, COATED', 'TABLET, SUGAR COATED'];
  if (tablet.includes(f)) return r === 'SUBLINGUAL' ? 'Sublingual Tablet' : r === 'BUCCAL' ? 'Buccal Tablet' : r === 'VAGINAL' ? 'Vaginal Tablet' : 'Oral Tablet';
  const fixed: Record<string, string> = {
    'TABLET, EXTENDED RELEASE': 'Extended Release Oral Tablet',
    'TABLET, FILM COATED, EXTENDED RELEASE': 'Extended Release Oral Tablet',
    'TABLET, MULTILAYER, EXTENDED RELEASE': 'Extended Release Oral Tablet',
    'TABLET, DELAYED RELEASE': 'Delayed Release Oral Tablet',
    'TABLET, CHEWABLE': 'Chewable Tablet',
    'TABLET, ORALLY DISINTEGRATING': 'Disintegrating Oral Tablet',
    'TABLET, EFFERVESCENT': 'Effervescent Oral Tablet',
    CAPSULE: 'Oral Capsule',
    'CAPSULE, GELATIN COATED': 'Oral Capsule',
    'CAPSULE, LIQUID FILLED': 'Oral Capsule',
    'CAPSULE, EXTENDED RELEASE': 'Extended Release Oral Capsule',
    'CAPSULE, DELAYED RELEASE': 'Delayed Release Oral Capsule',
    'CAPSULE, DELAYED RELEASE PELLETS': 'Delayed Release Oral Capsule',
    'INJECTION, SUSPENSION': 'Injectable Suspension',
    'INJECTION, POWDER, FOR SOLUTION': 'Injection',
    'INJECTION, POWDER, LYOPHILIZED, FOR SOLUTION': 'Injection',
    'AEROSOL, METERED': 'Metered Dose Inhaler',
    'PATCH, EXTENDED RELEASE': 'Transdermal System',
    SUPPOSITORY: 'Rectal Suppository',
    CREAM: 'Topical Cream',
    GEL: 'Topical Gel',
    LOTION: 'Topical Lotion',
  };
  if (fixed[f]) return fixed[f];
  if (f === 'INJECTION' || f === 'INJECTION, SOLUTION') return 'Injectable Solution';
  if (f === 'SOLUTION' || f === 'SOLUTION/ DROPS' || f === 'SOLUTION, DROPS') {
    if (r === 'ORAL') return 'Oral Solution';
    if (r === 'OPHTHALMIC') return 'Ophthalmic Solution';
    if (r === 'OTIC') return 'Otic Solution';
    if (r === 'TOPICAL') return 'Topical Solution';
    if (['INTRAVENOUS', 'INTRAMUSCULAR', 'SUBCUTANEOUS'].includes(r)) return 'Injectable Solution';
    return null;
  }
  if ((f === 'SUSPENSION' || f === 'POWDER, FOR SUSPENSION') && r === 'ORAL') return 'Oral Suspension';
  if (f === 'SUSPENSION' && r === 'OPHTHALMIC') return 'Ophthalmic Suspension';
  if (f === 'OINTMENT') return r === 'OPHTHALMIC' ? 'Ophthalmic Ointment' : 'Topical Ointment';
  if (f === 'SPRAY, METERED' && r === 'NASAL') return 'Metered Dose Nasal Spray';
  if (f === 'SPRAY' && r === 'NASAL') return 'Nasal Spray';
  if (f === 'PATCH' && r === 'TRANSDERMAL') return 'Transdermal System';
  if (f === 'FILM' && r === 'SUBLINGUAL') return 'Sublingual Film';
  if (f === 'FILM' && r === 'BUCCAL') return 'Buccal Film';
  return null;
}

const NUMERATOR_UNITS: Record<string, string> = { mg: 'MG', ug: 'MCG', mcg: 'MCG', g: 'G', meq: 'MEQ', mmol: 'MMOL', '[iu]': 'UNT', '[usp\'u]': 'UNT', unt: 'UNT', ml: 'ML' };
const num = (v: number) => String(Number(v.toPrecision(8)));

/** FDA strength + unit ("5", "mg/1"; "125", "mg/5mL") -> RxNorm strength ("5 MG"; "25 MG/ML"), or null. */
export function rxnormStrength(value: string, unit: string): string | null {
  const v = Number(value.trim());
  const m = /^([^/]+)\/(\d*\.?\d*)\s*([a-z[\]']*)$/i.exec(unit.trim());
  if (!Number.isFinite(v) || v <= 0 || !m) return null;
  const numerator = NUMERATOR_UNITS[m[1]!.trim().toLowerCase()];
  if (!numerator) return null;
  const count = m[2] ? Number(m[2]) : 1;
  const per = m[3]!.toLowerCase();
  if (!Number.isFinite(count) || count <= 0) return null;
  if (per === '' && count === 1) return `${num(v)} ${numerator}`;
  const denominator = { ml: 'ML', g: 'G', actuat: 'ACTUAT', l: 'L' }[per];
  if (!denominator) return null;
  return `${num(v / count)} ${numerator}/${denominator}`;
}

/** Salt and hydrate words dropped for the second, looser match. */
const SALT_WORDS = new Set(
  'hydrochloride dihydrochloride hcl hydrobromide sodium disodium potassium calcium magnesium besylate maleate mesylate succinate tartrate bitartrate citrate sulfate phosphate acetate fumarate hyclate bromide chloride tromethamine monohydrate dihydrate trihydrate hemihydrate sesquihydrate anhydrous'.split(
    ' ',
  ),
);
const baseName = (ingredient: string) =>
  ingredient
    .split(' ')
    .filter((w) => !SALT_WORDS.has(w))
    .join(' ');
const clean = (s: string) => s.toLowerCase().replace(/\s+/g, ' ').trim();

/** A key of components ("ingredient strength") and a dose form; components sorted so the order never matters. */
const keyOf = (components: string[], doseForm: string) => `${[...components].sort().join(' / ')} | ${doseForm.toLowerCase()}`;

/** The match keys of an FDA product, exact and salt-free; null when its strength or form is not expressible. */
export function productKeys(p: { substances: string; strengths: string; units: string; dosageForm: string; route: string }): { key: string; baseKey: string } | null {
  const doseForm = rxnormDoseForm(p.dosageForm, p.route);
  const subs = p.substances.split(';').map(clean);
  const vals = p.strengths.split(';');
  const units = p.units.split(';');
  if (!doseForm || !subs[0] || subs.length !== vals.length || subs.length !== units.length) return null;
  const strengths = subs.map((_, i) => rxnormStrength(vals[i]!, units[i]!));
  if (strengths.some((s) => s === null)) return null;
  return { key: keyOf(subs.map((s, i) => `${s} ${strengths[i]!.toLowerCase()}`), doseForm), baseKey: keyOf(subs.map((s, i) => `${baseName(s)} ${strengths[i]!.toLowerCase()}`), doseForm) };
}

/** The components of an RxNorm clinical drug name ("12 HR oxycodone hydrochloride 10 MG Extended Release Oral Tablet"). */
export function drugNameComponents(name: string, doseForm: string): string[] | null {
  const n = clean(name);
  const form = ` ${clean(doseForm)}`;
  if (!n.endsWith(form)) return null;
  const body = n
    .slice(0, -form.length)
    .replace(/^\d+ hr /, '')
    .replace(/^[\d.]+ ml /, '');
  return body.split(' / ').map((c) => c.trim()).filter(Boolean);
}

// ------------------------------------------------------------------ import

export async function importFdaNdc(ownerUrl: string, dir: string, log: (msg: string) => void = () => undefined): Promise<NdcImportCounts> {
  const productFile = path.join(dir, 'product.txt');
  const packageFile = path.join(dir, 'package.txt');
  for (const f of [productFile, packageFile]) {
    await access(f).catch(() => {
      throw new Error(`${path.basename(f)} not found in ${dir} (the unzipped FDA NDC directory text files)`);
    });
  }
  const counts: NdcImportCounts = { products: 0, packages: 0, invalidNdcs: 0, linkedByRxnorm: 0, linkedByMatch: 0, unmatched: 0, ndcsInserted: 0, ndcsUpdated: 0, schedulesUpdated: 0 };

  const products = new Map<string, Product>();
  const productCols = ['PRODUCTID', 'PRODUCTTYPENAME', 'PROPRIETARYNAME', 'DOSAGEFORMNAME', 'ROUTENAME', 'LABELERNAME', 'SUBSTANCENAME', 'ACTIVE_NUMERATOR_STRENGTH', 'ACTIVE_INGRED_UNIT', 'DEASCHEDULE'];
  for await (const col of tsv(productFile, productCols)) {
    if (!PRODUCT_TYPES.has(col('PRODUCTTYPENAME').toUpperCase())) continue;
    const flag = col('NDC_EXCLUDE_FLAG').toUpperCase();
    if (flag && flag !== 'N') continue;
    const keys = productKeys({ substances: col('SUBSTANCENAME'), strengths: col('ACTIVE_NUMERATOR_STRENGTH'), units: col('ACTIVE_INGRED_UNIT'), dosageForm: col('DOSAGEFORMNAME'), route: col('ROUTENAME') });
    const dea = col('DEASCHEDULE').toUpperCase();
    products.set(col('PRODUCTID'), {
      id: col('PRODUCTID'),
      brand: clean(col('PROPRIETARYNAME')),
      labeler: col('LABELERNAME').slice(0, 200),
      schedule: dea in SCHEDULE_RANK ? (dea as Schedule) : null,
      key: keys?.key ?? null,
      baseKey: keys?.baseKey ?? null,
      packages: [],
    });
  }
  counts.products = products.size;

  const seen = new Set<string>();
  for await (const col of tsv(packageFile, ['PRODUCTID', 'NDCPACKAGECODE', 'PACKAGEDESCRIPTION'])) {
    const product = products.get(col('PRODUCTID'));
    if (!product) continue;
    const flag = col('NDC_EXCLUDE_FLAG').toUpperCase();
    if (flag && flag !== 'N') continue;
    const ndc = normalizeNdc(col('NDCPACKAGECODE'));
    if (!ndc) {
      counts.invalidNdcs++;
      continue;
    }
    if (seen.has(ndc)) continue;
    seen.add(ndc);
    product.packages.push({ ndc, description: col('PACKAGEDESCRIPTION').slice(0, 500) || null });
  }
  counts.packages = seen.size;
  log(`product.txt: ${counts.products} products, package.txt: ${counts.packages} packages`);

  const sql = postgres(ownerUrl, { max: 1, onnotice: () => undefined, connection: { application_name: 'carebase-ndc-import' } });
  try {
    // what the catalog has: RxNorm's NDC links, the clinical drugs' keys, the branded drugs by (generic, brand)
    const rxnormNdc = new Map((await sql<{ ndc: string; drug_rxcui: string }[]>`select ndc, drug_rxcui from rx_drug_ndcs where source = 'rxnorm'`).map((r) => [r.ndc, r.drug_rxcui]));
    const drugs = await sql<{ rxcui: string; name: string; tty: string; dose_form: string; brand_name: string | null; generic_rxcui: string | null }[]>`
      select rxcui, name, tty, dose_form, brand_name, generic_rxcui from rx_drugs where tty in ('SCD', 'SBD')`;
    const links = await sql<{ drug_rxcui: string; name: string; strength: string | null }[]>`
      select l.drug_rxcui, i.name, l.strength from rx_drug_ingredients l join rx_ingredients i on i.rxcui = l.ingredient_rxcui
      join rx_drugs d on d.rxcui = l.drug_rxcui where d.tty = 'SCD'`;
    const exact = new Map<string, Set<string>>();
    const loose = new Map<string, Set<string>>();
    const add = (m: Map<string, Set<string>>, k: string, rxcui: string) => m.set(k, (m.get(k) ?? new Set()).add(rxcui));
    const doseFormOf = new Map(drugs.map((d) => [d.rxcui, d.dose_form]));
    const brandOf = new Map<string, string>(); // `${scd}|${brand}` -> sbd
    for (const d of drugs) {
      if (d.tty === 'SBD') {
        if (d.generic_rxcui && d.brand_name) brandOf.set(`${d.generic_rxcui}|${clean(d.brand_name)}`, d.rxcui);
        continue;
      }
      const comps = drugNameComponents(d.name, d.dose_form);
      if (!comps?.length) continue;
      add(exact, keyOf(comps, d.dose_form), d.rxcui);
      add(loose, keyOf(comps.map((c) => baseName(c)), d.dose_form), d.rxcui);
    }
    // the catalog's own ingredient rows (base ingredient + strength) as a second way to the salt-free key
    const byDrug = new Map<string, string[]>();
    for (const l of links) if (l.strength) byDrug.set(l.drug_rxcui, [...(byDrug.get(l.drug_rxcui) ?? []), `${baseName(clean(l.name))} ${clean(l.strength)}`]);
    for (const [rxcui, comps] of byDrug) add(loose, keyOf(comps, doseFormOf.get(rxcui)!), rxcui);
    const only = (s: Set<string> | undefined) => (s?.size === 1 ? [...s][0]! : null);

    const rows: { ndc: string; drug_rxcui: string; labeler: string | null; package_description: string | null; source: 'fda-ndc' }[] = [];
    const schedules = new Map<string, Schedule>();
    for (const p of products.values()) {
      if (!p.packages.length) continue;
      const mapped = new Set(p.packages.map((k) => rxnormNdc.get(k.ndc)).filter((x): x is string => !!x));
      let drug: string | null = mapped.size === 1 ? [...mapped][0]! : null;
      let method: 'rxnorm' | 'match' = 'rxnorm';
      if (!mapped.size) {
        method = 'match';
        const scd = (p.key && only(exact.get(p.key))) || (p.baseKey && !exact.has(p.key ?? '') ? only(loose.get(p.baseKey)) : null);
        drug = scd ? (brandOf.get(`${scd}|${p.brand}`) ?? scd) : null;
      }
      for (const k of p.packages) {
        // a package RxNorm maps keeps its drug (also when the product's packages map to several)
        const target = rxnormNdc.get(k.ndc) ?? drug;
        if (!target) {
          counts.unmatched++;
          continue;
        }
        if (rxnormNdc.has(k.ndc) || method === 'rxnorm') counts.linkedByRxnorm++;
        else counts.linkedByMatch++;
        rows.push({ ndc: k.ndc, drug_rxcui: target, labeler: p.labeler || null, package_description: k.description, source: 'fda-ndc' });
        if (p.schedule) {
          const cur = schedules.get(target);
          if (!cur || SCHEDULE_RANK[p.schedule] < SCHEDULE_RANK[cur]) schedules.set(target, p.schedule);
        }
      }
    }

    for (let i = 0; i < rows.length; i += BATCH) {
      const batch = rows.slice(i, i + BATCH);
      await sql.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(hashtext('carebase:rx-catalog-seed'))`;
        // an RxNorm link keeps its drug and source; only what differs is written (a second run writes nothing)
        const written = await tx<{ inserted: boolean }[]>`
          insert into rx_drug_ndcs ${tx(batch)} on conflict (ndc) do update set
            drug_rxcui = case when rx_drug_ndcs.source = 'rxnorm' then rx_drug_ndcs.drug_rxcui else excluded.drug_rxcui end,
            source = case when rx_drug_ndcs.source = 'rxnorm' then 'rxnorm' else 'fda-ndc' end,
            labeler = excluded.labeler, package_description = excluded.package_description
          where (rx_drug_ndcs.labeler, rx_drug_ndcs.package_description) is distinct from (excluded.labeler, excluded.package_description)
             or (rx_drug_ndcs.source <> 'rxnorm' and (rx_drug_ndcs.drug_rxcui, rx_drug_ndcs.source) is distinct from (excluded.drug_rxcui, 'fda-ndc'))
          returning (xmax = 0) as inserted`;
        for (const w of written) w.inserted ? counts.ndcsInserted++ : counts.ndcsUpdated++;
      });
    }
    const scheduleRows = [...schedules].map(([rxcui, dea_schedule]) => ({ rxcui, dea_schedule }));
    for (let i = 0; i < scheduleRows.length; i += BATCH) {
      const batch = scheduleRows.slice(i, i + BATCH);
      await sql.begin(async (tx) => {
        await tx`select pg_advisory_xact_lock(hashtext('carebase:rx-catalog-seed'))`;
        const changed = await tx`
          update rx_drugs d set dea_schedule = v.dea_schedule, updated_at = now()
          from (select * from jsonb_to_recordset(${tx.json(batch)}) as x(rxcui text, dea_schedule text)) v
          where d.rxcui = v.rxcui and d.dea_schedule is distinct from v.dea_schedule returning d.rxcui`;
        counts.schedulesUpdated += changed.length;
      });
    }

    const hash = createHash('sha256');
    for (const f of [productFile, packageFile]) for await (const chunk of createReadStream(f)) hash.update(chunk as Buffer);
    await sql`insert into rx_catalog_sources (name, content_hash, counts) values ('fda-ndc', ${hash.digest('hex')}, ${sql.json({ ...counts })})
      on conflict (name) do update set content_hash = excluded.content_hash, counts = excluded.counts, loaded_at = now()
      where rx_catalog_sources.content_hash <> excluded.content_hash`;
  } finally {
    await sql.end({ timeout: 5 });
  }
  log(`imported ${JSON.stringify(counts)}`);
  return counts;
}
