/**
 * e-Prescribing (roadmap phase 2, entitlement `eprescribing`, FEATURES name
 * `eprescribing`). See docs/modules/eprescribing.md.
 *
 *   index.ts        this manifest: the only file other modules import
 *   tables.ts       catalog (global reference data, no RLS) + medication list, allergies, alert overrides (tenant PHI)
 *   permissions.ts  rx:* permissions, role grants, PHI categories
 *   catalog/        seed loader, lookups and search (lookup.ts), NDC forms (ndc.ts), RxNorm RRF and FDA NDC importers (CLI)
 *   seed/           curated JSON seed (drugs, classes, interactions) + README (sources)
 *   medications.ts  patient medication list and allergies (service)
 *   safety.ts       safety checks before signing (interactions, allergy, duplicate therapy, dose/age) and overrides
 *   schema.ts       GraphQL for the above (thin)
 *   script/, pharmacy-simulator/   NCPDP SCRIPT messages, pharmacy network adapter and simulator (lifecycle, EPCS)
 *
 * Composition: the manifest's `schema`, `routes`, `jobs`, `socketHandlers`,
 * `roomAccess` below are lists each part of the module adds its own entry to.
 */
import type { ModuleManifest } from '../../schema/index.js';
import { EPRESCRIBING_PERMISSIONS, EPRESCRIBING_PHI_CATEGORIES } from './permissions.js';
import type { Builder } from '../../schema/index.js';
import { authenticateInbound, inboundRoute, SCRIPT_CONTENT_TYPES } from './inbound.js';
import { closeLifecycleRuntime, createLifecycleRuntime, pointSimulatorAtApp, type LifecycleOptions } from './lifecycle.js';
import { mergeVocabularies, PRESCRIPTION_PERMISSIONS } from './prescription-permissions.js';
import { prescriptionRoom, rxQueueRoom } from './prescription-rooms.js';
import { registerPrescriptionSchema } from './prescription-schema.js';
import { registerEpcsSchema } from './epcs-schema.js';
import { registerMedicationsSchema } from './medications-schema.js';
import { loadCatalogSeed } from './catalog/loader.js';
import { registerPriorAuthSchema } from './prior-auth-schema.js';
import { EPCS_DAILY_JOB, EPCS_TENANT_REPORT_JOB, epcsDailySchedule, epcsTenantReportJob } from './epcs.js';
import type { LifecycleHolder } from './rx-common.js';

export const EPRESCRIBING = 'eprescribing';
/** The key a plan sells (tenant_entitlements.modules). */
export const EPRESCRIBING_ENTITLEMENT = 'eprescribing';

export { EPRESCRIBING_PERMISSIONS, EPRESCRIBING_PHI_CATEGORIES, RX_PERMISSIONS_CATALOG } from './permissions.js';
export * from './tables.js';
export * from './prescription-tables.js';
export { PRESCRIPTION_PERMISSIONS } from './prescription-permissions.js';
export { importRxnorm, type ImportCounts } from './catalog/rxnorm-import.js';
export { importFdaNdc, type NdcImportCounts } from './catalog/fda-ndc-import.js';
export { normalizeNdc } from './catalog/ndc.js';
export { INBOUND_PATH, type LifecycleRuntime, type LifecycleOptions } from './lifecycle.js';
export { PharmacySimulator, TEST_PHARMACIES, PAYER_QUESTION_SET, PAYER_FOLLOW_UP_SET, PAYER_DENIAL_CODES, type SimDelivery, type PayerDecision } from './pharmacy-simulator/server.js';
export { HttpPharmacyNetwork, type PharmacyNetwork, type NetworkExchange } from './network/adapter.js';
export { signScriptBody, checkScriptSignature, SIGNATURE_HEADER } from './network/signature.js';
export { EPCS_ATTESTATION_TEXT, EPCS_ATTESTATION_SHA256, canonicalPrescription, EPCS_DAILY_JOB, EPCS_TENANT_REPORT_JOB } from './epcs.js';
export { TRANSITIONS as PRESCRIPTION_TRANSITIONS, type PrescriptionSafety, type SafetyAlertRef } from './prescriptions.js';

/** GraphQL registrars of the module's parts (catalog, medication list/allergies, safety checks, lifecycle...). */
const schemaParts: ((builder: Builder) => void)[] = [registerMedicationsSchema, registerPrescriptionSchema, registerEpcsSchema, registerPriorAuthSchema];

/** The module's options (tests pass a clock, a pharmacy network, the safety checks). */
export type EprescribingOptions = LifecycleOptions;

export function createEprescribingModule(options: EprescribingOptions = {}): ModuleManifest {
  return {
    name: EPRESCRIBING,
    phase: 2,
    description: 'e-Prescribing: medication catalog (RxNorm), medication lists and allergies, safety checks, prescriptions over NCPDP SCRIPT, EPCS',
    dependsOn: ['identity', 'access', 'audit', 'patients'],
    entitlement: EPRESCRIBING_ENTITLEMENT,
    permissions: mergeVocabularies(EPRESCRIBING_PERMISSIONS, PRESCRIPTION_PERMISSIONS),
    phiCategories: EPRESCRIBING_PHI_CATEGORIES,
    // prescription:<id> (its patient's readers), rxQueue:<userId> (a prescriber's own queue)
    roomAccess: { prescription: prescriptionRoom, rxQueue: rxQueueRoom },
    // the pharmacy network's inbound SCRIPT: verified by this hook (signature on the raw body), then run as the prescription's tenant
    authenticate: authenticateInbound,
    async routes(app, deps) {
      // SCRIPT bodies stay strings: the signature covers the exact bytes
      const missing = SCRIPT_CONTENT_TYPES.filter((t) => !app.hasContentTypeParser(t));
      if (missing.length) app.addContentTypeParser(missing, { parseAs: 'string' }, (_req, body, done) => done(null, body));
      pointSimulatorAtApp(app, deps.instances.get<LifecycleHolder>(EPRESCRIBING).lifecycle);
      deps.route!(inboundRoute);
    },
    // EPCS: the daily activity report (00:05 UTC), one job per tenant with activity
    jobs: { [EPCS_DAILY_JOB]: epcsDailySchedule, [EPCS_TENANT_REPORT_JOB]: epcsTenantReportJob },
    async init(deps) {
      // the curated catalog seed (skipped when this exact seed is loaded)
      await loadCatalogSeed(deps.database.ownerUrl);
      const lifecycle = await createLifecycleRuntime(deps, options);
      return {
        lifecycle,
        async close() {
          await closeLifecycleRuntime(lifecycle);
        },
      };
    },
    schema: (builder) => {
      for (const register of schemaParts) register(builder);
    },
  };
}

const manifest: ModuleManifest = createEprescribingModule();
export default manifest;
