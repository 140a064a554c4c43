import { createHash } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import postgres from 'postgres';

/**
 * Loads the curated catalog seed (../seed/catalog.json, sources in ../seed/README.md) into the global catalog tables,
 * as the owner (the app role may only read them). Idempotent: the seed's SHA-256 is recorded in rx_catalog_sources and
 * an unchanged seed is skipped; a changed one is upserted in one transaction (rows of other sources, such as an RxNorm
 * import, are never overwritten by the seed).
 */
export interface CatalogSeed {
  version: number;
  /** `source`: where the RxCUI was confirmed (documentation only, not stored) */
  ingredients: { rxcui: string; name: string; source?: string }[];
  classes: { id: string; name: string; parent: string | null; therapeutic: boolean }[];
  classMembers: Record<string, string[]>;
  drugs: {
    rxcui: string;
    name: string;
    strength: string | null;
    doseForm: string;
    route: string;
    brandName: string | null;
    schedule: 'CII' | 'CIII' | 'CIV' | 'CV' | null;
    ingredients: { name: string; strengthValue: number; strengthUnit: string }[];
    verified: boolean;
    /** the public data files that pair this RxCUI with this name (documentation only, not stored) */
    source?: string;
  }[];
  interactions: { a: string; b: string; severity: string; mechanism: string; management: string }[];
  crossSensitivities: { allergyClass: string; crossClass: string; severity: 'major' | 'moderate' | 'minor'; note: string }[];
}

const SEED_FILE = new URL('../seed/catalog.json', import.meta.url);
let cached: Promise<{ seed: CatalogSeed; hash: string }> | undefined;

export function readCatalogSeed(): Promise<{ seed: CatalogSeed; hash: string }> {
  cached ??= readFile(SEED_FILE).then((bytes) => ({ seed: JSON.parse(bytes.toString('utf8')) as CatalogSeed, hash: createHash('sha256').update(bytes).digest('hex') }));
  return cached;
}

/** Loads the seed unless this exact seed is already loaded; returns whether it wrote anything. */
export async function loadCatalogSeed(ownerUrl: string): Promise<boolean> {
  const { seed, hash } = await readCatalogSeed();
  const sql = postgres(ownerUrl, { max: 1, onnotice: () => undefined, connection: { application_name: 'carebase-rx-seed' } });
  try {
    const [loaded] = await sql<{ content_hash: string }[]>`select content_hash from rx_catalog_sources where name = 'seed'`;
    if (loaded?.content_hash === hash) return false;
    const rxcuiOf = new Map(seed.ingredients.map((i) => [i.name, i.rxcui]));
    const ing = (name: string) => {
      const rxcui = rxcuiOf.get(name);
      if (!rxcui) throw new Error(`catalog seed: unknown ingredient ${name}`);
      return rxcui;
    };
    await sql.begin(async (tx) => {
      // one loader at a time (two processes booting together)
      await tx`select pg_advisory_xact_lock(hashtext('carebase:rx-catalog-seed'))`;
      for (const i of seed.ingredients) {
        await tx`insert into rx_ingredients (rxcui, name, tty, source) values (${i.rxcui}, ${i.name}, 'IN', 'seed')
          on conflict (rxcui) do update set name = excluded.name, updated_at = now() where rx_ingredients.source = 'seed'`;
      }
      // parents first
      const ordered = [...seed.classes].sort((a, b) => Number(a.parent !== null) - Number(b.parent !== null));
      for (const c of ordered) {
        await tx`insert into rx_drug_classes (id, name, parent_id, system, therapeutic, source) values (${c.id}, ${c.name}, ${c.parent}, 'carebase', ${c.therapeutic}, 'seed')
          on conflict (id) do update set name = excluded.name, parent_id = excluded.parent_id, therapeutic = excluded.therapeutic where rx_drug_classes.source = 'seed'`;
      }
      for (const [classId, names] of Object.entries(seed.classMembers)) {
        for (const n of names) await tx`insert into rx_ingredient_classes (ingredient_rxcui, class_id) values (${ing(n)}, ${classId}) on conflict do nothing`;
      }
      for (const d of seed.drugs) {
        await tx`insert into rx_drugs (rxcui, name, tty, strength, dose_form, route, brand_name, dea_schedule, source)
          values (${d.rxcui}, ${d.name}, 'SCD', ${d.strength}, ${d.doseForm}, ${d.route}, ${d.brandName}, ${d.schedule}, 'seed')
          on conflict (rxcui) do update set name = excluded.name, strength = excluded.strength, dose_form = excluded.dose_form, route = excluded.route,
            brand_name = excluded.brand_name, dea_schedule = excluded.dea_schedule, updated_at = now() where rx_drugs.source = 'seed'`;
        for (const i of d.ingredients) {
          await tx`insert into rx_drug_ingredients (drug_rxcui, ingredient_rxcui, strength, strength_value, strength_unit)
            values (${d.rxcui}, ${ing(i.name)}, ${`${i.strengthValue} ${i.strengthUnit}`}, ${i.strengthValue}, ${i.strengthUnit})
            on conflict (drug_rxcui, ingredient_rxcui) do update set strength = excluded.strength, strength_value = excluded.strength_value, strength_unit = excluded.strength_unit`;
        }
        // a corrected seed drug keeps no ingredient an earlier seed gave it (only for drugs the seed still owns)
        await tx`delete from rx_drug_ingredients where drug_rxcui = ${d.rxcui} and not (ingredient_rxcui = any(${d.ingredients.map((i) => ing(i.name))}))
          and exists (select 1 from rx_drugs where rxcui = ${d.rxcui} and source = 'seed')`;
      }
      for (const x of seed.interactions) {
        const [a, b] = [ing(x.a), ing(x.b)].sort();
        await tx`insert into rx_interactions (ingredient_a, ingredient_b, severity, mechanism, management, source) values (${a!}, ${b!}, ${x.severity}, ${x.mechanism}, ${x.management}, 'seed')
          on conflict (ingredient_a, ingredient_b) do update set severity = excluded.severity, mechanism = excluded.mechanism, management = excluded.management where rx_interactions.source = 'seed'`;
      }
      const counts = { ingredients: seed.ingredients.length, classes: seed.classes.length, drugs: seed.drugs.length, interactions: seed.interactions.length };
      await tx`insert into rx_catalog_sources (name, content_hash, counts) values ('seed', ${hash}, ${tx.json(counts)})
        on conflict (name) do update set content_hash = excluded.content_hash, counts = excluded.counts, loaded_at = now()`;
    });
    return true;
  } finally {
    await sql.end({ timeout: 5 });
  }
}
