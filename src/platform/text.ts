/**
 * Characters PostgreSQL refuses in text and jsonb: NUL (22021 / 22P05) and
 * unpaired UTF-16 surrogates (22P02 in jsonb; mangled in text). One
 * definition for the input rule (refuses them) and the audit writer
 * (replaces them).
 */
const UNSAFE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
const UNSAFE_ALL = new RegExp(UNSAFE.source, 'g');

/** True when `s` holds a NUL or an unpaired surrogate. */
export function hasUnsafeText(s: string): boolean {
  return UNSAFE.test(s);
}

/** `s` with every NUL and unpaired surrogate replaced by U+FFFD. */
export function toSafeText(s: string): string {
  return UNSAFE.test(s) ? s.replace(UNSAFE_ALL, '\ufffd') : s;
}
