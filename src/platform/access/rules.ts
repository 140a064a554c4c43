import { sql, type SQL } from 'drizzle-orm';
import type { Db } from '../db/index.js';

/**
 * Attribute-based access (ABAC) to the records of one kind (a module's
 * "access scope", e.g. the patients module's patient scope), on top of RBAC.
 * The platform names no kind of record: a module creates its scope with
 * `createAccessScope` and exports it from its index.ts.
 *
 * RBAC first: the principal must hold `permission(action)`. Then every rule
 * of the scope votes for the (principal, action):
 *   - 'allow' / 'deny' / 'abstain' for every record, decided without the
 *     database (e.g. a tenant-wide role);
 *   - or a SQL condition over the record's id: `allowIf` (rows it allows,
 *     others abstain; `ref` names the record granting it, e.g. a break-glass
 *     grant) and `denyUnless` (rows outside it are denied, e.g. a patient's
 *     own record only).
 * Any deny wins; otherwise any allow grants; all abstain -> denied. Deny by
 * default. A rule that never denies (`allowOnly`) is skipped when another
 * rule allowed without the database: it could not change the outcome.
 *
 * The same rules give both answers, so they cannot drift apart:
 *   - `check(principal, id, action, db)`: one record, at most one query;
 *   - `where(principal, action, idColumn)`: a WHERE condition for lists and
 *     worklists, filtered in SQL (never row by row).
 * A rule may instead be a per-id function (`(principal, id, action, db) =>
 * decision`): `check` runs it, `where` cannot, so a scope with such a rule
 * refuses to build a list condition (tests, diagnostics).
 */
export type AccessDecision = 'allow' | 'deny' | 'abstain' | AllowWithRef;
/** An allow that names the record granting it (e.g. a break-glass grant id): the audit trail of the access carries it. */
export interface AllowWithRef {
  decision: 'allow';
  ref: string;
}

/** The parts of a Principal that rules see (structurally the schema's Principal). */
export interface AccessPrincipal {
  kind: 'user' | 'apiKey';
  id: string;
  tenantId: string;
  roles: readonly string[];
  permissions: ReadonlySet<string>;
}

/** A condition on the record whose id is `id` (a bound parameter in `check`, the id column in `where`). */
export type IdCondition = (id: SQL) => SQL;

/** What a rule says for one (principal, action). */
export type RuleVote =
  | 'allow'
  | 'deny'
  | 'abstain'
  | {
      /** records this rule allows (others: abstain) */
      allowIf?: IdCondition;
      /** an expression naming the record that allows it (text), evaluated where allowIf holds */
      ref?: IdCondition;
      /** records outside this condition are denied (whatever other rules say) */
      denyUnless?: IdCondition;
    };

export interface AccessRule<A extends string = string> {
  /** unique within the scope; reported as `rule` of the decision */
  name: string;
  /** the rule never denies: skipped when another rule allowed without the database */
  allowOnly?: boolean;
  vote(principal: AccessPrincipal, action: A): RuleVote;
}

/** A rule given as a per-id function (runs only in `check`). */
export type PerIdRule<A extends string = string> = (principal: AccessPrincipal, id: string, action: A, db: Db) => AccessDecision | Promise<AccessDecision>;

export interface AccessResult {
  allowed: boolean;
  /** rbac: the permission is missing; deny: a rule denied; default: no rule allowed; allow: `rule` allowed */
  outcome: 'rbac' | 'deny' | 'default' | 'allow';
  /** the rule that decided (deny or allow) */
  rule?: string;
  /** the record that allowed it, when the rule named one (a break-glass grant id) */
  ref?: string;
}

export interface AccessScopeOptions<A extends string> {
  /** what the scope is about, for messages (e.g. 'patient') */
  resource: string;
  /** the RBAC permission an action needs (e.g. read -> patient:read) */
  permission: (action: A) => string;
  rules?: readonly AccessRule<A>[];
}

interface Entry<A extends string> {
  name: string;
  allowOnly: boolean;
  rule?: AccessRule<A>;
  perId?: PerIdRule<A>;
}

const isAllow = (v: AccessDecision | undefined): boolean => v === 'allow' || (typeof v === 'object' && v !== null && v.decision === 'allow');

export class AccessScope<A extends string = string> {
  readonly resource: string;
  readonly permission: (action: A) => string;
  private readonly entries: Entry<A>[] = [];

  constructor(opts: AccessScopeOptions<A>) {
    this.resource = opts.resource;
    this.permission = opts.permission;
    for (const r of opts.rules ?? []) this.add(r);
  }

  /** Adds (or replaces, by name) a rule; returns a function that removes it. */
  add(rule: AccessRule<A>): () => void {
    return this.put({ name: rule.name, allowOnly: !!rule.allowOnly, rule });
  }

  /** Adds (or replaces) a per-id rule; returns a function that removes it. */
  addPerId(name: string, rule: PerIdRule<A>, options: { allowOnly?: boolean } = {}): () => void {
    return this.put({ name, allowOnly: !!options.allowOnly, perId: rule });
  }

  private put(entry: Entry<A>): () => void {
    const i = this.entries.findIndex((e) => e.name === entry.name);
    if (i >= 0) this.entries[i] = entry;
    else this.entries.push(entry);
    return () => {
      const j = this.entries.indexOf(entry);
      if (j >= 0) this.entries.splice(j, 1);
    };
  }

  /** Names of the rules (diagnostics, tests). */
  ruleNames(): string[] {
    return this.entries.map((e) => e.name);
  }

  /** RBAC + every rule for one record. Never throws for a denial. */
  async check(principal: AccessPrincipal, id: string, action: A, db: Db): Promise<AccessResult> {
    if (!principal.permissions.has(this.permission(action))) return { allowed: false, outcome: 'rbac' };
    const entries = [...this.entries];
    // votes decided without the database first
    const votes = entries.map((e) => (e.rule ? e.rule.vote(principal, action) : undefined));
    const constantDeny = votes.findIndex((v) => v === 'deny');
    if (constantDeny >= 0) return { allowed: false, outcome: 'deny', rule: entries[constantDeny]!.name };
    const perIdFirst = entries.map((e) => (e.perId && !e.allowOnly ? e.perId(principal, id, action, db) : undefined));
    const allowedAtOnce = votes.some((v) => v === 'allow') || perIdFirst.some((v) => v !== undefined && !(v instanceof Promise) && isAllow(v));
    // conditional votes: one query evaluates every condition for this id
    const conditional = entries
      .map((e, i) => ({ e, i, v: votes[i] }))
      .filter((x): x is { e: Entry<A>; i: number; v: Exclude<RuleVote, string> } => typeof x.v === 'object' && !(allowedAtOnce && x.e.allowOnly));
    const param = sql`${id}`;
    const evaluated = new Map<number, { allow: boolean; ref: string | null; denied: boolean }>();
    if (conditional.length) {
      const cols = conditional.map(({ v }, k) => sql`${v.allowIf ? v.allowIf(param) : sql`false`} as ${sql.raw(`a${k}`)}, ${v.ref && v.allowIf ? sql`case when ${v.allowIf(param)} then (${v.ref(param)})::text end` : sql`null::text`} as ${sql.raw(`r${k}`)}, ${v.denyUnless ? sql`not coalesce(${v.denyUnless(param)}, false)` : sql`false`} as ${sql.raw(`d${k}`)}`);
      const [row] = (await db.execute(sql`select ${sql.join(cols, sql`, `)}`)) as unknown as Record<string, unknown>[];
      conditional.forEach(({ i }, k) => evaluated.set(i, { allow: row?.[`a${k}`] === true, ref: (row?.[`r${k}`] as string | null) ?? null, denied: row?.[`d${k}`] === true }));
    }
    const perId = await Promise.all(
      entries.map(async (e, i) => {
        if (!e.perId) return undefined;
        if (!e.allowOnly) return perIdFirst[i]!;
        return allowedAtOnce ? ('abstain' as const) : e.perId(principal, id, action, db);
      }),
    );
    // deny wins, in rule order
    for (let i = 0; i < entries.length; i++) {
      if (evaluated.get(i)?.denied || perId[i] === 'deny') return { allowed: false, outcome: 'deny', rule: entries[i]!.name };
    }
    for (let i = 0; i < entries.length; i++) {
      const name = entries[i]!.name;
      if (votes[i] === 'allow') return { allowed: true, outcome: 'allow', rule: name };
      const ev = evaluated.get(i);
      if (ev?.allow) return ev.ref ? { allowed: true, outcome: 'allow', rule: name, ref: ev.ref } : { allowed: true, outcome: 'allow', rule: name };
      const p = perId[i];
      if (isAllow(p)) return typeof p === 'object' ? { allowed: true, outcome: 'allow', rule: name, ref: p.ref } : { allowed: true, outcome: 'allow', rule: name };
    }
    return { allowed: false, outcome: 'default' };
  }

  /**
   * The same decision as a WHERE condition over many records (`idColumn`:
   * the id column of the listed table). undefined = every record of the
   * tenant; `false` when nothing can be allowed.
   */
  where(principal: AccessPrincipal, action: A, idColumn: SQL): SQL | undefined {
    if (!principal.permissions.has(this.permission(action))) return sql`false`;
    const perId = this.entries.find((e) => e.perId);
    if (perId) throw new Error(`access scope ${this.resource}: rule ${perId.name} has no SQL form, lists cannot use it`);
    const votes = this.entries.map((e) => e.rule!.vote(principal, action));
    if (votes.includes('deny')) return sql`false`;
    const required: SQL[] = [];
    const allows: SQL[] = [];
    let allowAll = false;
    for (const v of votes) {
      if (v === 'allow') allowAll = true;
      else if (typeof v === 'object') {
        if (v.denyUnless) required.push(v.denyUnless(idColumn));
        if (v.allowIf) allows.push(v.allowIf(idColumn));
      }
    }
    if (!allowAll && !allows.length) return sql`false`;
    const parts = [...required, ...(allowAll ? [] : [allows.length === 1 ? allows[0]! : sql`(${sql.join(allows, sql` or `)})`])];
    if (!parts.length) return undefined;
    return parts.length === 1 ? parts[0] : sql`(${sql.join(parts, sql` and `)})`;
  }
}

export function createAccessScope<A extends string>(opts: AccessScopeOptions<A>): AccessScope<A> {
  return new AccessScope(opts);
}

/**
 * Answers "does this record exist in the current tenant?" for a kind of
 * record other modules refer to by id (e.g. 'patient'). Provided by the
 * module that owns the records, in its manifest:
 * `provides: { [resourceLookupKey('patient')]: lookup }` (a test module may
 * stand in for it).
 */
export type ResourceLookup = (db: Db, id: string) => Promise<boolean>;

/** The capability key of the lookups of one kind of record. */
export const resourceLookupKey = (resource: string) => `resource:${resource}`;

/** True when a lookup provided by an enabled module finds the record in the current tenant; false when none is provided. */
export async function resourceExists(scope: { provided<T>(key: string): T[] }, resource: string, db: Db, id: string): Promise<boolean> {
  for (const lookup of scope.provided<ResourceLookup>(resourceLookupKey(resource))) {
    if (await lookup(db, id)) return true;
  }
  return false;
}
