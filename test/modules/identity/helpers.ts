import { expect } from 'vitest';
import type { TestApp } from '../../helpers/app.js';
import { refreshTokenFrom } from '../../helpers/auth.js';

export const COOKIE = '__Secure-carebase_refresh';

/** POST /auth/refresh as a browser would (cookie + anti-CSRF header). */
export async function postRefresh(t: TestApp, refreshToken: string | undefined, headers: Record<string, string> = { 'x-carebase-csrf': '1' }) {
  const res = await fetch(`${t.url}/auth/refresh`, {
    method: 'POST',
    headers: { ...(refreshToken !== undefined ? { cookie: `${COOKIE}=${refreshToken}` } : {}), ...headers },
  });
  const text = await res.text();
  const body = text ? (JSON.parse(text) as Record<string, unknown>) : {};
  return { status: res.status, body, headers: res.headers, refreshToken: refreshTokenFrom(res.headers) };
}

export const bearer = (token: string) => ({ authorization: `Bearer ${token}` });

/** The first error's extensions.code of a GraphQL response. */
export function codeOf(res: { body: { errors?: { extensions?: Record<string, unknown> }[] } }): unknown {
  return res.body.errors?.[0]?.extensions?.code;
}

/** Asserts a request with this token is refused: HTTP 401, UNAUTHENTICATED, no data. */
export async function expectRefused(t: TestApp, token: string) {
  const res = await t.gql('{ viewer { user { id } } }', {}, bearer(token));
  expect(res.status).toBe(401);
  expect(codeOf(res)).toBe('UNAUTHENTICATED');
  expect(res.body.data ?? null).toBeNull();
  return res;
}

export async function expectAccepted(t: TestApp, token: string) {
  const res = await t.gql<{ viewer: { user: { id: string } } | null }>('{ viewer { user { id } } }', {}, bearer(token));
  expect(res.status).toBe(200);
  expect(res.body.errors).toBeUndefined();
  expect(res.body.data?.viewer?.user.id).toBeTruthy();
  return res;
}

/** Security events of a tenant (owner connection), oldest first. */
export async function eventsOf(t: TestApp, tenantId: string, type?: string) {
  return t.db.owner<{ type: string; user_id: string | null; session_id: string | null; details: Record<string, unknown> }[]>`
    select type, user_id, session_id, details from security_events
    where tenant_id = ${tenantId} ${type ? t.db.owner`and type = ${type}` : t.db.owner``} order by created_at, id`;
}
