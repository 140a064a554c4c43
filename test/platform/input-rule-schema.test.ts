import { randomUUID } from 'node:crypto';
import {
  getNamedType,
  isEnumType,
  isInputObjectType,
  isListType,
  isNonNullType,
  isScalarType,
  type GraphQLArgument,
  type GraphQLField,
  type GraphQLInputType,
  type GraphQLObjectType,
} from 'graphql';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startTestApp, type TestApp } from '../helpers/app.js';

/**
 * The shared input rule covers every module: for every argument of every
 * Query and Mutation field that is (or holds, in an input object or a list) a
 * string-like scalar, a NUL in that one place is refused as BAD_USER_INPUT
 * before any resolver runs. Values are built from the schema, so a new
 * module's fields are covered without touching this test.
 */
let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({
    env: { RATE_LIMIT_ANON_IP_PER_MINUTE: '1000000', RATE_LIMIT_AUTH_IP_PER_MINUTE: '1000000', RATE_LIMIT_STORE: 'memory' },
  });
});
afterAll(async () => {
  await t?.close();
});

const NUL = 'a\u0000b';
const NOT_STRINGS = new Set(['Int', 'Float', 'Boolean']);

/** A valid-looking value of a type (only what the type requires). */
function sample(type: GraphQLInputType): unknown {
  if (isNonNullType(type)) return sample(type.ofType);
  if (isListType(type)) return [sample(type.ofType)];
  if (isEnumType(type)) return type.getValues()[0]!.name;
  if (isInputObjectType(type)) {
    return Object.fromEntries(
      Object.values(type.getFields())
        .filter((f) => isNonNullType(f.type) && f.defaultValue === undefined)
        .map((f) => [f.name, sample(f.type)]),
    );
  }
  switch (type.name) {
    case 'Int':
    case 'Float':
      return 1;
    case 'Boolean':
      return true;
    case 'UUID':
      return randomUUID();
    case 'Date':
      return '2020-01-02';
    case 'DateTime':
      return '2020-01-02T03:04:05Z';
    case 'Email':
      return 'someone@example.test';
    case 'JSON':
      return {};
    default:
      return 'x';
  }
}

/** Every way to reach a string-like scalar inside a type: a path of input-object field names (lists are entered). */
function stringLeaves(type: GraphQLInputType, seen: readonly string[] = []): string[][] {
  const named = getNamedType(type);
  if (isScalarType(named)) return NOT_STRINGS.has(named.name) ? [] : [[]];
  if (!isInputObjectType(named) || seen.includes(named.name)) return [];
  return Object.values(named.getFields()).flatMap((f) => stringLeaves(f.type, [...seen, named.name]).map((p) => [f.name, ...p]));
}

/** A value of `type` whose leaf at `path` is `leaf` (every required field filled with a sample). */
function withLeaf(type: GraphQLInputType, path: readonly string[], leaf: string): unknown {
  if (isNonNullType(type)) return withLeaf(type.ofType, path, leaf);
  if (isListType(type)) return [withLeaf(type.ofType, path, leaf)];
  if (!isInputObjectType(type)) return leaf;
  const [head, ...rest] = path;
  const field = type.getFields()[head!]!;
  return { ...(sample(type) as Record<string, unknown>), [head!]: withLeaf(field.type, rest, leaf) };
}

/** A GraphQL literal of `value` as `type` (strings through JSON, whose escapes GraphQL shares). */
function literal(value: unknown, type: GraphQLInputType): string {
  if (isNonNullType(type)) return literal(value, type.ofType);
  if (isListType(type)) return `[${(value as unknown[]).map((v) => literal(v, type.ofType)).join(', ')}]`;
  if (isEnumType(type)) return String(value);
  if (isInputObjectType(type)) {
    const fields = type.getFields();
    return `{ ${Object.entries(value as Record<string, unknown>)
      .map(([k, v]) => `${k}: ${literal(v, fields[k]!.type)}`)
      .join(', ')} }`;
  }
  return typeof value === 'string' ? JSON.stringify(value) : JSON.stringify(value);
}

interface Case {
  coordinate: string;
  query: string;
  variables?: Record<string, unknown>;
}

function casesOf(op: 'query' | 'mutation', root: GraphQLObjectType): Case[] {
  const cases: Case[] = [];
  for (const field of Object.values(root.getFields()) as GraphQLField<unknown, unknown>[]) {
    const selection = isScalarType(getNamedType(field.type)) || isEnumType(getNamedType(field.type)) ? '' : ' { __typename }';
    for (const target of field.args) {
      for (const path of stringLeaves(target.type)) {
        const coordinate = `${root.name}.${field.name}(${[target.name, ...path].join('.')})`;
        const args: [GraphQLArgument, unknown][] = field.args
          .filter((a) => a === target || (isNonNullType(a.type) && a.defaultValue === undefined))
          .map((a) => [a, a === target ? withLeaf(a.type, path, NUL) : sample(a.type)]);
        const defs = args.map(([a]) => `$${a.name}: ${String(a.type)}`).join(', ');
        cases.push({
          coordinate,
          query: `${op} Case(${defs}) { ${field.name}(${args.map(([a]) => `${a.name}: $${a.name}`).join(', ')})${selection} }`,
          variables: Object.fromEntries(args.map(([a, v]) => [a.name, v])),
        });
        const leafType = getNamedType(path.reduce<GraphQLInputType>((ty, name) => {
          const named = getNamedType(ty);
          return isInputObjectType(named) ? named.getFields()[name]!.type : ty;
        }, target.type));
        // the same value written as a literal, where a literal can carry it (String / ID; other scalars validate their literals)
        if ((leafType.name === 'String' || leafType.name === 'ID') && !args.some(([a, v]) => a !== target && typeof v === 'object')) {
          cases.push({
            coordinate: `${coordinate} literal`,
            query: `${op} { ${field.name}(${args.map(([a, v]) => `${a.name}: ${literal(v, a.type)}`).join(', ')})${selection} }`,
          });
        }
      }
    }
  }
  return cases;
}

describe('the shared input rule covers every string argument of every module', () => {
  it('a NUL in any string argument (or inside an input object or list argument) is BAD_USER_INPUT', async () => {
    const schema = t.app.schema;
    const cases = [...casesOf('query', schema.getQueryType()!), ...casesOf('mutation', schema.getMutationType()!)];
    const wrong: string[] = [];
    for (const c of cases) {
      const res = await fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ query: c.query, variables: c.variables }),
      });
      const body = (await res.json()) as { errors?: { extensions?: { code?: string } }[] };
      const codes = body.errors?.map((e) => e.extensions?.code);
      if (res.status !== 400 || codes?.length !== 1 || codes[0] !== 'BAD_USER_INPUT') wrong.push(`${c.coordinate}: ${res.status} ${JSON.stringify(codes)}`);
    }
    expect(wrong).toEqual([]);
    // every module is in the walk (a field of each, with a literal case where the type allows one)
    const covered = new Set(cases.map((c) => c.coordinate.replace(/\(.*$/, '')));
    for (const f of ['Query.patients', 'Query.auditEvents', 'Mutation.login', 'Mutation.createPatient', 'Mutation.invokeBreakGlass']) {
      expect(covered, f).toContain(f);
    }
    expect(cases.filter((c) => c.coordinate.endsWith(' literal')).length).toBeGreaterThan(10);
    expect(cases.length).toBeGreaterThan(100);
  });
});
