import { createHash } from 'node:crypto';
import type { AuditDetail, AuditEventInput } from './types.js';

/** prev_hash of a tenant's first event. */
export const GENESIS_HASH = Buffer.alloc(32, 0);

/** Version tag of the canonical form below; bump it (and keep the old one for verification) when the form changes. */
export const CANONICAL_VERSION = 'carebase-audit-v1';

function canonicalDetail(detail: AuditDetail): [string, string | number | boolean | null][] {
  return Object.keys(detail)
    .filter((k) => detail[k] !== undefined) // as JSON (jsonb) drops them
    .sort()
    .map((k) => [k, detail[k] ?? null]);
}

/**
 * The canonical content of an event: a JSON array of every column in a fixed
 * order (detail as sorted key/value pairs). The writer and the verifier (CLI
 * and GraphQL) share this one definition.
 */
export function canonicalEvent(e: AuditEventInput, seq: number): string {
  return JSON.stringify([
    CANONICAL_VERSION,
    e.id,
    e.tenantId,
    String(seq),
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
  ]);
}

/** hash = SHA-256(prev_hash || canonical(event, seq)) */
export function chainHash(prevHash: Buffer, e: AuditEventInput, seq: number): Buffer {
  return createHash('sha256').update(prevHash).update(canonicalEvent(e, seq), 'utf8').digest();
}
