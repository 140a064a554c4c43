import { sql } from 'drizzle-orm';
import { boolean, check, customType, date, foreignKey, index, integer, jsonb, numeric, pgTable, primaryKey, text, timestamp, unique, uuid } from 'drizzle-orm/pg-core';
import { id, tenantId, timestamps } from '../../platform/db/tables.js';

/**
 * e-Prescribing tables.
 *
 * 1. The medication catalog (rx_drugs, rx_ingredients, rx_drug_ingredients,
 *    rx_drug_classes, rx_ingredient_classes, rx_drug_ndcs, rx_interactions,
 *    rx_catalog_sources) is GLOBAL reference data: no tenant_id, no RLS. The
 *    app role may only SELECT it (the migration revokes the rest); the seed
 *    loader (catalog/loader.ts, at boot, as the owner) and the RxNorm / FDA NDC
 *    importers (catalog/rxnorm-import.ts, catalog/fda-ndc-import.ts; CLI) write it.
 * 2. Patient medication lists, allergies and safety-alert overrides are
 *    tenant-owned PHI (tenant_id + RLS, foreign keys to the tenant's patient).
 *
 * The foreign keys to patients(tenant_id, id) are in the migration's
 * hand-written part (a module's tables.ts imports no other module).
 *
 * Prescription lifecycle tables (prescriptions, SCRIPT messages, EPCS) live
 * beside these and reference rx_drugs.rxcui and patients(tenant_id, id).
 */

const tstz = (name: string) => timestamp(name, { withTimezone: true });
/** byte-wise compared search key (collation "C"): a plain btree serves prefix ranges and LIKE 'x%' */
const searchKey = customType<{ data: string; driverData: string }>({ dataType: () => 'text COLLATE "C"' });

/** DEA controlled-substance schedules (21 CFR 1308); null = not controlled. */
export const DEA_SCHEDULES = ['CII', 'CIII', 'CIV', 'CV'] as const;
export type DeaSchedule = (typeof DEA_SCHEDULES)[number];
/** RxNorm term types kept in the catalog: clinical/branded drug and packs. */
export const DRUG_TTYS = ['SCD', 'SBD', 'GPCK', 'BPCK'] as const;
export type DrugTty = (typeof DRUG_TTYS)[number];
export const CATALOG_SOURCES = ['seed', 'rxnorm', 'fda-ndc'] as const;
export type CatalogSource = (typeof CATALOG_SOURCES)[number];

/** Active ingredients (RxNorm IN / PIN / MIN concepts), by ingredient RxCUI. */
export const rxIngredients = pgTable(
  'rx_ingredients',
  {
    rxcui: text('rxcui').primaryKey(),
    name: text('name').notNull(),
    /** carebase_search_norm(name): lower case, letters and digits only */
    searchName: searchKey('search_name').generatedAlwaysAs(sql`carebase_search_norm(name)`),
    tty: text('tty').notNull().default('IN'),
    source: text('source', { enum: CATALOG_SOURCES }).notNull().default('seed'),
    updatedAt: tstz('updated_at').notNull().defaultNow(),
  },
  (t) => [index('rx_ingredients_search_idx').on(t.searchName), check('rx_ingredients_rxcui_check', sql`${t.rxcui} ~ '^[0-9]{1,10}$'`)],
);

/**
 * Drug classes (pharmacologic / chemical / therapeutic), e.g. `penicillins`
 * (parent `beta-lactams`). An allergy to a class matches every ingredient in
 * the class or any of its descendants; duplicate therapy compares classes
 * marked `therapeutic`.
 */
export const rxDrugClasses = pgTable(
  'rx_drug_classes',
  {
    /** stable slug (seed) or the source's class id (e.g. an ATC or MED-RT code) */
    id: text('id').primaryKey(),
    name: text('name').notNull(),
    parentId: text('parent_id'),
    /** the classification it comes from: 'carebase' (seed), 'ATC', 'MED-RT', 'VA' */
    system: text('system').notNull().default('carebase'),
    /** two active drugs in the same therapeutic class are a duplicate therapy */
    therapeutic: boolean('therapeutic').notNull().default(false),
    source: text('source', { enum: CATALOG_SOURCES }).notNull().default('seed'),
  },
  (t) => [foreignKey({ name: 'rx_drug_classes_parent_fkey', columns: [t.parentId], foreignColumns: [t.id] }), check('rx_drug_classes_id_check', sql`${t.id} ~ '^[a-z0-9][a-z0-9._:-]{0,99}$'`)],
);

/** Class membership of an ingredient. */
export const rxIngredientClasses = pgTable(
  'rx_ingredient_classes',
  {
    ingredientRxcui: text('ingredient_rxcui')
      .notNull()
      .references(() => rxIngredients.rxcui, { onDelete: 'cascade' }),
    classId: text('class_id')
      .notNull()
      .references(() => rxDrugClasses.id, { onDelete: 'cascade' }),
  },
  (t) => [primaryKey({ name: 'rx_ingredient_classes_pkey', columns: [t.ingredientRxcui, t.classId] }), index('rx_ingredient_classes_class_idx').on(t.classId)],
);

/**
 * Prescribable drugs: RxNorm clinical drugs (SCD, e.g. "lisinopril 10 MG
 * Oral Tablet") and branded drugs (SBD, "... [Zestril]", generic_rxcui = the
 * SCD), with strength, dose form, route and DEA schedule.
 */
export const rxDrugs = pgTable(
  'rx_drugs',
  {
    rxcui: text('rxcui').primaryKey(),
    /** RxNorm full name (STR of the SCD/SBD) */
    name: text('name').notNull(),
    tty: text('tty', { enum: DRUG_TTYS }).notNull(),
    /** "10 MG", "875 MG / 125 MG", "0.4 MG/ACTUAT" */
    strength: text('strength'),
    /** RxNorm dose form, e.g. "Oral Tablet", "Extended Release Oral Capsule", "Injectable Solution" */
    doseForm: text('dose_form').notNull(),
    /** route derived from the dose form (oral, topical, sublingual, subcutaneous, inhalation, ...) */
    route: text('route').notNull(),
    brandName: text('brand_name'),
    /** for a branded drug (SBD/BPCK): its clinical drug (SCD/GPCK) */
    genericRxcui: text('generic_rxcui'),
    deaSchedule: text('dea_schedule', { enum: DEA_SCHEDULES }),
    /** RxNorm suppression / obsolete products stay for old records but are not offered */
    active: boolean('active').notNull().default(true),
    searchName: searchKey('search_name').generatedAlwaysAs(sql`carebase_search_norm(name)`),
    searchBrand: searchKey('search_brand').generatedAlwaysAs(sql`carebase_search_norm(brand_name)`),
    source: text('source', { enum: CATALOG_SOURCES }).notNull().default('seed'),
    updatedAt: tstz('updated_at').notNull().defaultNow(),
  },
  (t) => [
    // prefix search: search_name >= p and search_name < p || chr(0x10ffff) (collation "C")
    index('rx_drugs_search_name_idx').on(t.searchName),
    index('rx_drugs_search_brand_idx').on(t.searchBrand).where(sql`${t.brandName} is not null`),
    index('rx_drugs_generic_idx').on(t.genericRxcui).where(sql`${t.genericRxcui} is not null`),
    check('rx_drugs_rxcui_check', sql`${t.rxcui} ~ '^[0-9]{1,10}$'`),
  ],
);

/** Ingredients of a drug with their strength in that drug. */
export const rxDrugIngredients = pgTable(
  'rx_drug_ingredients',
  {
    drugRxcui: text('drug_rxcui')
      .notNull()
      .references(() => rxDrugs.rxcui, { onDelete: 'cascade' }),
    ingredientRxcui: text('ingredient_rxcui')
      .notNull()
      .references(() => rxIngredients.rxcui),
    strength: text('strength'),
    /** numeric strength and unit of the ingredient per unit of dose form, for dose sanity checks (e.g. 10, 'MG') */
    strengthValue: numeric('strength_value', { mode: 'number' }),
    strengthUnit: text('strength_unit'),
  },
  (t) => [primaryKey({ name: 'rx_drug_ingredients_pkey', columns: [t.drugRxcui, t.ingredientRxcui] }), index('rx_drug_ingredients_ingredient_idx').on(t.ingredientRxcui)],
);

/** National Drug Codes of a drug (normalised 11-digit 5-4-2 form). */
export const rxDrugNdcs = pgTable(
  'rx_drug_ndcs',
  {
    ndc: text('ndc').primaryKey(),
    drugRxcui: text('drug_rxcui')
      .notNull()
      .references(() => rxDrugs.rxcui, { onDelete: 'cascade' }),
    /** labeler name and package description from the FDA NDC directory, when known */
    labeler: text('labeler'),
    packageDescription: text('package_description'),
    source: text('source', { enum: CATALOG_SOURCES }).notNull().default('seed'),
  },
  (t) => [index('rx_drug_ndcs_drug_idx').on(t.drugRxcui), check('rx_drug_ndcs_ndc_check', sql`${t.ndc} ~ '^[0-9]{11}$'`)],
);

export const INTERACTION_SEVERITIES = ['contraindicated', 'major', 'moderate', 'minor'] as const;
export type InteractionSeverity = (typeof INTERACTION_SEVERITIES)[number];

/**
 * Drug–drug interactions by ingredient pair (a < b as text), so every brand
 * and generic containing the ingredients matches.
 */
export const rxInteractions = pgTable(
  'rx_interactions',
  {
    ingredientA: text('ingredient_a')
      .notNull()
      .references(() => rxIngredients.rxcui, { onDelete: 'cascade' }),
    ingredientB: text('ingredient_b')
      .notNull()
      .references(() => rxIngredients.rxcui, { onDelete: 'cascade' }),
    severity: text('severity', { enum: INTERACTION_SEVERITIES }).notNull(),
    mechanism: text('mechanism').notNull(),
    management: text('management').notNull(),
    /** where the statement comes from (label section, reference) */
    reference: text('reference'),
    source: text('source', { enum: CATALOG_SOURCES }).notNull().default('seed'),
  },
  (t) => [
    primaryKey({ name: 'rx_interactions_pkey', columns: [t.ingredientA, t.ingredientB] }),
    index('rx_interactions_b_idx').on(t.ingredientB, t.ingredientA),
    check('rx_interactions_order_check', sql`${t.ingredientA} < ${t.ingredientB}`),
  ],
);

/** Provenance of what was loaded into the catalog: the seed's content hash, an import's release and counts. */
export const rxCatalogSources = pgTable('rx_catalog_sources', {
  /** 'seed' or 'rxnorm:<release>' / 'fda-ndc:<date>' */
  name: text('name').primaryKey(),
  /** SHA-256 of what was loaded (the seed loader skips an unchanged seed) */
  contentHash: text('content_hash').notNull(),
  counts: jsonb('counts').$type<Record<string, number>>().notNull().default({}),
  loadedAt: tstz('loaded_at').notNull().defaultNow(),
});

export const MEDICATION_STATUSES = ['active', 'on_hold', 'stopped', 'completed', 'entered_in_error'] as const;
export type MedicationStatus = (typeof MEDICATION_STATUSES)[number];
export const MEDICATION_SOURCES = ['reported', 'prescribed', 'reconciled', 'imported'] as const;
export type MedicationSource = (typeof MEDICATION_SOURCES)[number];

/** A patient's medication list (what the patient takes, whoever prescribed it). PHI. */
export const rxPatientMedications = pgTable(
  'rx_patient_medications',
  {
    id: id(),
    tenantId: tenantId(),
    patientId: uuid('patient_id').notNull(),
    /** the catalog drug; null for a free-text entry (a medication the catalog does not have) */
    drugRxcui: text('drug_rxcui').references(() => rxDrugs.rxcui),
    /** the medication as the patient or an outside record named it, when it is not in the catalog */
    drugText: text('drug_text'),
    status: text('status', { enum: MEDICATION_STATUSES }).notNull().default('active'),
    source: text('source', { enum: MEDICATION_SOURCES }).notNull().default('reported'),
    /** directions as written ("1 tablet by mouth daily") */
    sig: text('sig'),
    /** structured dose for sanity checks: amount per administration in the drug's unit, times per day */
    doseAmount: numeric('dose_amount', { mode: 'number' }),
    doseUnit: text('dose_unit'),
    frequencyPerDay: integer('frequency_per_day'),
    startedOn: date('started_on', { mode: 'string' }),
    stoppedOn: date('stopped_on', { mode: 'string' }),
    /** the prescription that put it on the list (lifecycle tables), when prescribed here */
    prescriptionId: uuid('prescription_id'),
    note: text('note'),
    recordedBy: uuid('recorded_by'),
    updatedBy: uuid('updated_by'),
    version: integer('version').notNull().default(1),
    ...timestamps(),
  },
  (t) => [
    unique('rx_patient_medications_tenant_id_id_key').on(t.tenantId, t.id),
    index('rx_patient_medications_patient_idx').on(t.tenantId, t.patientId, t.status),
    check('rx_patient_medications_version_check', sql`${t.version} > 0`),
    check('rx_patient_medications_drug_check', sql`num_nonnulls(${t.drugRxcui}, ${t.drugText}) = 1`),
        check('rx_patient_medications_freq_check', sql`${t.frequencyPerDay} is null or ${t.frequencyPerDay} between 1 and 48`),
    check('rx_patient_medications_dates_check', sql`${t.stoppedOn} is null or ${t.startedOn} is null or ${t.stoppedOn} >= ${t.startedOn}`),
  ],
);

export const ALLERGEN_KINDS = ['drug', 'ingredient', 'class'] as const;
export type AllergenKind = (typeof ALLERGEN_KINDS)[number];
export const ALLERGY_SEVERITIES = ['mild', 'moderate', 'severe', 'life_threatening'] as const;
export type AllergySeverity = (typeof ALLERGY_SEVERITIES)[number];
export const ALLERGY_STATUSES = ['active', 'inactive', 'resolved', 'entered_in_error'] as const;
export type AllergyStatus = (typeof ALLERGY_STATUSES)[number];
export const ALLERGY_TYPES = ['allergy', 'intolerance'] as const;

/** A patient's drug allergies and intolerances: to a drug, an ingredient or a whole class. PHI. */
export const rxPatientAllergies = pgTable(
  'rx_patient_allergies',
  {
    id: id(),
    tenantId: tenantId(),
    patientId: uuid('patient_id').notNull(),
    allergenKind: text('allergen_kind', { enum: ALLERGEN_KINDS }).notNull(),
    /** drug or ingredient RxCUI, or the class id */
    allergenCode: text('allergen_code').notNull(),
    /** the allergen's name when recorded (the catalog may change) */
    allergenName: text('allergen_name').notNull(),
    type: text('type', { enum: ALLERGY_TYPES }).notNull().default('allergy'),
    /** what happened ("hives", "anaphylaxis") */
    reaction: text('reaction'),
    severity: text('severity', { enum: ALLERGY_SEVERITIES }).notNull(),
    status: text('status', { enum: ALLERGY_STATUSES }).notNull().default('active'),
    onsetOn: date('onset_on', { mode: 'string' }),
    note: text('note'),
    recordedBy: uuid('recorded_by'),
    updatedBy: uuid('updated_by'),
    version: integer('version').notNull().default(1),
    ...timestamps(),
  },
  (t) => [
    unique('rx_patient_allergies_tenant_id_id_key').on(t.tenantId, t.id),
    index('rx_patient_allergies_patient_idx').on(t.tenantId, t.patientId, t.status),
    check('rx_patient_allergies_version_check', sql`${t.version} > 0`),
  ],
);

export const ALERT_KINDS = ['interaction', 'allergy', 'duplicate_therapy', 'dose', 'age'] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];
export const ALERT_SEVERITIES = ['contraindicated', 'major', 'moderate', 'minor'] as const;
export type AlertSeverity = (typeof ALERT_SEVERITIES)[number];

/**
 * Safety alerts a prescriber overrode, with the reason (append-only
 * evidence; the audit event carries ids and codes only, never the reason).
 */
export const rxAlertOverrides = pgTable(
  'rx_alert_overrides',
  {
    id: id(),
    tenantId: tenantId(),
    patientId: uuid('patient_id').notNull(),
    /** the drug being prescribed when the alert fired */
    drugRxcui: text('drug_rxcui')
      .notNull()
      .references(() => rxDrugs.rxcui),
    /** the prescription being checked (lifecycle), when there is one */
    prescriptionId: uuid('prescription_id'),
    /** stable alert key (kind:codes), as returned by the check */
    alertKey: text('alert_key').notNull(),
    kind: text('kind', { enum: ALERT_KINDS }).notNull(),
    severity: text('severity', { enum: ALERT_SEVERITIES }).notNull(),
    /** free text written by the prescriber: visible to compliance only, never logged */
    reason: text('reason'),
    actorId: uuid('actor_id'),
    requestId: text('request_id'),
    at: tstz('at').notNull().defaultNow(),
  },
  (t) => [
    index('rx_alert_overrides_patient_idx').on(t.tenantId, t.patientId, t.at),
    index('rx_alert_overrides_prescription_idx').on(t.tenantId, t.prescriptionId).where(sql`${t.prescriptionId} is not null`),
    check('rx_alert_overrides_reason_check', sql`${t.severity} not in ('major', 'contraindicated') or length(btrim(${t.reason})) > 0`),
  ],
);

export type RxDrug = typeof rxDrugs.$inferSelect;
export type RxIngredient = typeof rxIngredients.$inferSelect;
export type RxDrugClass = typeof rxDrugClasses.$inferSelect;
export type RxInteraction = typeof rxInteractions.$inferSelect;
export type PatientMedication = typeof rxPatientMedications.$inferSelect;
export type PatientAllergy = typeof rxPatientAllergies.$inferSelect;
export type AlertOverride = typeof rxAlertOverrides.$inferSelect;

/** The global medication catalog (reference data, no tenant). */
export const catalogTables = { rxIngredients, rxDrugClasses, rxIngredientClasses, rxDrugs, rxDrugIngredients, rxDrugNdcs, rxInteractions, rxCatalogSources };
/** Tenant-owned PHI: medication lists, allergies, alert overrides. */
export const patientRxTables = { rxPatientMedications, rxPatientAllergies, rxAlertOverrides };
/** Every table of the module (src/db/schema.ts spreads this). Lifecycle tables are added here beside the others. */
export const eprescribingTables = { ...catalogTables, ...patientRxTables };
