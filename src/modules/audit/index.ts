import { checkpointKeys } from '../../platform/audit/index.js';
import type { PermissionVocabulary } from '../../platform/access/index.js';
import type { ModuleDeps, ModuleManifest } from '../../schema/index.js';
import { registerExportRoute } from './export.js';
import { AUDIT_SCHEDULES } from './jobs.js';
import { registerAuditSchema } from './schema.js';

export { ALERT_EVENT, ALERT_ROOM, PATIENT_DIRECTORY, runAnomalyCheck, type PatientDirectory, type AnomalySettings } from './anomalies.js';
export { drainSecurityEvents } from './security-events.js';
export { EXPORT_PATH } from './export.js';

/** The audit module's permissions (reports and exports require MFA) and the roles that hold them. */
export const AUDIT_PERMISSIONS: PermissionVocabulary = {
  permissions: {
    'audit:read': { description: 'Read PHI-access audit reports and security events', mfa: true },
    'audit:export': { description: 'Export audit reports', mfa: true },
    'alert:read': 'Read security alerts (e.g. break-glass invocations)',
    'alert:manage': 'Acknowledge security alerts',
  },
  roles: { ADMIN: ['audit:read', 'alert:read', 'alert:manage'], COMPLIANCE: ['audit:read', 'audit:export', 'alert:read', 'alert:manage'] },
};

/**
 * Audit and compliance: reports over the PHI-access log (written by
 * platform/audit for every module), the CSV export, the integrity check,
 * anomaly alerts, and identity's security events in the same log.
 * See docs/modules/audit.md and docs/compliance.md.
 */
const manifest: ModuleManifest = {
  name: 'audit',
  phase: 0,
  description: 'PHI-access audit reports, CSV export, hash-chain verification, anomaly alerts',
  // security events come from identity's security_events table (trigger + inbox, see security-events.ts)
  dependsOn: ['identity'],
  // core module: always entitled, whatever the tenant's plan
  entitlement: null,
  permissions: AUDIT_PERMISSIONS,
  schema: (builder) => registerAuditSchema(builder),
  // compliance dashboards: `alerts:security` (new anomaly alerts, break-glass use) for holders of alert:read
  roomAccess: { alerts: { permission: 'alert:read', check: (_principal, id) => id === 'security' } },
  routes: (app, deps) => registerExportRoute(app, deps),
  // scheduled: security-event drain, anomaly rules, partitions ahead, checkpoint signing (BullMQ job schedulers)
  jobs: AUDIT_SCHEDULES,
  init: async (deps: ModuleDeps) => {
    // a bad checkpoint key file stops the boot, not a scheduled run
    checkpointKeys(deps.config);
  },
};

export default manifest;
