import { checkpointKeys } from '../../platform/audit/index.js';
import type { ModuleDeps, ModuleManifest } from '../../schema/index.js';
import { registerExportRoute } from './export.js';
import { AUDIT_SCHEDULES } from './jobs.js';
import { registerAuditSchema } from './schema.js';

export { ALERT_EVENT, ALERT_ROOM, registerPatientDirectory, runAnomalyCheck, type PatientDirectory, type AnomalySettings } from './anomalies.js';
export { drainSecurityEvents } from './security-events.js';
export { EXPORT_PATH } from './export.js';

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
  schema: (builder) => registerAuditSchema(builder),
  // compliance dashboards: `alerts:security` (new anomaly alerts, break-glass use) for holders of alert:read
  roomAccess: { alerts: (principal, id) => id === 'security' && principal.permissions.has('alert:read') },
  routes: (app, deps) => registerExportRoute(app, deps),
  // scheduled: security-event drain, anomaly rules, partitions ahead, checkpoint signing (BullMQ job schedulers)
  jobs: AUDIT_SCHEDULES,
  init: async (deps: ModuleDeps) => {
    // a bad checkpoint key file stops the boot, not a scheduled run
    checkpointKeys(deps.config);
  },
};

export default manifest;
