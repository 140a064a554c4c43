import { createHash } from 'node:crypto';
import type { AuditDetail, AuditEventInput } from './types.js';

/** prev_hash of a tenant's first event. */
export const GENESIS_HASH = Buffer.alloc(32, 0);

/** Version tag of the canonical form below; bump it (and keep the old one for verification) when the form changes. */
export const CANONICAL_VERSION = 'carebase-audit-v1';
/**
 * The form of an event about several patients (`patientIds` not empty): v1 with the sorted patient ids appended.
 * Which form a row has follows from the row itself (is `patient_ids` empty?), so every row written before v2 still
 * verifies, and emptying or filling a row's `patient_ids` afterwards changes its hash either way.
 */
export const CANONICAL_VERSION_MANY = 'carebase-audit-v2';

/** detail as sorted key/value pairs, without undefined values (as jsonb stores it) */
export function canonicalDetail(detail: AuditDetail): [string, string | number | boolean | null][] {
  return Object.keys(detail)
    .filter((k) => detail[k] !== undefined) // as JSON (jsonb) drops them
    .sort()
    .map((k) => [k, detail[k] ?? null]);
}

/**
 * The canonical content of an event: a JSON array of every column in a fixed
 * order (detail as sorted key/value pairs; `patientIds` last, only in the v2
 * form of an event about several patients). The writer and the verifier (CLI
 * and GraphQL) share this one definition.
 */
export function canonicalEvent(e: AuditEventInput, seq: number): string {
  const [before, after] = canonicalParts(e);
  return before + JSON.stringify(String(seq)) + after;
}

/**
 * The canonical form around its seq (which only the chain append knows):
 * `canonicalEvent(e, seq) === before + JSON.stringify(String(seq)) + after`.
 * The database side of the append (carebase_audit_append) hashes these parts
 * with the seq it assigns under the chain-head lock.
 */
export function canonicalParts(e: AuditEventInput): [before: string, after: string] {
  const many = e.patientIds?.length ? [e.patientIds] : [];
  const head = JSON.stringify([many.length ? CANONICAL_VERSION_MANY : CANONICAL_VERSION, e.id, e.tenantId]);
  const tail = JSON.stringify([
    e.at.toISOString(),
    e.eventType,
    e.actorType,
    e.actorId,
    e.actorRoles,
    e.sessionId,
    e.patientId,
    e.resourceType,
    e.resourceId,
    e.fields,
    e.categories,
    e.action,
    e.outcome,
    e.purposeOfUse,
    e.requestId,
    e.ip,
    e.userAgent,
    e.operationName,
    canonicalDetail(e.detail),
    ...many,
  ]);
  return [`${head.slice(0, -1)},`, `,${tail.slice(1)}`];
}

/** hash = SHA-256(prev_hash || canonical(event, seq)) */
export function chainHash(prevHash: Buffer, e: AuditEventInput, seq: number): Buffer {
  return createHash('sha256').update(prevHash).update(canonicalEvent(e, seq), 'utf8').digest();
}
