import { and, asc, eq, ne, sql, type SQL } from 'drizzle-orm';
import { badInput } from '../../platform/errors.js';
import type { RequestContext } from '../../schema/index.js';
import { readScopeCondition, requirePrincipal } from './access.js';
import { parseMrn } from './mrn.js';
import { patientReadColumns, readColumnsFor, ssnBlindIndex, viewOf, type PatientRecord, type PatientsRuntime, type PatientView } from './service.js';
import { patients } from './tables.js';
import { parseDate, parsePhone, parseSsn, phoneDigits } from './validation.js';

/**
 * Patient search with keyset (relay cursor) pagination.
 *
 * Every filter is served by an index of migration `patients`:
 *  - familyName / givenName prefix: a byte-wise range on the generated search
 *    keys (collation "C", carebase_search_norm: lower case, unaccent,
 *    letters and digits only) -> patients_name_idx (tenant_id, family_norm,
 *    given_norm, id), or patients_given_name_idx when only a given name is given;
 *    rows come out of the index already in page order, so a page costs
 *    O(log n + page size) whatever the tenant's size;
 *  - dateOfBirth -> patients_dob_idx; mrn -> patients_tenant_mrn_key;
 *    phone -> GIN patients_phone_digits_idx; ssn -> blind index,
 *    patients_ssn_index_idx (the SSN itself is never compared or decrypted).
 * The cursor is the id of the last row of the page (opaque, base64url): the
 * next page starts after that row's sort key, read again from the table, so
 * a cursor holds no name and stays valid while rows are added.
 */

export interface PatientSearchInput {
  /** "Family, Given" or a family name prefix */
  name?: string | null;
  familyName?: string | null;
  givenName?: string | null;
  dateOfBirth?: string | null;
  mrn?: string | null;
  phone?: string | null;
  ssn?: string | null;
  includeMerged?: boolean | null;
  includeInactive?: boolean | null;
}

export interface PatientPage {
  nodes: PatientView[];
  hasNextPage: boolean;
  endCursor: string | null;
  order: Order;
}

type Order = 'family' | 'given';
export const MAX_PAGE = 100;

export function encodeCursor(order: Order, id: string): string {
  return Buffer.from(`${order === 'family' ? 'f' : 'g'}:${id}`).toString('base64url');
}

function decodeCursor(cursor: string): { order: Order; id: string } {
  const s = Buffer.from(cursor, 'base64url').toString('utf8');
  const m = /^([fg]):([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/.exec(s);
  if (!m) throw badInput('after is not a cursor of this search', 'after');
  return { order: m[1] === 'f' ? 'family' : 'given', id: m[2]! };
}

/** Upper bound of a prefix range in byte order: nothing that starts with the prefix sorts at or above it. */
const rangeEnd = (key: SQL) => sql`(${key} || U&'\\+10FFFF')`;

function prefix(column: typeof patients.familyNorm, raw: string, field: string): SQL {
  const value = raw.trim();
  if (!value) throw badInput(`${field} must not be empty`, field);
  if (value.length > 100) throw badInput(`${field} must be at most 100 characters`, field);
  const key = sql`carebase_search_norm(${value})`;
  // (a term of punctuation only normalises to '' and matches every name, like an empty filter would)
  return sql`(${column} >= ${key} and ${column} < ${rangeEnd(key)})`;
}

export async function searchPatients(
  rt: PatientsRuntime,
  ctx: RequestContext,
  input: PatientSearchInput,
  page: { first?: number | null; after?: string | null },
  /** the Patient fields the request selects (readColumnsFor); unknown: every column */
  fields?: ReadonlySet<string>,
): Promise<PatientPage> {
  const p = requirePrincipal(ctx);
  const first = page.first ?? 20;
  if (!Number.isInteger(first) || first < 1 || first > MAX_PAGE) throw badInput(`first must be between 1 and ${MAX_PAGE}`, 'first');

  let family = input.familyName ?? undefined;
  let given = input.givenName ?? undefined;
  if (input.name) {
    if (family || given) throw badInput('give either name or familyName/givenName', 'filter.name');
    const [f, g] = input.name.split(',', 2);
    family = f;
    if (g !== undefined && g.trim()) given = g;
  }
  const where: (SQL | undefined)[] = [eq(patients.tenantId, p.tenantId), readScopeCondition(p)];
  if (family !== undefined) where.push(prefix(patients.familyNorm, family, input.name ? 'filter.name' : 'filter.familyName'));
  if (given !== undefined) where.push(prefix(patients.givenNorm, given, input.name ? 'filter.name' : 'filter.givenName'));
  if (input.dateOfBirth) where.push(eq(patients.dateOfBirth, parseDate(input.dateOfBirth, 'filter.dateOfBirth')));
  if (input.mrn) where.push(eq(patients.mrn, parseMrn(input.mrn, 'filter.mrn')));
  if (input.phone) where.push(sql`${patients.phoneDigits} @> array[${phoneDigits(parsePhone(input.phone, 'filter.phone'))}]::text[]`);
  if (input.ssn) where.push(eq(patients.ssnIndex, await ssnBlindIndex(rt.crypto, p.tenantId, parseSsn(input.ssn, 'filter.ssn'))));
  if (!input.includeMerged) where.push(ne(patients.status, 'merged'));
  if (input.includeInactive === false) where.push(eq(patients.status, 'active'));

  // a given-name-only search walks the given-name index; everything else the family-name one
  const order: Order = given !== undefined && family === undefined ? 'given' : 'family';
  const keys = order === 'family' ? [patients.familyNorm, patients.givenNorm, patients.id] : [patients.givenNorm, patients.familyNorm, patients.id];
  if (page.after) {
    const c = decodeCursor(page.after);
    if (c.order !== order) throw badInput('after is not a cursor of this search', 'after');
    const [a, b] = order === 'family' ? ['family_norm', 'given_norm'] : ['given_norm', 'family_norm'];
    where.push(
      sql`(${keys[0]}, ${keys[1]}, ${keys[2]}) > (select ${sql.identifier(a)}, ${sql.identifier(b)}, id from ${patients} c where c.tenant_id = ${p.tenantId} and c.id = ${c.id})`,
    );
  }
  const db = await ctx.db();
  const rows = await db
    .select(readColumnsFor(fields) as typeof patientReadColumns)
    .from(patients)
    .where(and(...where))
    .orderBy(...keys.map((k) => asc(k)))
    .limit(first + 1);
  const hasNextPage = rows.length > first;
  const pageRows = (hasNextPage ? rows.slice(0, first) : rows) as PatientRecord[];
  const last = pageRows.at(-1);
  return { nodes: pageRows.map((r) => viewOf(ctx, r)), hasNextPage, endCursor: last ? encodeCursor(order, last.id) : null, order };
}
