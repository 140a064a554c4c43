/** Identity constants shared by the service, the schema, the routes and the CLI. */

/** The platform tenant (created by the identity migration): platform admins, signing keys, platform events. */
export const PLATFORM_TENANT_ID = '00000000-0000-4000-8000-000000000001';
export const PLATFORM_TENANT_SLUG = 'platform';
export const PLATFORM_ADMIN = 'PLATFORM_ADMIN';

/** Slugs no tenant may take (routes, the platform tenant). */
export const RESERVED_SLUGS = new Set(['platform', 'admin', 'api', 'auth', 'www', 'graphql', 'static', 'well-known']);
export const SLUG_PATTERN = /^[a-z0-9](?:[a-z0-9-]{1,38}[a-z0-9])$/;

export const JWT_ALG = 'EdDSA';
export const JWT_TYP = 'at+jwt';
export const DEFAULT_ISSUER = 'urn:carebase';
export const DEFAULT_AUDIENCE = 'carebase-api';
/** access tokens live at most this long (issue 4: <= 15 min), and never longer than the tenant's idle timeout */
export const MAX_ACCESS_TTL_SECONDS = 15 * 60;
/** accepted clock skew on exp / nbf / iat */
export const CLOCK_TOLERANCE_SECONDS = 30;

export const REFRESH_COOKIE = '__Secure-carebase_refresh';
/** the refresh cookie is sent only to /auth/refresh and /auth/logout */
export const REFRESH_COOKIE_PATH = '/auth';
/** custom header the refresh and logout endpoints require (a cross-site simple request cannot set it) */
export const CSRF_HEADER = 'x-carebase-csrf';

export const INVITATION_TTL_HOURS = 72;
export const MFA_CHALLENGE_TTL_SECONDS = 5 * 60;
export const MFA_CHALLENGE_MAX_ATTEMPTS = 5;
export const RECOVERY_CODE_COUNT = 10;
export const TOTP_PERIOD_SECONDS = 30;
export const TOTP_DIGITS = 6;
/** accept the previous and next 30 s step too (clock drift) */
export const TOTP_WINDOW = 1;

/** per-tenant settings (tenants.settings.auth) and their bounds */
export const AUTH_SETTING_DEFAULTS = { mfaRequired: false, idleTimeoutMinutes: 15, sessionLifetimeHours: 12 } as const;
export const IDLE_TIMEOUT_BOUNDS = { min: 5, max: 24 * 60 } as const;
export const SESSION_LIFETIME_BOUNDS = { min: 1, max: 30 * 24 } as const;

export interface AuthSettings {
  mfaRequired: boolean;
  idleTimeoutMinutes: number;
  sessionLifetimeHours: number;
}

/** The tenant's auth settings, with defaults for anything unset or out of bounds. */
export function authSettings(settings: Record<string, unknown> | null | undefined): AuthSettings {
  const raw = (settings?.auth ?? {}) as Partial<Record<keyof AuthSettings, unknown>>;
  const int = (v: unknown, b: { min: number; max: number }, d: number) =>
    typeof v === 'number' && Number.isInteger(v) && v >= b.min && v <= b.max ? v : d;
  return {
    mfaRequired: raw.mfaRequired === true,
    idleTimeoutMinutes: int(raw.idleTimeoutMinutes, IDLE_TIMEOUT_BOUNDS, AUTH_SETTING_DEFAULTS.idleTimeoutMinutes),
    sessionLifetimeHours: int(raw.sessionLifetimeHours, SESSION_LIFETIME_BOUNDS, AUTH_SETTING_DEFAULTS.sessionLifetimeHours),
  };
}
