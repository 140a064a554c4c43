import { AppError, ErrorCode } from '../errors.js';

/**
 * Errors of the crypto layer. Messages name the failing step only: never a
 * value, key, wrapped key or encryption context (which holds a tenant id but
 * is kept out of client-facing messages anyway).
 */

export type CryptoFailure =
  /** the envelope's format version is not one this code can read */
  | 'ENVELOPE_UNSUPPORTED_VERSION'
  /** the envelope is shorter than its own headers say */
  | 'ENVELOPE_MALFORMED'
  /** authentication failed: tampered ciphertext, wrong context, wrong key */
  | 'DECRYPT_FAILED'
  /** the envelope names a key this provider does not hold */
  | 'UNKNOWN_KEY'
  /** a caller passed an invalid encryption context or normaliser input */
  | 'INVALID_INPUT'
  /** the local key provider cannot be used (production, unsafe key file) */
  | 'PROVIDER_REFUSED';

/**
 * A data-integrity or programming error. Not an AppError on purpose: the
 * GraphQL layer masks it as INTERNAL_SERVER_ERROR.
 */
export class CryptoError extends Error {
  constructor(
    readonly failure: CryptoFailure,
    message: string,
  ) {
    super(message);
    this.name = 'CryptoError';
  }
}

export type KmsFailureReason = 'throttled' | 'unavailable' | 'denied';

/** KMS throttled, unreachable or refusing: the client gets KMS_UNAVAILABLE. */
export class KmsUnavailableError extends AppError {
  constructor(
    readonly reason: KmsFailureReason,
    readonly operation: string,
  ) {
    super(ErrorCode.KMS_UNAVAILABLE, 'The encryption service is unavailable; try again later');
    this.name = 'KmsUnavailableError';
  }
}
