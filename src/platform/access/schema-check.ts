import type { GraphQLField, GraphQLSchema } from 'graphql';

/** A root field's declared scopes (Pothos scope-auth keeps them in the field's extensions). */
export type ScopeSpec = Record<string, unknown> | ((...args: unknown[]) => unknown);

export interface RootOperation {
  type: 'query' | 'mutation' | 'subscription';
  name: string;
  field: GraphQLField<unknown, unknown>;
  authScopes: ScopeSpec | undefined;
}

/** Every Query, Mutation and Subscription field of the schema with its authScopes. */
export function rootOperations(schema: GraphQLSchema): RootOperation[] {
  const out: RootOperation[] = [];
  const roots = [
    ['query', schema.getQueryType()],
    ['mutation', schema.getMutationType()],
    ['subscription', schema.getSubscriptionType()],
  ] as const;
  for (const [type, root] of roots) {
    if (!root) continue;
    for (const field of Object.values(root.getFields())) {
      const options = (field.extensions as { pothosOptions?: { authScopes?: ScopeSpec } } | undefined)?.pothosOptions;
      out.push({ type, name: field.name, field, authScopes: options?.authScopes });
    }
  }
  return out;
}

/** The permission names a static scope spec mentions (through $any / $all). */
export function permissionsInScopes(spec: unknown): string[] {
  if (!spec || typeof spec !== 'object') return [];
  const out: string[] = [];
  for (const [k, v] of Object.entries(spec)) {
    if (k === 'permission' && typeof v === 'string') out.push(v);
    else if (k === '$any' || k === '$all') out.push(...permissionsInScopes(v));
  }
  return out;
}

/**
 * Deny by default, checked at build time: every root field must declare
 * authScopes, and every permission it names must be in the permission table.
 * Returns the problems (empty when the schema is sound).
 */
export function authScopeProblems(schema: GraphQLSchema, isPermission: (p: string) => boolean): string[] {
  const problems: string[] = [];
  for (const op of rootOperations(schema)) {
    const label = `${op.type} ${op.name}`;
    if (op.authScopes === undefined || op.authScopes === null) {
      problems.push(`${label} declares no authScopes`);
      continue;
    }
    if (typeof op.authScopes === 'object' && Object.keys(op.authScopes).length === 0) problems.push(`${label} declares empty authScopes`);
    for (const p of permissionsInScopes(op.authScopes)) {
      if (!isPermission(p)) problems.push(`${label} requires unknown permission "${p}"`);
    }
  }
  return problems;
}

export class AuthScopeError extends Error {
  constructor(readonly problems: string[]) {
    super(`GraphQL schema is not deny-by-default: ${problems.join('; ')}`);
    this.name = 'AuthScopeError';
  }
}

/** Throws AuthScopeError when a root field lacks authScopes or names an unknown permission. */
export function assertAuthScopes(schema: GraphQLSchema, isPermission: (p: string) => boolean): void {
  const problems = authScopeProblems(schema, isPermission);
  if (problems.length) throw new AuthScopeError(problems);
}
