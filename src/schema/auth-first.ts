import SchemaBuilder, { BasePlugin, type PothosOutputFieldConfig, type SchemaTypes } from '@pothos/core';
import type { GraphQLFieldResolver } from 'graphql';
import { AppError, ErrorCode, forbidden } from '../platform/errors.js';
import type { RequestContext } from './context.js';

/**
 * Authorization before argument validation. Pothos runs argument mappers
 * (the validation plugin's zod checks) outside every resolver wrapper, so
 * scope-auth alone would answer an anonymous or unauthorised caller with
 * BAD_USER_INPUT (and the validation rules) before refusing them. For root
 * fields with static authScopes and argument mappers, this plugin evaluates
 * the scopes first, with scope-auth's semantics and errors; scope-auth still
 * runs afterwards (and alone decides dynamic scopes).
 */

type Caller = RequestContext['principal'];

/** Static scope map semantics of @pothos/plugin-scope-auth; undefined = cannot decide statically. */
export function staticScopesAllow(spec: unknown, principal: Caller, mode: 'any' | 'all' = 'any'): boolean | undefined {
  if (typeof spec !== 'object' || spec === null) return undefined;
  const results: boolean[] = [];
  for (const [k, v] of Object.entries(spec)) {
    let r: boolean | undefined;
    if (k === 'public') r = v === true;
    else if (k === 'authenticated') r = v === true && !!principal;
    else if (k === 'user') r = v === true && principal?.kind === 'user';
    else if (k === 'permission') r = typeof v === 'string' && !!principal?.permissions.has(v);
    else if (k === '$any') r = staticScopesAllow(v, principal, 'any');
    else if (k === '$all') r = staticScopesAllow(v, principal, 'all');
    if (r === undefined) return undefined;
    results.push(r);
  }
  return mode === 'any' ? results.some(Boolean) : results.every(Boolean);
}

const ROOTS = new Set(['Query', 'Mutation', 'Subscription']);

export class AuthFirstPlugin<Types extends SchemaTypes> extends BasePlugin<Types> {
  override wrapArgMappers(resolver: GraphQLFieldResolver<unknown, Types['Context'], object>, fieldConfig: PothosOutputFieldConfig<Types>) {
    const scopes = (fieldConfig.pothosOptions as { authScopes?: unknown }).authScopes;
    if (!ROOTS.has(fieldConfig.parentType) || fieldConfig.argMappers.length === 0 || typeof scopes !== 'object' || scopes === null) return resolver;
    return (parent: unknown, args: object, ctx: Types['Context'], info: Parameters<GraphQLFieldResolver<unknown, unknown>>[3]) => {
      const principal = (ctx as RequestContext).principal;
      if (staticScopesAllow(scopes, principal) === false) {
        throw principal ? forbidden() : new AppError(ErrorCode.UNAUTHENTICATED, 'Authentication required');
      }
      return resolver(parent, args, ctx, info);
    };
  }
}

declare global {
  export namespace PothosSchemaTypes {
    export interface Plugins<Types extends SchemaTypes> {
      authFirst: AuthFirstPlugin<Types>;
    }
  }
}

SchemaBuilder.registerPlugin('authFirst', AuthFirstPlugin);

export default 'authFirst' as const;
