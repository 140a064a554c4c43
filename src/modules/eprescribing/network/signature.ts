import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Message authentication between Carebase and the pharmacy network (both
 * directions): an HMAC-SHA256 over the exact bytes of the body with a
 * shared secret, in the header
 *
 *   X-Script-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>
 *
 * The receiver recomputes it over the raw body, compares in constant time,
 * and refuses a timestamp more than SIGNATURE_TOLERANCE_S away from its
 * clock (a captured message cannot be replayed later; within the window
 * the SCRIPT MessageID deduplicates). Several v1 values may be sent and
 * several secrets accepted, so a secret is rotated without downtime.
 */
export const SIGNATURE_HEADER = 'x-script-signature';
export const SIGNATURE_TOLERANCE_S = 300;

function hmac(secret: string, t: number, body: string | Buffer): string {
  return createHmac('sha256', secret).update(`${t}.`).update(body).digest('hex');
}

/** The header value signing `body` at `now` (epoch ms) with each secret (the first is current). */
export function signScriptBody(body: string | Buffer, secrets: string | readonly string[], now = Date.now()): string {
  const t = Math.floor(now / 1000);
  const list = typeof secrets === 'string' ? [secrets] : secrets;
  return [`t=${t}`, ...list.map((s) => `v1=${hmac(s, t, body)}`)].join(',');
}

export type SignatureProblem = 'missing' | 'malformed' | 'expired' | 'mismatch';

/** undefined when `header` signs `body` with one of `secrets` within the tolerance; else what is wrong. */
export function checkScriptSignature(
  body: string | Buffer,
  header: string | string[] | undefined,
  secrets: readonly string[],
  now = Date.now(),
  toleranceS = SIGNATURE_TOLERANCE_S,
): SignatureProblem | undefined {
  if (header === undefined || header === '') return 'missing';
  if (typeof header !== 'string' || header.length > 2048) return 'malformed';
  let t: number | undefined;
  const sigs: string[] = [];
  for (const part of header.split(',')) {
    const [k, v, ...rest] = part.trim().split('=');
    if (rest.length || !k || !v) return 'malformed';
    if (k === 't' && /^\d{1,12}$/.test(v)) t = Number(v);
    else if (k === 'v1' && /^[0-9a-f]{64}$/.test(v)) sigs.push(v);
  }
  if (t === undefined || !sigs.length) return 'malformed';
  if (Math.abs(now / 1000 - t) > toleranceS) return 'expired';
  for (const secret of secrets) {
    const expected = Buffer.from(hmac(secret, t, body), 'hex');
    if (sigs.some((s) => timingSafeEqual(Buffer.from(s, 'hex'), expected))) return undefined;
  }
  return 'mismatch';
}
