import type { GraphQLFormattedError } from 'graphql';
import { unwrapResolverError } from '@apollo/server/errors';
import { dbAppError } from '../db/errors.js';
import { RequestTransaction } from '../db/tenancy.js';
import { AppError, ErrorCode } from '../errors.js';

/** Codes Apollo itself assigns to request errors; they are safe to pass through once sanitised. */
const APOLLO_REQUEST_CODES = new Set([
  'GRAPHQL_PARSE_FAILED',
  'GRAPHQL_VALIDATION_FAILED',
  'BAD_USER_INPUT',
  'BAD_REQUEST',
  'PERSISTED_QUERY_NOT_FOUND',
  'PERSISTED_QUERY_NOT_SUPPORTED',
  'OPERATION_RESOLUTION_FAILURE',
]);

/** Armor's validation messages, recoded so clients can tell "too complex" from a typo. */
const COMPLEXITY = /(Query depth limit|Aliases limit|Directives limit|Query Cost limit|Token limit)/i;

const SAFE_REASONS = [
  /^Expected type "[\w!\[\]]+"\.?$/,
  /^Field "\w+" of required type "[\w!\[\]]+" was not provided\.?$/,
  /^Field "\w+" is not defined by type "\w+"\.?$/,
  /^Expected non-nullable type "[\w!\[\]]+" not to be null\.?$/,
];

/**
 * Variable coercion errors echo the rejected value ('got invalid value
 * "123-45-6789"'), and it may be PHI: keep the variable, the path and a
 * reason that cannot carry the value.
 */
function sanitizeVariableError(message: string): string | undefined {
  const head = /^Variable "(\$[_A-Za-z]\w*)" got invalid value/.exec(message);
  if (!head) return undefined;
  const tail = /(?: at "([_A-Za-z][\w.[\]]*)")?; ([^;]*)$/.exec(message);
  const at = tail?.[1] ? ` at "${tail[1]}"` : '';
  let reason = tail?.[2]?.trim() ?? '';
  const enumName = /does not exist in "(\w+)" enum/.exec(reason)?.[1];
  if (enumName) reason = `Value does not exist in "${enumName}" enum.`;
  else if (!SAFE_REASONS.some((r) => r.test(reason)) && /["'`:]/.test(reason)) reason = 'Invalid value.';
  return `Variable "${head[1]}" got invalid value${at}${reason ? `; ${reason}` : '.'}`;
}

/**
 * Strips anything a client must not see from a message: suggestions that leak
 * the schema ("Did you mean ..."), and input values echoed back by coercion.
 */
export function sanitizeMessage(message: string): string {
  const withoutSuggestions = message.replace(/\s*Did you mean[^?]*\?/g, '');
  return (
    sanitizeVariableError(withoutSuggestions) ??
    withoutSuggestions
      .replace(/(Expected value of type "[^"]+", found) [\s\S]*?;/g, '$1 an invalid value;')
      .replace(/(cannot represent[^:]*:) [\s\S]*$/i, '$1 (value withheld)')
  ).slice(0, 500);
}

/**
 * Apollo formatError: typed errors keep their code and message, Apollo's
 * request errors are sanitised, and everything else is masked as
 * INTERNAL_SERVER_ERROR (the request id is added in willSendResponse and the
 * original is logged once by the error-logging plugin).
 */
export function formatError(formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError {
  let original = unwrapResolverError(error);
  if (!(original instanceof AppError)) {
    // a database outage or deadline in any resolver becomes a typed, retryable error
    const typed = dbAppError(original);
    if (typed) {
      RequestTransaction.failed(original);
      original = typed;
    }
  }
  if (original instanceof AppError) {
    const { http: _http, ...extensions } = (original.extensions ?? {}) as Record<string, unknown>;
    return { message: original.message, locations: formatted.locations, path: formatted.path, extensions: { ...extensions, code: original.code } };
  }
  const code = String(formatted.extensions?.code ?? '');
  if (APOLLO_REQUEST_CODES.has(code)) {
    const message = sanitizeMessage(formatted.message);
    const recoded = code === 'GRAPHQL_VALIDATION_FAILED' && COMPLEXITY.test(message) ? ErrorCode.QUERY_TOO_COMPLEX : code;
    return { message, locations: formatted.locations, extensions: { code: recoded } };
  }
  // graphql-js stops coercing variables after 50 errors with one more error of its own, without a code: still bad input
  if (formatted.message.startsWith('Too many errors processing variables')) {
    return { message: formatted.message, extensions: { code: ErrorCode.BAD_USER_INPUT } };
  }
  return { message: 'Internal server error', path: formatted.path, extensions: { code: ErrorCode.INTERNAL_SERVER_ERROR } };
}

/** True when an error reaching Apollo is not one we produced on purpose. */
export function isUnexpected(error: unknown): boolean {
  const original = unwrapResolverError(error);
  if (original instanceof AppError || dbAppError(original)) return false;
  const code = (error as { extensions?: { code?: unknown } }).extensions?.code;
  return !(typeof code === 'string' && APOLLO_REQUEST_CODES.has(code));
}

/** What is safe to log about an unexpected error: its kind and where, never its message text. */
export function describeForLog(error: unknown): Record<string, unknown> {
  const e = unwrapResolverError(error) as Error & { code?: string; constraint_name?: string; routine?: string };
  const frames = (e?.stack ?? '').split('\n').filter((l) => l.trimStart().startsWith('at ')).slice(0, 8).join('\n');
  return { errorName: e?.name, pgCode: e?.code, constraint: e?.constraint_name, routine: e?.routine, frames };
}
