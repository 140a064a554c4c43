import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import { BREAK, Kind, visit, type ASTNode, type DocumentNode } from 'graphql';
import { hasAuditRequest, recordSecurityEvent, type AuditableContext } from '../audit/index.js';
import { AppError, ErrorCode } from '../errors.js';
import { hasUnsafeText } from '../text.js';

/** Deepest nesting of `{`, `[` and `(` in a query text (the parser recurses once per level). */
export const MAX_QUERY_NESTING = 64;
/** Deepest nesting of objects and lists in the variables. */
export const MAX_VARIABLE_DEPTH = 32;
/** Most values (object entries and list items, at any depth) in the variables. */
export const MAX_VARIABLE_VALUES = 500;

/**
 * The input rules every GraphQL request passes before a resolver runs, for
 * every module at once (no field-by-field checks):
 *  - no subscription over HTTP (BAD_REQUEST, 400; realtime is socket.io);
 *  - the variables nest at most MAX_VARIABLE_DEPTH levels and hold at most
 *    MAX_VARIABLE_VALUES values (BAD_USER_INPUT, 400);
 *  - no input string, in a literal of the document or anywhere in the
 *    variables (String, ID, custom scalars, input objects, lists, object
 *    keys), holds a NUL or an unpaired surrogate: PostgreSQL cannot store
 *    them (BAD_USER_INPUT, 400). A signed-in caller's refusal is audited
 *    (security event `input_refused`, denied; the argument, never the value).
 * The query-string parameters of every HTTP route (REST routes included) get
 * the same string rule in app.ts (unsafeQueryParam).
 */
export function inputRulesPlugin<C extends BaseContext & AuditableContext>(): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ operation, document, request, contextValue }) {
          if (operation?.operation === 'subscription') {
            throw new AppError(ErrorCode.BAD_REQUEST, 'Subscriptions are not served over HTTP; use the realtime connection', {
              http: { status: 400 },
            });
          }
          // a literal can hold these characters only through a \u escape
          const where = unsafeVariable(request.variables) ?? (request.query?.includes('\\u') === false ? undefined : unsafeLiteral(document));
          if (!where) return;
          if (contextValue.principal && hasAuditRequest(contextValue)) {
            recordSecurityEvent(contextValue, { type: 'input_refused', outcome: 'denied', detail: { input: where } });
          }
          throw new AppError(ErrorCode.BAD_USER_INPUT, UNSAFE_INPUT_MESSAGE, {
            field: where,
            http: { status: 400 },
          });
        },
      };
    },
  };
}

/**
 * A scan of the query text, skipping strings and comments; true when `{[(`
 * nest deeper than `limit`. Run before Apollo parses the query (app.ts,
 * preHandler of /graphql: QUERY_TOO_COMPLEX, 400), since the parser recurses
 * once per level and a deep literal would overflow the stack.
 */
export function exceedsNesting(query: string, limit: number): boolean {
  let depth = 0;
  for (let i = 0; i < query.length; i++) {
    const c = query[i];
    if (c === '{' || c === '[' || c === '(') {
      if (++depth > limit) return true;
    } else if (c === '}' || c === ']' || c === ')') {
      if (depth > 0) depth--;
    } else if (c === '#') {
      while (i < query.length && query[i] !== '\n' && query[i] !== '\r') i++;
    } else if (c === '"') {
      if (query.startsWith('""', i + 1)) {
        // block string: ends at an unescaped """
        i += 3;
        while (i < query.length && !(query.startsWith('"""', i) && query[i - 1] !== '\\')) i++;
        i += 2;
      } else {
        i++;
        while (i < query.length && query[i] !== '"' && query[i] !== '\n') i += query[i] === '\\' ? 2 : 1;
      }
    }
  }
  return false;
}

/** The first query-string parameter (of any HTTP route) holding an unsafe string, e.g. `?actorId=a%00b`. */
export function unsafeQueryParam(query: unknown): string | undefined {
  if (!query || typeof query !== 'object') return undefined;
  for (const [k, v] of Object.entries(query)) {
    if ([k, v].flat().some((x) => typeof x === 'string' && hasUnsafeText(x))) return NAME.test(k) ? k : 'query';
  }
  return undefined;
}

/** The message of every unsafe-string refusal. */
export const UNSAFE_INPUT_MESSAGE = 'Input strings must not contain NUL characters or unpaired surrogates';

/**
 * Walks the raw variables without recursion (a deep value cannot overflow the
 * stack). Returns the path of the first unsafe string; throws when the
 * variables are too deep or too large.
 */
function unsafeVariable(variables: Record<string, unknown> | undefined): string | undefined {
  if (!variables) return undefined;
  const stack: [value: unknown, path: string, depth: number][] = [[variables, '$', 0]];
  let values = 0;
  while (stack.length) {
    const [value, path, depth] = stack.pop()!;
    if (typeof value === 'string') {
      if (hasUnsafeText(value)) return path;
    } else if (value !== null && typeof value === 'object') {
      if (depth >= MAX_VARIABLE_DEPTH) throw tooLarge(`Variables nest deeper than ${MAX_VARIABLE_DEPTH} levels`);
      const entries = Array.isArray(value) ? value.map((v, i) => [String(i), v] as const) : Object.entries(value);
      values += entries.length;
      if (values > MAX_VARIABLE_VALUES) throw tooLarge(`Variables hold more than ${MAX_VARIABLE_VALUES} values`);
      for (const [k, v] of entries) {
        if (hasUnsafeText(k)) return path;
        // the path is echoed and audited: keys that are not names (or list indexes) are not copied
        const step = NAME.test(k) ? k : '*';
        stack.push([v, path === '$' ? `$${step}` : `${path}.${step}`, depth + 1]);
      }
    }
  }
  return undefined;
}

const NAME = /^(?:[_A-Za-z][_0-9A-Za-z]{0,63}|\d{1,6})$/;

function tooLarge(message: string) {
  return new AppError(ErrorCode.BAD_USER_INPUT, message, { field: 'variables', http: { status: 400 } });
}

/** The first string literal of the document (arguments, input objects, lists, defaults) that is unsafe: `field(argument)`. */
function unsafeLiteral(document: DocumentNode): string | undefined {
  let found: string | undefined;
  visit(document, {
    StringValue(node, _key, _parent, _path, ancestors) {
      if (!hasUnsafeText(node.value)) return;
      const nodes = ancestors.filter((a): a is ASTNode => !Array.isArray(a) && 'kind' in (a as object));
      const field = nodes.findLast((a) => a.kind === Kind.FIELD || a.kind === Kind.DIRECTIVE || a.kind === Kind.VARIABLE_DEFINITION);
      const arg = nodes.findLast((a) => a.kind === Kind.ARGUMENT);
      const name = field?.kind === Kind.VARIABLE_DEFINITION ? `$${field.variable.name.value}` : field && 'name' in field ? field.name.value : '';
      found = arg && arg.kind === Kind.ARGUMENT ? `${name}(${arg.name.value})` : name || 'literal';
      return BREAK;
    },
  });
  return found;
}
