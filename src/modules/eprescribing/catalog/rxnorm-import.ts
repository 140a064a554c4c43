import { createReadStream } from 'node:fs';
import { access } from 'node:fs/promises';
import path from 'node:path';
import { createInterface } from 'node:readline';
import postgres from 'postgres';

/**
 * Imports a full RxNorm release (the RRF files of the monthly or weekly release, NLM) into the global catalog, as
 * the owner: ingredients (TTY IN/PIN), clinical and branded drugs (SCD/SBD) with strength, dose form, route, brand,
 * DEA schedule (RXNSAT DCSA) and NDCs (RXNSAT NDC, SAB=RXNORM), and each drug's ingredients. Only SAB=RXNORM rows
 * that are not suppressed are read. Files are streamed (a release has millions of relationship rows); rows are
 * upserted in batches, marked source 'rxnorm', and the seed's rows are replaced by the release's where they meet.
 *
 * RRF columns (pipe-delimited, a trailing pipe):
 *   RXNCONSO: RXCUI|LAT|TS|LUI|STT|SUI|ISPREF|RXAUI|SAUI|SCUI|SDUI|SAB|TTY|CODE|STR|SRL|SUPPRESS|CVF
 *   RXNREL:   RXCUI1|RXAUI1|STYPE1|REL|RXCUI2|RXAUI2|STYPE2|RELA|RUI|SRUI|SAB|SL|DIR|RG|SUPPRESS|CVF
 *             (RELA is the relationship RXCUI2 has to RXCUI1)
 *   RXNSAT:   RXCUI|LUI|SUI|RXAUI|STYPE|CODE|ATUI|SATUI|ATN|SAB|ATV|SUPPRESS|CVF
 * Interactions and classes are not part of RxNorm and stay as curated.
 */
export interface ImportCounts {
  ingredients: number;
  drugs: number;
  drugIngredients: number;
  ndcs: number;
}

const BATCH = 500;
const SCHEDULES: Record<string, 'CII' | 'CIII' | 'CIV' | 'CV'> = { CII: 'CII', CIII: 'CIII', CIV: 'CIV', CV: 'CV', '2': 'CII', '3': 'CIII', '4': 'CIV', '5': 'CV' };

async function* rows(file: string): AsyncGenerator<string[]> {
  const lines = createInterface({ input: createReadStream(file, { encoding: 'utf8' }), crlfDelay: Infinity });
  for await (const line of lines) if (line) yield line.split('|');
}

/** The route of a dose form name ("Oral Tablet" -> oral). */
export function routeOf(doseForm: string): string {
  const f = doseForm.toLowerCase();
  const by: [string, string][] = [
    ['sublingual', 'sublingual'],
    ['buccal', 'buccal'],
    ['oral', 'oral'],
    ['chewable', 'oral'],
    ['ophthalmic', 'ophthalmic'],
    ['otic', 'otic'],
    ['nasal', 'nasal'],
    ['inhal', 'inhalation'],
    ['transdermal', 'transdermal'],
    ['topical', 'topical'],
    ['cream', 'topical'],
    ['ointment', 'topical'],
    ['rectal', 'rectal'],
    ['vaginal', 'vaginal'],
    ['inject', 'injection'],
    ['prefilled syringe', 'injection'],
    ['auto-injector', 'injection'],
  ];
  return by.find(([k]) => f.includes(k))?.[1] ?? 'other';
}

export async function importRxnorm(ownerUrl: string, dir: string, log: (msg: string) => void = () => undefined): Promise<ImportCounts> {
  const file = (name: string) => path.join(dir, name);
  for (const f of ['RXNCONSO.RRF', 'RXNREL.RRF', 'RXNSAT.RRF']) {
    await access(file(f)).catch(() => {
      throw new Error(`${f} not found in ${dir} (the rrf/ folder of an RxNorm release)`);
    });
  }
  const ingredients = new Map<string, string>();
  const drugs = new Map<string, { name: string; tty: 'SCD' | 'SBD' }>();
  const doseForms = new Map<string, string>();
  const brands = new Map<string, string>();
  const components = new Set<string>();
  for await (const r of rows(file('RXNCONSO.RRF'))) {
    const [rxcui, , , , , , , , , , , sab, tty, , str, , suppress] = r;
    if (sab !== 'RXNORM' || suppress !== 'N' || !rxcui || !str) continue;
    if (tty === 'IN' || tty === 'PIN') ingredients.set(rxcui, str);
    else if (tty === 'SCD' || tty === 'SBD') drugs.set(rxcui, { name: str, tty });
    else if (tty === 'DF') doseForms.set(rxcui, str);
    else if (tty === 'BN') brands.set(rxcui, str);
    else if (tty === 'SCDC') components.add(rxcui);
  }
  log(`RXNCONSO: ${ingredients.size} ingredients, ${drugs.size} drugs`);

  const consistsOf = new Map<string, string[]>(); // SCD -> SCDCs
  const componentIngredient = new Map<string, string>(); // SCDC -> IN/PIN
  const doseFormOf = new Map<string, string>(); // drug -> DF
  const genericOf = new Map<string, string>(); // SBD -> SCD
  const brandOf = new Map<string, string>(); // SBD -> BN
  for await (const r of rows(file('RXNREL.RRF'))) {
    const [rxcui1, , , , rxcui2, , , rela, , , sab, , , , suppress] = r;
    if (sab !== 'RXNORM' || suppress === 'O' || !rxcui1 || !rxcui2) continue;
    // rxcui2 <rela> rxcui1
    if (rela === 'consists_of' && drugs.has(rxcui2!) && components.has(rxcui1)) consistsOf.set(rxcui2!, [...(consistsOf.get(rxcui2!) ?? []), rxcui1]);
    else if ((rela === 'has_ingredient' || rela === 'has_precise_ingredient') && components.has(rxcui2!) && ingredients.has(rxcui1)) {
      // the precise ingredient (a salt) wins over the base ingredient when both are given; interactions are by base ingredient, so keep the base
      if (rela === 'has_ingredient' || !componentIngredient.has(rxcui2!)) componentIngredient.set(rxcui2!, rxcui1);
    } else if (rela === 'has_ingredient' && drugs.get(rxcui2!)?.tty === 'SBD' && brands.has(rxcui1)) brandOf.set(rxcui2!, brands.get(rxcui1)!);
    else if (rela === 'has_dose_form' && drugs.has(rxcui2!) && doseForms.has(rxcui1)) doseFormOf.set(rxcui2!, doseForms.get(rxcui1)!);
    else if (rela === 'tradename_of' && drugs.get(rxcui2!)?.tty === 'SBD' && drugs.get(rxcui1)?.tty === 'SCD') genericOf.set(rxcui2!, rxcui1);
  }

  const strengthOf = new Map<string, string>(); // SCDC -> "10 MG"
  const scheduleOf = new Map<string, 'CII' | 'CIII' | 'CIV' | 'CV'>();
  const ndcs = new Map<string, string>(); // ndc -> drug
  for await (const r of rows(file('RXNSAT.RRF'))) {
    const [rxcui, , , , , , , , atn, sab, atv, suppress] = r;
    if (!rxcui || !atv || suppress === 'O' || suppress === 'Y') continue;
    if (atn === 'RXN_STRENGTH' && components.has(rxcui)) strengthOf.set(rxcui, atv);
    else if (atn === 'DCSA' && drugs.has(rxcui) && SCHEDULES[atv.toUpperCase()]) scheduleOf.set(rxcui, SCHEDULES[atv.toUpperCase()]!);
    else if (atn === 'NDC' && sab === 'RXNORM' && drugs.has(rxcui) && /^\d{11}$/.test(atv)) ndcs.set(atv, rxcui);
  }
  // a branded drug has its generic's ingredients and schedule
  for (const [sbd, scd] of genericOf) {
    if (!consistsOf.has(sbd) && consistsOf.has(scd)) consistsOf.set(sbd, consistsOf.get(scd)!);
    if (!scheduleOf.has(sbd) && scheduleOf.has(scd)) scheduleOf.set(sbd, scheduleOf.get(scd)!);
  }

  const sql = postgres(ownerUrl, { max: 1, onnotice: () => undefined, connection: { application_name: 'carebase-rx-import' } });
  const counts: ImportCounts = { ingredients: 0, drugs: 0, drugIngredients: 0, ndcs: 0 };
  const batches = <T>(xs: T[]) => Array.from({ length: Math.ceil(xs.length / BATCH) }, (_, i) => xs.slice(i * BATCH, (i + 1) * BATCH));
  try {
    await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtext('carebase:rx-catalog-seed'))`;
      for (const b of batches([...ingredients].map(([rxcui, name]) => ({ rxcui, name, tty: 'IN', source: 'rxnorm' })))) {
        await tx`insert into rx_ingredients ${tx(b)} on conflict (rxcui) do update set name = excluded.name, source = 'rxnorm', updated_at = now()`;
        counts.ingredients += b.length;
      }
      const drugRows = [...drugs]
        .filter(([rxcui]) => doseFormOf.has(rxcui) || doseFormOf.has(genericOf.get(rxcui) ?? ''))
        .map(([rxcui, d]) => {
          const doseForm = doseFormOf.get(rxcui) ?? doseFormOf.get(genericOf.get(rxcui)!)!;
          const strength = (consistsOf.get(rxcui) ?? []).map((c) => strengthOf.get(c)).filter(Boolean).join(' / ') || null;
          return {
            rxcui,
            name: d.name,
            tty: d.tty,
            strength,
            dose_form: doseForm,
            route: routeOf(doseForm),
            brand_name: d.tty === 'SBD' ? (brandOf.get(rxcui) ?? null) : null,
            generic_rxcui: d.tty === 'SBD' ? (genericOf.get(rxcui) ?? null) : null,
            dea_schedule: scheduleOf.get(rxcui) ?? null,
            source: 'rxnorm',
          };
        });
      for (const b of batches(drugRows)) {
        await tx`insert into rx_drugs ${tx(b)} on conflict (rxcui) do update set name = excluded.name, tty = excluded.tty, strength = excluded.strength,
          dose_form = excluded.dose_form, route = excluded.route, brand_name = excluded.brand_name, generic_rxcui = excluded.generic_rxcui,
          dea_schedule = excluded.dea_schedule, active = true, source = 'rxnorm', updated_at = now()`;
        counts.drugs += b.length;
      }
      const imported = new Set(drugRows.map((d) => d.rxcui));
      const links: { drug_rxcui: string; ingredient_rxcui: string; strength: string | null; strength_value: number | null; strength_unit: string | null }[] = [];
      for (const [drug, comps] of consistsOf) {
        if (!imported.has(drug)) continue;
        const seen = new Set<string>();
        for (const c of comps) {
          const ing = componentIngredient.get(c);
          if (!ing || seen.has(ing)) continue;
          seen.add(ing);
          const strength = strengthOf.get(c) ?? null;
          const m = strength ? /^([\d.]+)\s+(\S+)/.exec(strength) : null;
          links.push({ drug_rxcui: drug, ingredient_rxcui: ing, strength, strength_value: m ? Number(m[1]) : null, strength_unit: m ? m[2]! : null });
        }
      }
      for (const b of batches(links)) {
        await tx`insert into rx_drug_ingredients ${tx(b)} on conflict (drug_rxcui, ingredient_rxcui) do update set strength = excluded.strength,
          strength_value = excluded.strength_value, strength_unit = excluded.strength_unit`;
        counts.drugIngredients += b.length;
      }
      const ndcRows = [...ndcs].filter(([, d]) => imported.has(d)).map(([ndc, drug_rxcui]) => ({ ndc, drug_rxcui, source: 'rxnorm' }));
      for (const b of batches(ndcRows)) {
        await tx`insert into rx_drug_ndcs ${tx(b)} on conflict (ndc) do update set drug_rxcui = excluded.drug_rxcui, source = 'rxnorm'`;
        counts.ndcs += b.length;
      }
      await tx`insert into rx_catalog_sources (name, content_hash, counts) values (${`rxnorm:${path.basename(path.resolve(dir, '..'))}`}, ${String(drugRows.length)}, ${tx.json({ ...counts })})
        on conflict (name) do update set content_hash = excluded.content_hash, counts = excluded.counts, loaded_at = now()`;
    });
  } finally {
    await sql.end({ timeout: 5 });
  }
  log(`imported ${JSON.stringify(counts)}`);
  return counts;
}
