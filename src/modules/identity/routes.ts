import { fastifyCookie } from '@fastify/cookie';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode } from '../../platform/errors.js';
import { logoutWithRefreshToken, refresh } from './auth.js';
import { CSRF_HEADER, REFRESH_COOKIE } from './constants.js';
import type { IdentityRuntime } from './runtime.js';
import { clearRefreshCookie, refreshCookie } from './schema.js';

const errorBody = (message: string, code: string, requestId: string, extra: Record<string, unknown> = {}) => ({
  errors: [{ message, extensions: { code, requestId, ...extra } }],
});

/**
 * CSRF defence for the cookie endpoints (on top of SameSite=Strict): the
 * custom header (a cross-site form or simple fetch cannot send it without a
 * CORS preflight, which is not granted), and, when the browser says where the
 * request comes from, a same-origin (or PUBLIC_ORIGINS) origin.
 */
function csrfProblem(req: FastifyRequest, publicOrigins: readonly string[]): string | null {
  if (req.headers[CSRF_HEADER] !== '1') return 'missing_csrf_header';
  const site = req.headers['sec-fetch-site'];
  if (typeof site === 'string' && !['same-origin', 'same-site', 'none'].includes(site)) return 'cross_site';
  const origin = req.headers.origin;
  if (origin !== undefined) {
    const own = `${req.protocol}://${req.host}`;
    if (origin !== own && !publicOrigins.includes(origin)) return 'foreign_origin';
  }
  return null;
}

function refreshTokenOf(req: FastifyRequest): string | undefined {
  const v = req.cookies?.[REFRESH_COOKIE];
  return typeof v === 'string' && v.length <= 200 ? v : undefined;
}

function refuseCsrf(req: FastifyRequest, reply: FastifyReply, problem: string) {
  return reply.code(403).send(errorBody('Missing or invalid anti-CSRF header', ErrorCode.FORBIDDEN, req.id, { reason: problem }));
}

/**
 * POST /auth/refresh: rotates the refresh cookie and returns a new access token.
 * POST /auth/logout: ends the cookie's session and clears the cookie.
 * GET /.well-known/jwks.json: public keys of every token that may still be valid.
 */
export async function registerIdentityRoutes(root: FastifyInstance, rt: () => IdentityRuntime, publicOrigins: readonly string[]) {
  // an encapsulated scope: the cookie plugin (request.cookies) applies to these routes only
  await root.register(async (app) => {
    await app.register(fastifyCookie);
    app.get('/.well-known/jwks.json', async (_req, reply) => {
      reply.header('cache-control', 'public, max-age=60');
      return rt().keys.jwks();
    });

    app.post('/auth/refresh', async (req, reply) => {
      reply.header('cache-control', 'no-store');
      const problem = csrfProblem(req, publicOrigins);
      if (problem) return refuseCsrf(req, reply, problem);
      const token = refreshTokenOf(req);
      const outcome = token ? await refresh(rt(), token, { ip: req.ip, userAgent: req.headers['user-agent'] }) : ({ ok: false, reason: 'invalid' } as const);
      if (!outcome.ok) {
        reply.header('set-cookie', clearRefreshCookie());
        const reason = token ? (outcome.reason === 'reuse' ? 'refresh_reuse' : outcome.reason === 'ended' ? 'session_ended' : 'invalid_refresh_token') : 'no_refresh_token';
        return reply.code(401).send(errorBody('Sign in again', ErrorCode.UNAUTHENTICATED, req.id, { reason }));
      }
      const s = outcome.session;
      reply.header('set-cookie', refreshCookie(s.refreshToken, s.refreshTokenExpiresAt, rt().now()));
      return { accessToken: s.accessToken, accessTokenExpiresAt: s.accessTokenExpiresAt.toISOString(), tokenType: 'Bearer' };
    });

    app.post('/auth/logout', async (req, reply) => {
      reply.header('cache-control', 'no-store');
      const problem = csrfProblem(req, publicOrigins);
      if (problem) return refuseCsrf(req, reply, problem);
      const token = refreshTokenOf(req);
      if (token) await logoutWithRefreshToken(rt(), token, { ip: req.ip });
      reply.header('set-cookie', clearRefreshCookie());
      return reply.code(204).send();
    });
  });
}
