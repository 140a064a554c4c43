import { defaultFieldResolver, isObjectType, type GraphQLFieldResolver, type GraphQLSchema } from 'graphql';
import { AppError, ErrorCode } from '../platform/errors.js';
import type { Builder } from './builder.js';
import type { RequestContext } from './context.js';

const SINGLE = { queryField: 'Query', mutationField: 'Mutation', subscriptionField: 'Subscription' } as const;
const PLURAL = { queryFields: 'Query', mutationFields: 'Mutation', subscriptionFields: 'Subscription' } as const;
/** fields a module adds to a type by reference, often another module's (e.g. `Patient.visits` added by visits) */
const ON_TYPE_SINGLE = new Set(['objectField', 'interfaceField']);
const ON_TYPE_PLURAL = new Set(['objectFields', 'interfaceFields']);

function typeNameOf(ref: unknown): string | undefined {
  if (typeof ref === 'string') return ref;
  const name = (ref as { name?: unknown } | null)?.name;
  return typeof name === 'string' ? name : undefined;
}

/**
 * The builder a module registers its schema on, noting which root fields
 * (Query, Mutation, Subscription) it adds, and which fields it adds to types by
 * reference (objectField(s), interfaceField(s): a module extending another
 * module's type): `owned` gets `Type.field` -> key. Fields of the module's own
 * types need no gate: they are reached only through its gated fields.
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
      if (ON_TYPE_SINGLE.has(prop)) {
        return (ref: unknown, name: string, ...rest: unknown[]) => {
          const type = typeNameOf(ref);
          if (type) owned.set(`${type}.${name}`, key);
          return (value as (...a: unknown[]) => unknown).call(target, ref, name, ...rest);
        };
      }
      if (ON_TYPE_PLURAL.has(prop)) {
        return (ref: unknown, fields: (t: unknown) => Record<string, unknown>, ...rest: unknown[]) =>
          (value as (...a: unknown[]) => unknown).call(
            target,
            ref,
            (t: unknown) => {
              const out = fields(t);
              const type = typeNameOf(ref);
              if (type) for (const name of Object.keys(out)) owned.set(`${type}.${name}`, key);
              return out;
            },
            ...rest,
          );
      }
      return value;
    },
  });
}

/**
 * Wraps the fields modules with an entitlement key own (their root fields and
 * the fields they add to other types, interface fields on every implementing
 * type): an authenticated caller whose tenant lacks it gets
 * FEATURE_NOT_ENTITLED before anything else runs (cached per tenant: a
 * synchronous check on the hot path). A refusal is recorded in the audit log
 * as a security event (`feature_not_entitled`, denied), once per field and
 * request, like a refusal at a route.
 */
export function gateEntitledFields(schema: GraphQLSchema, owned: ReadonlyMap<string, string>): void {
  if (!owned.size) return;
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    const interfaces = type.getInterfaces();
    for (const field of Object.values(type.getFields())) {
      let key = owned.get(`${type.name}.${field.name}`);
      for (const i of interfaces) key ??= owned.get(`${i.name}.${field.name}`);
      if (!key) continue;
      const coordinate = `${type.name}.${field.name}`;
      field.resolve = gate(field.resolve ?? defaultFieldResolver, key, coordinate);
      if (field.subscribe) field.subscribe = gate(field.subscribe, key, coordinate);
    }
  }
}

/** fields already refused (and audited) in a request: a refused field of a list is recorded once */
const refused = new WeakMap<object, Set<string>>();

function auditRefusal(c: Partial<RequestContext>, key: string, coordinate: string, e: unknown): never {
  if (e instanceof AppError && e.code === ErrorCode.FEATURE_NOT_ENTITLED && typeof c.recordSecurityEvent === 'function') {
    let seen = refused.get(c);
    if (!seen) refused.set(c, (seen = new Set()));
    if (!seen.has(coordinate)) {
      seen.add(coordinate);
      c.recordSecurityEvent({ type: 'feature_not_entitled', outcome: 'denied', detail: { feature: key, field: coordinate } });
    }
  }
  throw e;
}

function gate(next: GraphQLFieldResolver<unknown, unknown>, key: string, coordinate: string): GraphQLFieldResolver<unknown, unknown> {
  return (parent, args, ctx, info) => {
    const c = ctx as Partial<RequestContext> | undefined;
    // anonymous callers have no tenant: the field's own authScopes refuse them
    if (!c?.principal || typeof c.requireEntitled !== 'function') return next(parent, args, ctx, info);
    let pending: void | Promise<void>;
    try {
      pending = c.requireEntitled(key);
    } catch (e) {
      return auditRefusal(c, key, coordinate, e);
    }
    return pending ? pending.then(() => next(parent, args, ctx, info), (e: unknown) => auditRefusal(c, key, coordinate, e)) : next(parent, args, ctx, info);
  };
}
