/**
 * Stripe's request encoding: application/x-www-form-urlencoded with
 * bracketed keys for nested objects and indexed arrays, as the stripe SDK
 * writes them (`metadata[tenant_id]=...`, `payment_method_types[0]=card`,
 * `expand[]=...`). Values stay strings, like Stripe's own parser; the
 * handlers coerce and validate each parameter.
 */
export type FormValue = string | FormObject | FormValue[];
export interface FormObject {
  [key: string]: FormValue;
}

export class FormError extends Error {
  constructor(
    message: string,
    readonly param?: string,
  ) {
    super(message);
  }
}

const MAX_DEPTH = 5;
const MAX_PAIRS = 1000;

export function parseForm(body: string): FormObject {
  const root: FormObject = {};
  if (!body) return root;
  const pairs = body.split('&');
  if (pairs.length > MAX_PAIRS) throw new FormError('Too many parameters');
  for (const pair of pairs) {
    if (!pair) continue;
    const eq = pair.indexOf('=');
    const rawKey = eq < 0 ? pair : pair.slice(0, eq);
    const rawValue = eq < 0 ? '' : pair.slice(eq + 1);
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(rawKey.replace(/\+/g, ' '));
      value = decodeURIComponent(rawValue.replace(/\+/g, ' '));
    } catch {
      throw new FormError('Invalid URL encoding');
    }
    const m = /^([^[\]]+)((?:\[[^[\]]*\])*)$/.exec(key);
    if (!m) throw new FormError(`Invalid parameter name: ${key.slice(0, 100)}`, key.slice(0, 100));
    const path = [m[1]!, ...[...m[2]!.matchAll(/\[([^[\]]*)\]/g)].map((x) => x[1]!)];
    if (path.length > MAX_DEPTH) throw new FormError('Parameters are nested too deeply', m[1]);
    assign(root, path, value, key);
  }
  return normalizeArrays(root) as FormObject;
}

function assign(root: FormObject, path: string[], value: string, key: string): void {
  let node: FormObject = root;
  for (let i = 0; i < path.length; i++) {
    let seg = path[i]!;
    const last = i === path.length - 1;
    if (seg === '') seg = String(Object.keys(node).length); // `a[]=x`: append
    if (seg === '__proto__' || seg === 'constructor' || seg === 'prototype') throw new FormError(`Invalid parameter name: ${key}`, key);
    if (last) {
      if (typeof node[seg] === 'object') throw new FormError(`Invalid parameter: ${key} mixes a value and an object`, key);
      node[seg] = value;
      return;
    }
    const next = node[seg];
    if (next === undefined) node = (node[seg] = {}) as FormObject;
    else if (typeof next === 'string') throw new FormError(`Invalid parameter: ${key} mixes a value and an object`, key);
    else node = next as FormObject;
  }
}

/** Objects whose keys are exactly 0..n-1 become arrays (Stripe's indexed arrays). */
function normalizeArrays(v: FormValue): FormValue {
  if (typeof v === 'string' || Array.isArray(v)) return v;
  const keys = Object.keys(v);
  for (const k of keys) v[k] = normalizeArrays(v[k]!);
  if (keys.length > 0 && keys.every((k, i) => k === String(i))) return keys.map((k) => v[k]!);
  return v;
}
