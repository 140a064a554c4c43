import { and, asc, eq, inArray, sql, type SQL } from 'drizzle-orm';
import type { Db } from '../../../platform/db/index.js';
import { badInput, notFound } from '../../../platform/errors.js';
import type { RequestScope } from '../../../platform/scope/index.js';
import { intArg, principalOf, textArg } from '../rx-common.js';
import { rxDrugIngredients, rxDrugNdcs, rxDrugs, rxIngredients, type RxDrug } from '../tables.js';
import { normalizeNdc } from './ndc.js';

/**
 * Catalog reads (global reference data, not PHI; permission rx:catalog:read): one drug by RxCUI or by NDC, the
 * name-prefix search as a list (`drugs`) and as a keyset-paginated connection (`drugsConnection`), and the
 * ingredients and NDCs of drugs (batched by the GraphQL dataloaders).
 */

const RXCUI = /^\d{1,10}$/;

/** One drug by RxCUI (digits only, 1 to 10): BAD_USER_INPUT when malformed, NOT_FOUND when the catalog lacks it. */
export async function drugByRxcui(scope: RequestScope, rxcuiArg: unknown): Promise<RxDrug> {
  principalOf(scope, 'rx:catalog:read');
  const rxcui = typeof rxcuiArg === 'string' ? rxcuiArg.trim() : '';
  if (!RXCUI.test(rxcui)) throw badInput('rxcui must be an RxNorm concept id (1 to 10 digits)', 'rxcui');
  const db = await scope.db();
  const [drug] = await db.select().from(rxDrugs).where(eq(rxDrugs.rxcui, rxcui));
  if (!drug) throw notFound('Drug');
  return drug;
}

/** The drug of an NDC in any of the FDA's forms (normalised to 11 digits, see ndc.ts). */
export async function drugByNdc(scope: RequestScope, ndcArg: unknown): Promise<RxDrug> {
  principalOf(scope, 'rx:catalog:read');
  const ndc = typeof ndcArg === 'string' && ndcArg.length <= 20 ? normalizeNdc(ndcArg) : null;
  if (!ndc) throw badInput('ndc must be an NDC as 4-4-2, 5-3-2 or 5-4-1 with hyphens, or 11 digits (5-4-2, hyphens optional)', 'ndc');
  const db = await scope.db();
  const [row] = await db.select({ drug: rxDrugs }).from(rxDrugNdcs).innerJoin(rxDrugs, eq(rxDrugs.rxcui, rxDrugNdcs.drugRxcui)).where(eq(rxDrugNdcs.ndc, ndc));
  if (!row) throw notFound('Drug');
  return row.drug;
}

/** Upper bound of a prefix range in byte order (the search keys are collation "C"): nothing with the prefix sorts at or above it. */
const rangeEnd = (key: SQL) => sql`(${key} || U&'\\+10FFFF')`;

/**
 * Active drugs whose generic or brand name starts with `q` (case-, accent- and punctuation-insensitive): a range over
 * each search key, so the btree indexes on search_name / search_brand serve it.
 */
export function namePrefix(q: string): SQL {
  const key = sql`carebase_search_norm(${q})`;
  return sql`${rxDrugs.active} and ((${rxDrugs.searchName} >= ${key} and ${rxDrugs.searchName} < ${rangeEnd(key)})
    or (${rxDrugs.brandName} is not null and ${rxDrugs.searchBrand} >= ${key} and ${rxDrugs.searchBrand} < ${rangeEnd(key)}))`;
}

export interface DrugPage {
  nodes: RxDrug[];
  hasNextPage: boolean;
  endCursor: string | null;
}

/** A page cursor: the (name, rxcui) of the last drug of the page, base64url. */
export function drugCursor(d: Pick<RxDrug, 'name' | 'rxcui'>): string {
  return Buffer.from(JSON.stringify(['d1', d.name, d.rxcui])).toString('base64url');
}

function decodeDrugCursor(cursor: unknown): { name: string; rxcui: string } {
  const bad = () => badInput('after is not a cursor of this search', 'after');
  if (typeof cursor !== 'string' || cursor.length > 2000) throw bad();
  let v: unknown;
  try {
    v = JSON.parse(Buffer.from(cursor, 'base64url').toString('utf8'));
  } catch {
    throw bad();
  }
  if (!Array.isArray(v) || v.length !== 3 || v[0] !== 'd1' || typeof v[1] !== 'string' || typeof v[2] !== 'string' || !RXCUI.test(v[2])) throw bad();
  return { name: v[1], rxcui: v[2] };
}

/** The name-prefix search, ordered by name then RxCUI (a total order), `first` (1 to 100, default 20) after the cursor. */
export async function searchDrugPage(scope: RequestScope, args: { search: unknown; first?: unknown; after?: unknown }): Promise<DrugPage> {
  principalOf(scope, 'rx:catalog:read');
  const q = textArg(args.search, 'search', { min: 2, max: 100 })!;
  const first = intArg(args.first, 'first', 1, 100, true) ?? 20;
  const after = args.after === undefined || args.after === null ? null : decodeDrugCursor(args.after);
  const db = await scope.db();
  const conds = [namePrefix(q)];
  if (after) conds.push(sql`(${rxDrugs.name}, ${rxDrugs.rxcui}) > (${after.name}, ${after.rxcui})`);
  const rows = await db
    .select()
    .from(rxDrugs)
    .where(and(...conds))
    .orderBy(asc(rxDrugs.name), asc(rxDrugs.rxcui))
    .limit(first + 1);
  const nodes = rows.slice(0, first);
  const last = nodes.at(-1);
  return { nodes, hasNextPage: rows.length > first, endCursor: last ? drugCursor(last) : null };
}

export interface DrugIngredientView {
  rxcui: string;
  name: string;
  strength: string | null;
  strengthValue: number | null;
  strengthUnit: string | null;
}

/** The ingredients of each drug (by name), for a list of drugs in one query. */
export async function ingredientsOf(db: Db, drugRxcuis: readonly string[]): Promise<Map<string, DrugIngredientView[]>> {
  const out = new Map<string, DrugIngredientView[]>();
  if (!drugRxcuis.length) return out;
  const rows = await db
    .select({ drug: rxDrugIngredients.drugRxcui, rxcui: rxIngredients.rxcui, name: rxIngredients.name, strength: rxDrugIngredients.strength, strengthValue: rxDrugIngredients.strengthValue, strengthUnit: rxDrugIngredients.strengthUnit })
    .from(rxDrugIngredients)
    .innerJoin(rxIngredients, eq(rxIngredients.rxcui, rxDrugIngredients.ingredientRxcui))
    .where(inArray(rxDrugIngredients.drugRxcui, [...drugRxcuis]))
    .orderBy(asc(rxIngredients.name), asc(rxIngredients.rxcui));
  for (const { drug, ...i } of rows) {
    const list = out.get(drug) ?? [];
    list.push(i);
    out.set(drug, list);
  }
  return out;
}

export interface DrugNdcView {
  ndc: string;
  labeler: string | null;
  packageDescription: string | null;
  source: string;
}

/** The NDCs (11-digit) of each drug, for a list of drugs in one query. */
export async function ndcsOf(db: Db, drugRxcuis: readonly string[]): Promise<Map<string, DrugNdcView[]>> {
  const out = new Map<string, DrugNdcView[]>();
  if (!drugRxcuis.length) return out;
  const rows = await db
    .select({ drug: rxDrugNdcs.drugRxcui, ndc: rxDrugNdcs.ndc, labeler: rxDrugNdcs.labeler, packageDescription: rxDrugNdcs.packageDescription, source: rxDrugNdcs.source })
    .from(rxDrugNdcs)
    .where(inArray(rxDrugNdcs.drugRxcui, [...drugRxcuis]))
    .orderBy(asc(rxDrugNdcs.ndc));
  for (const { drug, ...n } of rows) {
    const list = out.get(drug) ?? [];
    list.push(n);
    out.set(drug, list);
  }
  return out;
}
