import type { ApolloServerPlugin, BaseContext } from '@apollo/server';
import { ErrorCode } from '../errors.js';

/**
 * HTTP status of GraphQL responses whose errors have one (docs/operations.md
 * "Error codes"): a RATE_LIMITED error, whether the request budget refused
 * the request before execution or a resolver refused it (the sign-in lockout
 * of identity, a module's own limiter), answers 429 with `Retry-After`
 * (seconds, from `extensions.retryAfter` unless the resolver set the header).
 * Partial data of other root fields stays in the body.
 */
export function errorStatusPlugin<C extends BaseContext>(): ApolloServerPlugin<C> {
  return {
    async requestDidStart() {
      return {
        async willSendResponse({ response }) {
          const body = response.body.kind === 'single' ? response.body.singleResult : undefined;
          const limited = body?.errors?.find((e) => e.extensions?.code === ErrorCode.RATE_LIMITED);
          if (!limited) return;
          response.http.status = 429;
          const retryAfter = Number(limited.extensions?.retryAfter);
          if (!response.http.headers.has('retry-after')) response.http.headers.set('retry-after', String(Number.isFinite(retryAfter) && retryAfter > 0 ? Math.ceil(retryAfter) : 1));
        },
      };
    },
  };
}

/**
 * Every GraphQL response is `Cache-Control: no-store` (most carry PHI; none may
 * sit in a browser or proxy cache). Apollo's cache-control plugin used to set
 * it; that plugin is disabled (app.ts) because it instruments every field
 * resolution (a wrapper and a promise per field) for cache hints Carebase
 * never gives: 2-3% of a 20-result search's CPU.
 */
export function noStorePlugin<C extends BaseContext>(): ApolloServerPlugin<C> {
  const listener = {
    async willSendResponse({ response }: { response: { http: { headers: Map<string, string> } } }) {
      response.http.headers.set('cache-control', 'no-store');
    },
  };
  return {
    async requestDidStart() {
      return listener;
    },
  };
}
