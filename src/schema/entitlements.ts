import { defaultFieldResolver, type GraphQLFieldResolver, type GraphQLSchema } from 'graphql';
import type { Builder } from './builder.js';
import type { RequestContext } from './context.js';

const SINGLE = { queryField: 'Query', mutationField: 'Mutation', subscriptionField: 'Subscription' } as const;
const PLURAL = { queryFields: 'Query', mutationFields: 'Mutation', subscriptionFields: 'Subscription' } as const;

/**
 * The builder a module registers its schema on, noting which root fields
 * (Query, Mutation, Subscription) it adds: `owned` gets `Type.field` -> key.
 */
export function entitledBuilder(builder: Builder, key: string, owned: Map<string, string>): Builder {
  return new Proxy(builder, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver);
      if (typeof prop !== 'string' || typeof value !== 'function') return value;
      if (prop in SINGLE) {
        const type = SINGLE[prop as keyof typeof SINGLE];
        return (name: string, ...rest: unknown[]) => {
          owned.set(`${type}.${name}`, key);
          return (value as (...a: unknown[]) => unknown).call(target, name, ...rest);
        };
      }
      if (prop in PLURAL) {
        const type = PLURAL[prop as keyof typeof PLURAL];
        return (fields: (t: unknown) => Record<string, unknown>) =>
          (value as (f: unknown) => unknown).call(target, (t: unknown) => {
            const out = fields(t);
            for (const name of Object.keys(out)) owned.set(`${type}.${name}`, key);
            return out;
          });
      }
      return value;
    },
  });
}

/**
 * Wraps the root fields of modules with an entitlement key: an authenticated
 * caller whose tenant lacks it gets FEATURE_NOT_ENTITLED before anything else
 * runs (cached per tenant: no extra work on the hot path).
 */
export function gateEntitledFields(schema: GraphQLSchema, owned: ReadonlyMap<string, string>): void {
  for (const type of [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()]) {
    if (!type) continue;
    for (const field of Object.values(type.getFields())) {
      const key = owned.get(`${type.name}.${field.name}`);
      if (!key) continue;
      field.resolve = gate(field.resolve ?? defaultFieldResolver, key);
      if (field.subscribe) field.subscribe = gate(field.subscribe, key);
    }
  }
}

function gate(next: GraphQLFieldResolver<unknown, unknown>, key: string): GraphQLFieldResolver<unknown, unknown> {
  return (parent, args, ctx, info) => {
    const c = ctx as Partial<RequestContext> | undefined;
    // anonymous callers have no tenant: the field's own authScopes refuse them
    if (!c?.principal || typeof c.requireEntitled !== 'function') return next(parent, args, ctx, info);
    const pending = c.requireEntitled(key);
    return pending ? pending.then(() => next(parent, args, ctx, info)) : next(parent, args, ctx, info);
  };
}
