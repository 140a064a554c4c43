import { describe, expect, it } from 'vitest';
import { canonicalEvent, CANONICAL_VERSION, type AuditEventInput } from '../../src/platform/audit/index.js';

const event: AuditEventInput = {
  id: '0b7d3f0e-8a55-4c55-9a53-2f3c0b1d9e01',
  tenantId: '5f1c1f2a-3b4c-4d5e-8f60-718293a4b5c6',
  at: new Date('2026-12-02T06:40:00.123Z'),
  eventType: 'phi',
  actorType: 'user',
  actorId: 'u-1',
  actorRoles: ['PROVIDER'],
  sessionId: null,
  patientId: '9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d',
  resourceType: 'Patient',
  resourceId: 'r "1" \\ é',
  fields: ['Patient.name'],
  categories: ['demographics'],
  action: 'read',
  outcome: 'allowed',
  purposeOfUse: 'TREAT',
  requestId: 'req-1',
  ip: '127.0.0.1',
  userAgent: 'ua\n🩺',
  operationName: null,
  detail: { z: 1, a: 'x', skipped: undefined as unknown as null, n: null },
};

describe('audit canonical form v1', () => {
  it('is the JSON array of every column in the fixed order (unchanged: existing chains must keep verifying)', () => {
    const e = event;
    const expected = JSON.stringify([
      CANONICAL_VERSION, e.id, e.tenantId, '42', e.at.toISOString(), e.eventType, e.actorType, e.actorId, e.actorRoles, e.sessionId, e.patientId,
      e.resourceType, e.resourceId, e.fields, e.categories, e.action, e.outcome, e.purposeOfUse, e.requestId, e.ip, e.userAgent, e.operationName,
      [['a', 'x'], ['n', null], ['z', 1]],
    ]);
    expect(canonicalEvent(event, 42)).toBe(expected);
    expect(CANONICAL_VERSION).toBe('carebase-audit-v1');
  });
});
