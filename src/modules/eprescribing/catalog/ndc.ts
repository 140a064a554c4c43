/**
 * National Drug Codes. The FDA assigns 10-digit NDCs in three segments, labeler-product-package, as 4-4-2, 5-3-2 or
 * 5-4-1; claims and RxNorm use the 11-digit 5-4-2 form (HIPAA), made by padding the short segment with a leading zero:
 *   4-4-2  0310-0130-10   -> 00310013010
 *   5-3-2  68180-512-01   -> 68180051201
 *   5-4-1  12345-6789-1   -> 12345678901
 *   5-4-2  00310-0130-10  -> 00310013010 (also accepted without hyphens: 00310013010)
 * A 10-digit NDC without hyphens is ambiguous (which segment to pad is unknown) and refused, like anything else.
 */
const SEGMENTS: Record<string, (l: string, p: string, k: string) => string> = {
  '4-4-2': (l, p, k) => `0${l}${p}${k}`,
  '5-3-2': (l, p, k) => `${l}0${p}${k}`,
  '5-4-1': (l, p, k) => `${l}${p}0${k}`,
  '5-4-2': (l, p, k) => `${l}${p}${k}`,
};

/** The 11-digit 5-4-2 form of an NDC, or null when it is not an NDC in one of the accepted forms. */
export function normalizeNdc(input: string): string | null {
  const s = input.trim();
  if (/^\d{11}$/.test(s)) return s;
  const m = /^(\d{4,5})-(\d{3,4})-(\d{1,2})$/.exec(s);
  if (!m) return null;
  const [, l, p, k] = m as unknown as [string, string, string, string];
  const pad = SEGMENTS[`${l.length}-${p.length}-${k.length}`];
  return pad ? pad(l, p, k) : null;
}

/** The 11-digit product part (labeler + product, 5-4) of a product NDC as the FDA writes it (4-4, 5-3, 5-4), or null. */
export function normalizeProductNdc(input: string): string | null {
  const m = /^(\d{4,5})-(\d{3,4})$/.exec(input.trim());
  if (!m) return null;
  const [, l, p] = m as unknown as [string, string, string];
  if (l.length + p.length !== 8 && !(l.length === 5 && p.length === 4)) return null;
  return `${l.padStart(5, '0')}${p.padStart(4, '0')}`;
}
