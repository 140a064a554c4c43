/**
 * e-Prescribing (roadmap phase 2, entitlement `eprescribing`, FEATURES name
 * `eprescribing`). See docs/modules/eprescribing.md.
 *
 *   index.ts        this manifest: the only file other modules import
 *   tables.ts       catalog (global reference data, no RLS) + medication list, allergies, alert overrides (tenant PHI)
 *   permissions.ts  rx:* permissions, role grants, PHI categories
 *   catalog/        seed loader, search, RxNorm RRF / FDA NDC importer (CLI)
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

export const EPRESCRIBING = 'eprescribing';
/** The key a plan sells (tenant_entitlements.modules). */
export const EPRESCRIBING_ENTITLEMENT = 'eprescribing';

export { EPRESCRIBING_PERMISSIONS, EPRESCRIBING_PHI_CATEGORIES, RX_PERMISSIONS_CATALOG } from './permissions.js';
export * from './tables.js';

/** GraphQL registrars of the module's parts (catalog, medication list/allergies, safety checks, lifecycle...). */
const schemaParts: ((builder: Builder) => void)[] = [];

export function createEprescribingModule(): ModuleManifest {
  return {
    name: EPRESCRIBING,
    phase: 2,
    description: 'e-Prescribing: medication catalog (RxNorm), medication lists and allergies, safety checks, prescriptions over NCPDP SCRIPT, EPCS',
    dependsOn: ['identity', 'access', 'audit', 'patients'],
    entitlement: EPRESCRIBING_ENTITLEMENT,
    permissions: EPRESCRIBING_PERMISSIONS,
    phiCategories: EPRESCRIBING_PHI_CATEGORIES,
    schema: (builder) => {
      for (const register of schemaParts) register(builder);
    },
  };
}

const manifest: ModuleManifest = createEprescribingModule();
export default manifest;
