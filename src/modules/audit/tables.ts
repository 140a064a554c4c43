import { sql } from 'drizzle-orm';
import { index, integer, jsonb, pgTable, primaryKey, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core';
import { id, tenantId, timestamps } from '../../platform/db/tables.js';

/** Anomaly rules (see anomalies.ts). */
export const ALERT_RULES = ['HIGH_VOLUME', 'OUTSIDE_CARE_TEAM', 'AFTER_HOURS', 'BREAK_GLASS_FREQUENT', 'FLAGGED_PATIENT'] as const;
export type AlertRule = (typeof ALERT_RULES)[number];

/**
 * Anomaly alerts raised by the scheduled check over the audit log. One row
 * per (rule, actor, patient, window); a re-run updates the count instead of
 * duplicating. Compliance users list and acknowledge them. Ids and counts
 * only, never PHI.
 */
export const auditAlerts = pgTable(
  'audit_alerts',
  {
    id: id(),
    tenantId: tenantId(),
    rule: text('rule', { enum: ALERT_RULES }).notNull(),
    severity: text('severity', { enum: ['low', 'medium', 'high'] }).notNull(),
    actorId: text('actor_id'),
    patientId: uuid('patient_id'),
    windowStart: timestamp('window_start', { withTimezone: true }).notNull(),
    windowEnd: timestamp('window_end', { withTimezone: true }).notNull(),
    eventCount: integer('event_count').notNull(),
    detail: jsonb('detail').$type<Record<string, string | number | boolean | null>>().notNull().default({}),
    status: text('status', { enum: ['open', 'acknowledged'] }).notNull().default('open'),
    acknowledgedBy: text('acknowledged_by'),
    acknowledgedAt: timestamp('acknowledged_at', { withTimezone: true }),
    ...timestamps(),
  },
  (t) => [
    unique('audit_alerts_window_key').on(t.tenantId, t.rule, t.actorId, t.patientId, t.windowStart).nullsNotDistinct(),
    index('audit_alerts_list_idx').on(t.tenantId, t.status, t.createdAt, t.id),
  ],
);

/**
 * Patients whose records deserve extra scrutiny (VIPs, employees): any access
 * raises a FLAGGED_PATIENT alert. Compliance sets the flag; the patients
 * module may also answer through the PatientDirectory hook.
 */
export const auditPatientFlags = pgTable(
  'audit_patient_flags',
  {
    tenantId: tenantId(),
    patientId: uuid('patient_id').notNull(),
    flag: text('flag', { enum: ['vip', 'employee'] }).notNull(),
    setBy: text('set_by'),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [primaryKey({ name: 'audit_patient_flags_pkey', columns: [t.tenantId, t.patientId] })],
);

/** Per tenant: the audit log has been checked for anomalies up to this time. */
export const auditAnomalyState = pgTable('audit_anomaly_state', {
  tenantId: tenantId().primaryKey(),
  checkedUntil: timestamp('checked_until', { withTimezone: true }).notNull(),
  updatedAt: timestamp('updated_at', { withTimezone: true }).notNull().default(sql`now()`),
});

/**
 * Security events (identity's security_events table) waiting to be appended
 * to the audit log. A trigger on security_events adds a row in the same
 * transaction as the event; the audit module drains the inbox into the hash
 * chain and deletes the rows in one transaction (exactly once).
 */
export const auditInbox = pgTable(
  'audit_inbox',
  {
    securityEventId: uuid('security_event_id').primaryKey(),
    tenantId: tenantId(),
    createdAt: timestamp('created_at', { withTimezone: true }).notNull().defaultNow(),
  },
  (t) => [index('audit_inbox_tenant_idx').on(t.tenantId, t.createdAt)],
);

export const auditModuleTables = { auditAlerts, auditPatientFlags, auditAnomalyState, auditInbox };
