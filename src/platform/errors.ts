import { GraphQLError } from 'graphql';

/** Stable error codes clients can switch on (extensions.code). */
export const ErrorCode = {
  BAD_USER_INPUT: 'BAD_USER_INPUT',
  BAD_REQUEST: 'BAD_REQUEST',
  UNAUTHENTICATED: 'UNAUTHENTICATED',
  FORBIDDEN: 'FORBIDDEN',
  NOT_FOUND: 'NOT_FOUND',
  CONFLICT: 'CONFLICT',
  /** a state machine refused the change from the record's current state (e.g. admitting a cancelled visit) */
  INVALID_STATE_TRANSITION: 'INVALID_STATE_TRANSITION',
  RATE_LIMITED: 'RATE_LIMITED',
  FEATURE_NOT_ENTITLED: 'FEATURE_NOT_ENTITLED',
  KMS_UNAVAILABLE: 'KMS_UNAVAILABLE',
  /** an external provider (video, payments, pharmacy network) did not answer or refused; nothing was changed */
  PROVIDER_UNAVAILABLE: 'PROVIDER_UNAVAILABLE',
  AUDIT_UNAVAILABLE: 'AUDIT_UNAVAILABLE',
  DATABASE_UNAVAILABLE: 'DATABASE_UNAVAILABLE',
  PAYLOAD_TOO_LARGE: 'PAYLOAD_TOO_LARGE',
  QUERY_TOO_COMPLEX: 'QUERY_TOO_COMPLEX',
  TIMEOUT: 'TIMEOUT',
  SERVER_BUSY: 'SERVER_BUSY',
  IDEMPOTENCY_KEY_REUSED: 'IDEMPOTENCY_KEY_REUSED',
  /** a plan's provider seats are all in use (billing: adding a provider, a smaller plan) */
  SEAT_LIMIT_REACHED: 'SEAT_LIMIT_REACHED',
  /** a tenant's one free trial was already used (billing) */
  TRIAL_ALREADY_USED: 'TRIAL_ALREADY_USED',
  INTERNAL_SERVER_ERROR: 'INTERNAL_SERVER_ERROR',
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

/**
 * A typed, client-safe error. Its message must never contain PHI, secrets or
 * SQL: it is sent to the client as is. Anything that is not an AppError (or a
 * GraphQL validation error) is masked as INTERNAL_SERVER_ERROR.
 */
export class AppError extends GraphQLError {
  readonly code: ErrorCode;
  constructor(code: ErrorCode, message: string, extra: Record<string, unknown> = {}) {
    super(message, { extensions: { code, ...extra } });
    this.code = code;
    this.name = 'AppError';
  }
}

export const badInput = (message: string, field?: string) =>
  new AppError(ErrorCode.BAD_USER_INPUT, message, field ? { field } : {});
export const unauthenticated = (message = 'Authentication required') => new AppError(ErrorCode.UNAUTHENTICATED, message);
export const forbidden = (message = 'Not allowed') => new AppError(ErrorCode.FORBIDDEN, message);
export const notFound = (what = 'Resource') => new AppError(ErrorCode.NOT_FOUND, `${what} not found`);
export const conflict = (message: string) => new AppError(ErrorCode.CONFLICT, message);

export function isAppError(e: unknown): e is AppError {
  return e instanceof AppError;
}
