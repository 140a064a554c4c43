import { randomUUID } from 'node:crypto';
import {
  getNamedType,
  isCompositeType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isScalarType,
  type GraphQLArgument,
  type GraphQLInputType,
} from 'graphql';
import type { RootOperation } from '../../../src/platform/access/index.js';

/** A value of an input type that passes GraphQL coercion and the usual zod checks (a placeholder, never real data). */
export function sampleValue(type: GraphQLInputType): unknown {
  if (isNonNullType(type)) return sampleValue(type.ofType);
  if (isListType(type)) return [sampleValue(type.ofType)];
  if (isEnumType(type)) return type.getValues()[0]!.name;
  if (isInputObjectType(type)) {
    const out: Record<string, unknown> = {};
    for (const f of Object.values(type.getFields())) {
      if (isNonNullType(f.type) && f.defaultValue === undefined) out[f.name] = sampleValue(f.type);
    }
    return out;
  }
  if (isScalarType(type)) {
    switch (type.name) {
      case 'UUID':
      case 'ID':
        return randomUUID();
      case 'Int':
        return 30;
      case 'Float':
        return 1.5;
      case 'Boolean':
        return false;
      case 'DateTime':
        return new Date(Date.now() + 86_400_000).toISOString();
      case 'Date':
        return '2026-01-15';
      case 'Email':
        return 'matrix-probe@example.com';
      case 'JSON':
        return {};
      default:
        return 'matrix-probe-value';
    }
  }
  throw new Error(`no sample for ${String(type)}`);
}

/** A minimal document calling one root field with placeholder values for its required arguments. */
export function probeOperation(op: RootOperation): { query: string; variables: Record<string, unknown> } {
  const required = op.field.args.filter((a: GraphQLArgument) => isNonNullType(a.type) && a.defaultValue === undefined);
  const defs = required.map((a) => `$${a.name}: ${String(a.type)}`).join(', ');
  const args = required.map((a) => `${a.name}: $${a.name}`).join(', ');
  const selection = isCompositeType(getNamedType(op.field.type)) ? ' { __typename }' : '';
  const query = `${op.type} Probe_${op.name}${defs ? `(${defs})` : ''} { ${op.name}${args ? `(${args})` : ''}${selection} }`;
  return { query, variables: Object.fromEntries(required.map((a) => [a.name, sampleValue(a.type)])) };
}

export interface Caller {
  authenticated: boolean;
  /** a signed-in user (not an API key) */
  user: boolean;
  permissions: ReadonlySet<string>;
}

/** Pothos scope-auth semantics for static scope maps: keys of one map are alternatives ($any) unless under $all. */
export function scopesAllow(spec: unknown, caller: Caller, mode: 'any' | 'all' = 'any'): boolean {
  if (typeof spec !== 'object' || spec === null) throw new Error('dynamic authScopes: add the field to the matrix by hand');
  const results = Object.entries(spec).map(([k, v]) => {
    switch (k) {
      case 'public':
        return v === true;
      case 'authenticated':
        return v === true && caller.authenticated;
      case 'user':
        return v === true && caller.user;
      case 'permission':
        return caller.permissions.has(String(v));
      case '$any':
        return scopesAllow(v, caller, 'any');
      case '$all':
        return scopesAllow(v, caller, 'all');
      default:
        throw new Error(`unknown scope ${k}`);
    }
  });
  return mode === 'any' ? results.some(Boolean) : results.every(Boolean);
}
