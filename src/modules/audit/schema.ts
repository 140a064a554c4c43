import { AUDIT_EVENT_TYPES, PURPOSES_OF_USE, type IntegrityReport } from '../../platform/audit/index.js';
import { badInput } from '../../platform/errors.js';
import type { Builder } from '../../schema/index.js';
import {
  acknowledgeAlert,
  auditFilterSchema,
  filterFields,
  listAlerts,
  listAuditEvents,
  reportDetail,
  reportPatient,
  setPatientFlag,
  verifyIntegrity,
  type AlertRow,
  type AuditEventPage,
  type AuditEventRow,
  type AuditFilter,
} from './service.js';
import { ALERT_RULES } from './tables.js';

function parseFilter(input: unknown): AuditFilter {
  const stripped = Object.fromEntries(Object.entries((input ?? {}) as Record<string, unknown>).filter(([, v]) => v !== null && v !== undefined));
  const parsed = auditFilterSchema.safeParse(stripped);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    const field = ['filter', ...(issue?.path ?? []).map(String)].join('.');
    throw badInput(`${field}: ${issue?.message ?? 'invalid'}`, field);
  }
  return parsed.data;
}

export function registerAuditSchema(builder: Builder) {
  const PurposeOfUse = builder.enumType('PurposeOfUse', {
    description: 'HL7 v3 purpose of use (ETREAT = emergency treatment / break-glass).',
    values: PURPOSES_OF_USE,
  });
  const AuditOutcome = builder.enumType('AuditOutcome', {
    values: {
      ALLOWED: { value: 'allowed', description: 'data was disclosed or changed' },
      DENIED: { value: 'denied', description: 'refused by authorization' },
      FAILED: { value: 'failed', description: 'a write that did not commit' },
    } as const,
  });
  const AuditEventType = builder.enumType('AuditEventType', {
    values: Object.fromEntries(AUDIT_EVENT_TYPES.map((t) => [t.toUpperCase(), { value: t }])) as {
      PHI: { value: 'phi' };
      SECURITY: { value: 'security' };
      AUDIT: { value: 'audit' };
    },
  });
  const ChainBreak = builder.enumType('AuditChainBreak', {
    values: [
      'HASH_MISMATCH',
      'PREV_HASH_MISMATCH',
      'SEQ_GAP',
      'SEQ_OUT_OF_ORDER',
      'TAIL_MISSING',
      'HEAD_MISMATCH',
      'HEAD_MISSING',
      'CHECKPOINT_INVALID',
      'CHECKPOINT_MISMATCH',
    ] as const,
  });
  const AlertRule = builder.enumType('AuditAlertRule', { values: ALERT_RULES });
  const AlertStatus = builder.enumType('AuditAlertStatus', {
    values: { OPEN: { value: 'open' }, ACKNOWLEDGED: { value: 'acknowledged' } } as const,
  });
  const PatientAuditFlag = builder.enumType('PatientAuditFlag', {
    values: { VIP: { value: 'vip' }, EMPLOYEE: { value: 'employee' } } as const,
  });

  const AuditEvent = builder.objectRef<AuditEventRow>('AuditEvent').implement({
    description: 'One entry of the PHI-access audit log. Ids, field names and codes only: never a PHI value.',
    fields: (t) => ({
      id: t.exposeID('id'),
      at: t.field({ type: 'DateTime', resolve: (r) => r.at }),
      seq: t.float({ description: 'position in the tenant hash chain', resolve: (r) => Number(r.seq) }),
      eventType: t.field({ type: AuditEventType, resolve: (r) => r.event_type as 'phi' }),
      actorType: t.exposeString('actor_type', { description: 'user, apiKey, system or anonymous' }),
      actorId: t.exposeString('actor_id', { nullable: true }),
      actorRoles: t.exposeStringList('actor_roles'),
      sessionId: t.exposeString('session_id', { nullable: true }),
      patientId: t.field({ type: 'UUID', nullable: true, description: 'the patient, for an event about one patient', resolve: (r) => r.patient_id }),
      patientIds: t.field({
        type: ['UUID'],
        description: 'every patient the event covers: [patientId] for an event about one patient; for an event about several (a search page, a list) all of them, with patientId null',
        resolve: (r) => (r.patient_ids.length ? r.patient_ids : r.patient_id ? [r.patient_id] : []),
      }),
      resourceType: t.exposeString('resource_type', { nullable: true }),
      resourceId: t.exposeString('resource_id', { nullable: true }),
      fields: t.exposeStringList('fields', { description: 'field coordinates accessed, e.g. Patient.ssn' }),
      categories: t.exposeStringList('categories', { description: 'PHI categories of those fields' }),
      action: t.exposeString('action', { description: 'read, create, update, delete, export, reveal, break-glass, or a security event type' }),
      outcome: t.field({ type: AuditOutcome, resolve: (r) => r.outcome as 'allowed' }),
      purposeOfUse: t.exposeString('purpose_of_use', { nullable: true }),
      requestId: t.exposeString('request_id', { nullable: true }),
      ip: t.exposeString('ip', { nullable: true }),
      userAgent: t.exposeString('user_agent', { nullable: true }),
      operationName: t.exposeString('operation_name', { nullable: true }),
      detail: t.field({ type: 'JSON', description: 'ids and codes (e.g. the denial reason)', resolve: (r) => r.detail }),
    }),
  });

  const Filter = builder.inputType('AuditEventFilter', {
    description: 'Report filter; every field narrows the result (AND).',
    fields: (t) => ({
      patientId: t.field({ type: 'UUID', description: "the patient's events, and the events about several patients that name it" }),
      actorId: t.string({ description: 'user or API key id' }),
      from: t.field({ type: 'DateTime', description: 'inclusive' }),
      to: t.field({ type: 'DateTime', description: 'exclusive' }),
      actions: t.stringList(),
      purposes: t.field({ type: [PurposeOfUse] }),
      outcome: t.field({ type: AuditOutcome }),
      eventTypes: t.field({ type: [AuditEventType] }),
      breakGlass: t.boolean({ description: 'only break-glass invocations and emergency (ETREAT) accesses' }),
      requestId: t.string(),
    }),
  });

  builder.queryField('auditEvents', (t) =>
    t.connection(
      {
        type: AuditEvent,
        description:
          'The audit log, newest first (compliance: permission audit:read, MFA sign-in, users only). Filter by patient, user, date range, action, purpose, outcome (denied), break-glass. Every call is itself audited.',
        authScopes: { permission: 'audit:read' },
        args: { filter: t.arg({ type: Filter }) },
        audit: {
          action: 'read',
          eventType: 'audit',
          resourceType: 'AuditLog',
          logSuccess: true,
          // the filter's patient only when it is a patient of the tenant (the resolver looks it up); the ids asked for are in detail
          patientId: (_args, result) => (result as AuditEventPage | undefined)?.reportPatientId ?? null,
          fields: (args) => filterFields(args.filter as AuditFilter | null),
          detail: (args) => reportDetail(args.filter),
        },
        resolve: async (_root, args, ctx): Promise<AuditEventPage> => {
          const filter = parseFilter(args.filter);
          const page = await listAuditEvents(ctx, filter, args);
          return { ...page, reportPatientId: await reportPatient(ctx, filter) };
        },
      },
      { name: 'AuditEventConnection' },
      { name: 'AuditEventEdge' },
    ),
  );

  const BrokenLink = builder.objectRef<NonNullable<IntegrityReport['brokenAt']>>('AuditChainBrokenLink').implement({
    fields: (t) => ({
      seq: t.exposeFloat('seq'),
      eventId: t.exposeID('eventId', { nullable: true }),
      reason: t.field({ type: ChainBreak, resolve: (b) => b.reason }),
    }),
  });
  const Checkpoint = builder.objectRef<NonNullable<IntegrityReport['lastCheckpoint']>>('AuditCheckpoint').implement({
    description: 'A signed checkpoint of the chain (seq and signing time; the signature is in the log stream too)',
    fields: (t) => ({
      seq: t.exposeFloat('seq'),
      signedAt: t.field({ type: 'DateTime', resolve: (c) => c.signedAt }),
    }),
  });
  const Integrity = builder.objectRef<IntegrityReport>('AuditIntegrityReport').implement({
    fields: (t) => ({
      ok: t.exposeBoolean('ok'),
      checked: t.exposeFloat('checked', { description: 'events verified' }),
      headSeq: t.exposeFloat('headSeq'),
      firstSeq: t.exposeFloat('firstSeq', { description: 'verification starts here (after the retention anchor)' }),
      lastSeq: t.exposeFloat('lastSeq', { nullable: true }),
      checkpoints: t.exposeFloat('checkpoints', { description: 'signed checkpoints verified (signature and the hash of the event at their seq)' }),
      lastCheckpoint: t.field({ type: Checkpoint, nullable: true, description: 'the newest signed checkpoint verified', resolve: (r) => r.lastCheckpoint }),
      brokenAt: t.field({ type: BrokenLink, nullable: true, description: 'the first broken link, if any', resolve: (r) => r.brokenAt }),
    }),
  });
  builder.queryField('verifyAuditIntegrity', (t) =>
    t.field({
      type: Integrity,
      description: "Recomputes the tenant's audit hash chain and reports the first broken link (audit:read, MFA).",
      authScopes: { permission: 'audit:read' },
      audit: { action: 'read', eventType: 'audit', resourceType: 'AuditLog', logSuccess: true, fields: () => ['AuditLog.integrity'] },
      resolve: (_root, _args, ctx) => verifyIntegrity(ctx),
    }),
  );

  const Alert = builder.objectRef<AlertRow>('AuditAlert').implement({
    description: 'An anomaly found in the audit log (ids and counts only).',
    fields: (t) => ({
      id: t.exposeID('id'),
      rule: t.field({ type: AlertRule, resolve: (a) => a.rule as 'HIGH_VOLUME' }),
      severity: t.exposeString('severity'),
      actorId: t.exposeString('actor_id', { nullable: true }),
      patientId: t.field({ type: 'UUID', nullable: true, resolve: (a) => a.patient_id }),
      windowStart: t.field({ type: 'DateTime', resolve: (a) => a.window_start }),
      windowEnd: t.field({ type: 'DateTime', resolve: (a) => a.window_end }),
      eventCount: t.exposeInt('event_count'),
      detail: t.field({ type: 'JSON', resolve: (a) => a.detail }),
      status: t.field({ type: AlertStatus, resolve: (a) => a.status as 'open' }),
      acknowledgedBy: t.exposeString('acknowledged_by', { nullable: true }),
      acknowledgedAt: t.field({ type: 'DateTime', nullable: true, resolve: (a) => a.acknowledged_at }),
      createdAt: t.field({ type: 'DateTime', resolve: (a) => a.created_at }),
    }),
  });

  builder.queryField('auditAlerts', (t) =>
    t.connection(
      {
        type: Alert,
        description: 'Anomaly alerts, newest first (permission alert:read).',
        authScopes: { permission: 'alert:read' },
        args: { status: t.arg({ type: AlertStatus }) },
        audit: { action: 'read', eventType: 'audit', resourceType: 'AuditAlert', logSuccess: true },
        resolve: (_root, args, ctx) => listAlerts(ctx, args.status, args),
      },
      { name: 'AuditAlertConnection' },
      { name: 'AuditAlertEdge' },
    ),
  );

  builder.mutationField('acknowledgeAuditAlert', (t) =>
    t.field({
      type: Alert,
      description: 'Marks an alert as handled (permission alert:manage).',
      authScopes: { permission: 'alert:manage' },
      args: { id: t.arg({ type: 'UUID', required: true }) },
      audit: { action: 'update', eventType: 'audit', resourceType: 'AuditAlert', resourceId: (args) => args.id },
      resolve: (_root, args, ctx) => acknowledgeAlert(ctx, args.id),
    }),
  );

  builder.mutationField('setPatientAuditFlag', (t) =>
    t.field({
      type: 'Boolean',
      description: 'Flags a patient as VIP or employee (every access then raises an alert); null clears the flag (permission alert:manage). Returns whether a flag is set.',
      authScopes: { permission: 'alert:manage' },
      args: { patientId: t.arg({ type: 'UUID', required: true }), flag: t.arg({ type: PatientAuditFlag }) },
      audit: { action: 'update', eventType: 'audit', resourceType: 'AuditPatientFlag', patientId: (args) => args.patientId, fields: () => ['flag'] },
      resolve: (_root, args, ctx) => setPatientFlag(ctx, args.patientId, args.flag ?? null),
    }),
  );
}
