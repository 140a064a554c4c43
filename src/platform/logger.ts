import pino, { type Logger } from 'pino';

/**
 * Keys whose values are PHI, secrets or tokens. They are censored wherever
 * they appear in a log object (top level and up to two levels deep), so a
 * careless `log.info({ input })` cannot leak them.
 */
export const REDACTED_KEYS = [
  'ssn', 'ssnLast4', 'password', 'newPassword', 'currentPassword', 'passwordHash', 'token', 'accessToken', 'refreshToken',
  'idToken', 'secret', 'apiKey', 'authorization', 'cookie', 'set-cookie', 'x-api-key', 'dateOfBirth', 'dob', 'birthDate',
  'givenName', 'familyName', 'preferredName', 'firstName', 'lastName', 'fullName', 'email', 'phone', 'phones', 'address',
  'totp', 'totpSecret', 'totpCode', 'mfaCode', 'recoveryCode', 'privateKey', 'plaintext', 'variables',
];

function redactPaths(): string[] {
  const paths: string[] = [];
  for (const k of REDACTED_KEYS) {
    const key = /^[A-Za-z_$][\w$]*$/.test(k) ? k : `["${k}"]`;
    const dot = key.startsWith('[') ? '' : '.';
    paths.push(key, `*${dot}${key}`, `*.*${dot}${key}`);
  }
  paths.push('req.headers.authorization', 'req.headers.cookie', 'req.headers["x-api-key"]', 'res.headers["set-cookie"]');
  return paths;
}

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: 'carebase' },
      redact: { paths: redactPaths(), censor: '[REDACTED]' },
      timestamp: pino.stdTimeFunctions.isoTime,
      formatters: { level: (label) => ({ level: label }) },
    },
    destination,
  );
}

export type { Logger };
