import { badInput } from '../../platform/errors.js';
import type { Builder, RequestContext } from '../../schema/index.js';
import { drugByNdc, drugByRxcui, drugCursor, ingredientsOf, ndcsOf, searchDrugPage, type DrugIngredientView, type DrugNdcView } from './catalog/lookup.js';
import { addPatientAllergy, addPatientMedication, patientAllergies, patientMedications, searchDrugs, setPatientAllergyStatus, setPatientMedicationStatus, type MedicationEntry } from './medications.js';
import { medicationSafetyCheck, type SafetyAlert } from './safety.js';
import { ALLERGEN_KINDS, ALLERGY_SEVERITIES, ALLERGY_STATUSES, ALLERGY_TYPES, MEDICATION_SOURCES, MEDICATION_STATUSES, type PatientAllergy, type RxDrug } from './tables.js';

/**
 * GraphQL of the medication catalog search, the patient's medication list and allergies, and the on-demand safety
 * check: thin fields over medications.ts and safety.ts. List entries and allergies are PHI (audited per field).
 */
const upperEnum = <T extends string>(values: readonly T[]) => Object.fromEntries(values.map((v) => [v.toUpperCase(), { value: v }])) as Record<Uppercase<T>, { value: T }>;

export function registerMedicationsSchema(builder: Builder): void {
  const MedStatus = builder.enumType('MedicationStatus', { values: upperEnum(MEDICATION_STATUSES) });
  const MedSource = builder.enumType('MedicationSource', { values: upperEnum(MEDICATION_SOURCES) });
  const AllergenKind = builder.enumType('AllergenKind', { description: 'DRUG (an RxCUI of the catalog), INGREDIENT (an ingredient RxCUI) or CLASS (a class id)', values: upperEnum(ALLERGEN_KINDS) });
  const AllergySeverity = builder.enumType('AllergySeverity', { values: upperEnum(ALLERGY_SEVERITIES) });
  const AllergyStatus = builder.enumType('AllergyStatus', { values: upperEnum(ALLERGY_STATUSES) });
  const AllergyType = builder.enumType('AllergyType', { values: upperEnum(ALLERGY_TYPES) });

  const DrugIngredientRef = builder.objectRef<DrugIngredientView>('DrugIngredient').implement({
    description: 'An active ingredient of a drug (RxNorm IN/PIN) and its strength in the drug',
    fields: (t) => ({
      rxcui: t.exposeString('rxcui'),
      name: t.exposeString('name'),
      strength: t.exposeString('strength', { nullable: true, description: 'as RxNorm writes it, e.g. "10 MG", "0.4 MG/ACTUAT"' }),
      strengthValue: t.exposeFloat('strengthValue', { nullable: true }),
      strengthUnit: t.exposeString('strengthUnit', { nullable: true }),
    }),
  });
  const DrugNdcRef = builder.objectRef<DrugNdcView>('DrugNdc').implement({
    description: 'A National Drug Code (package) of a drug',
    fields: (t) => ({
      ndc: t.exposeString('ndc', { description: '11 digits, 5-4-2 (HIPAA form)' }),
      labeler: t.exposeString('labeler', { nullable: true }),
      packageDescription: t.exposeString('packageDescription', { nullable: true }),
      source: t.exposeString('source', { description: 'rxnorm, fda-ndc or seed: where the NDC-to-drug link comes from' }),
    }),
  });

  const DrugRef = builder.objectRef<RxDrug>('Drug').implement({
    description: 'A prescribable drug of the catalog (RxNorm clinical or branded drug)',
    fields: (t) => ({
      rxcui: t.exposeString('rxcui'),
      name: t.exposeString('name'),
      strength: t.exposeString('strength', { nullable: true }),
      doseForm: t.exposeString('doseForm'),
      route: t.exposeString('route'),
      brandName: t.exposeString('brandName', { nullable: true }),
      controlledSchedule: t.exposeString('deaSchedule', { nullable: true, description: 'CII to CV, or null' }),
      tty: t.exposeString('tty', { description: 'RxNorm term type: SCD (clinical drug), SBD (branded drug), GPCK, BPCK' }),
      genericRxcui: t.exposeString('genericRxcui', { nullable: true, description: 'for a branded drug: its clinical drug' }),
      active: t.exposeBoolean('active', { description: 'false for a product RxNorm retired (kept for old records, not offered by the search)' }),
      // one query for the ingredients / NDCs of every drug of a list (dataloader)
      ingredients: t.loadableList({
        type: DrugIngredientRef,
        description: 'active ingredients with their strength in this drug',
        resolve: (d) => d.rxcui,
        load: async (ids: string[], ctx: RequestContext) => {
          const by = await ingredientsOf(await ctx.db(), ids);
          return ids.map((id) => by.get(id) ?? []);
        },
      }),
      ndcs: t.loadableList({
        type: DrugNdcRef,
        description: 'package NDCs (11-digit 5-4-2), from RxNorm and the FDA NDC directory',
        resolve: (d) => d.rxcui,
        load: async (ids: string[], ctx: RequestContext) => {
          const by = await ndcsOf(await ctx.db(), ids);
          return ids.map((id) => by.get(id) ?? []);
        },
      }),
    }),
  });

  const MedicationRef = builder.objectRef<MedicationEntry>('PatientMedication').implement({
    description: "An entry of a patient's medication list",
    phiResource: { patientId: (m) => m.patientId, resourceType: 'MedicationStatement' },
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (m) => m.id }),
      patientId: t.field({ type: 'UUID', resolve: (m) => m.patientId }),
      version: t.exposeInt('version'),
      drug: t.field({ type: DrugRef, nullable: true, phi: 'medications', description: 'the catalog drug; null for a free-text entry', resolve: (m) => m.drug }),
      drugText: t.string({ nullable: true, phi: 'medications', description: 'the medication as named, when it is not in the catalog (not matched by the safety checks)', resolve: (m) => m.drugText }),
      status: t.field({ type: MedStatus, phi: 'medications', resolve: (m) => m.status }),
      source: t.field({ type: MedSource, phi: 'medications', resolve: (m) => m.source }),
      sig: t.string({ nullable: true, phi: 'medications', resolve: (m) => m.sig }),
      doseAmount: t.float({ nullable: true, phi: 'medications', resolve: (m) => m.doseAmount }),
      doseUnit: t.string({ nullable: true, phi: 'medications', resolve: (m) => m.doseUnit }),
      frequencyPerDay: t.int({ nullable: true, phi: 'medications', resolve: (m) => m.frequencyPerDay }),
      startedOn: t.string({ nullable: true, phi: 'medications', resolve: (m) => m.startedOn }),
      stoppedOn: t.string({ nullable: true, phi: 'medications', resolve: (m) => m.stoppedOn }),
      note: t.string({ nullable: true, phi: 'medications', resolve: (m) => m.note }),
    }),
  });

  const AllergyRef = builder.objectRef<PatientAllergy>('PatientAllergy').implement({
    description: "A patient's drug allergy or intolerance",
    phiResource: { patientId: (a) => a.patientId, resourceType: 'AllergyIntolerance' },
    fields: (t) => ({
      id: t.field({ type: 'UUID', resolve: (a) => a.id }),
      patientId: t.field({ type: 'UUID', resolve: (a) => a.patientId }),
      version: t.exposeInt('version'),
      allergenKind: t.field({ type: AllergenKind, phi: 'allergies', resolve: (a) => a.allergenKind }),
      allergenCode: t.string({ phi: 'allergies', resolve: (a) => a.allergenCode }),
      allergenName: t.string({ phi: 'allergies', resolve: (a) => a.allergenName }),
      type: t.field({ type: AllergyType, phi: 'allergies', resolve: (a) => a.type }),
      reaction: t.string({ nullable: true, phi: 'allergies', resolve: (a) => a.reaction }),
      severity: t.field({ type: AllergySeverity, phi: 'allergies', resolve: (a) => a.severity }),
      status: t.field({ type: AllergyStatus, phi: 'allergies', resolve: (a) => a.status }),
      onsetOn: t.string({ nullable: true, phi: 'allergies', resolve: (a) => a.onsetOn }),
      note: t.string({ nullable: true, phi: 'allergies', resolve: (a) => a.note }),
    }),
  });

  const AlertRef = builder.objectRef<SafetyAlert>('SafetyAlert').implement({
    description: 'A prescribing safety alert (the query that returns it is audited as a read of the patient)',
    fields: (t) => ({
      key: t.exposeString('key', { description: 'stable key: name it in a checkPrescription override' }),
      kind: t.exposeString('kind', { description: 'interaction, allergy, duplicate_therapy, dose or age' }),
      severity: t.exposeString('severity', { description: 'contraindicated, major, moderate or minor' }),
      message: t.exposeString('message'),
      management: t.exposeString('management', { nullable: true }),
      codes: t.exposeStringList('codes', { description: 'RxCUIs and class ids the alert is about' }),
    }),
  });

  const MedicationInput = builder.inputType('PatientMedicationInput', {
    fields: (t) => ({
      patientId: t.field({ type: 'UUID', required: true }),
      drugRxcui: t.string({ description: 'the catalog drug; or give drugText' }),
      drugText: t.string({ description: 'free text for a medication the catalog does not have (exactly one of drugRxcui, drugText)' }),
      sig: t.string(),
      doseAmount: t.float({ description: 'units of the dose form per administration' }),
      doseUnit: t.string(),
      frequencyPerDay: t.int(),
      startedOn: t.string({ description: 'YYYY-MM-DD' }),
      source: t.field({ type: MedSource }),
      note: t.string(),
    }),
  });
  const AllergyInput = builder.inputType('PatientAllergyInput', {
    fields: (t) => ({
      patientId: t.field({ type: 'UUID', required: true }),
      allergenKind: t.field({ type: AllergenKind, required: true }),
      allergenCode: t.string({ required: true, description: 'a drug or ingredient RxCUI, or a class id (e.g. penicillins)' }),
      type: t.field({ type: AllergyType }),
      reaction: t.string(),
      severity: t.field({ type: AllergySeverity, required: true }),
      onsetOn: t.string({ description: 'YYYY-MM-DD' }),
      note: t.string(),
    }),
  });

  builder.queryField('drugs', (t) =>
    t.field({
      type: [DrugRef],
      description: 'catalog search by generic or brand name prefix',
      authScopes: { permission: 'rx:catalog:read' },
      args: { search: t.arg.string({ required: true }), first: t.arg.int({ required: false }) },
      resolve: (_r, args, ctx) => searchDrugs(ctx, args),
    }),
  );
  builder.queryField('drugsConnection', (t) =>
    t.connection(
      {
        type: DrugRef,
        description: 'catalog search by generic or brand name prefix, as pages (first/after; ordered by name, then RxCUI)',
        authScopes: { permission: 'rx:catalog:read' },
        args: { search: t.arg.string({ required: true }) },
        resolve: async (_r, args, ctx) => {
          if (args.last !== undefined && args.last !== null) throw badInput('only forward pagination (first/after) is supported', 'last');
          if (args.before) throw badInput('only forward pagination (first/after) is supported', 'before');
          const page = await searchDrugPage(ctx, args);
          return {
            edges: page.nodes.map((node) => ({ cursor: drugCursor(node), node })),
            pageInfo: { hasNextPage: page.hasNextPage, hasPreviousPage: !!args.after, startCursor: page.nodes[0] ? drugCursor(page.nodes[0]) : null, endCursor: page.endCursor },
          };
        },
      },
      { name: 'DrugConnection' },
      { name: 'DrugEdge' },
    ),
  );
  builder.queryField('drug', (t) =>
    t.field({
      type: DrugRef,
      description: 'one catalog drug by RxCUI (NOT_FOUND when the catalog lacks it)',
      authScopes: { permission: 'rx:catalog:read' },
      args: { rxcui: t.arg.string({ required: true }) },
      resolve: (_r, args, ctx) => drugByRxcui(ctx, args.rxcui),
    }),
  );
  builder.queryField('drugByNdc', (t) =>
    t.field({
      type: DrugRef,
      description: 'the catalog drug of an NDC: 4-4-2, 5-3-2 or 5-4-1 with hyphens, or 11 digits 5-4-2 with or without hyphens (NOT_FOUND when no drug has it)',
      authScopes: { permission: 'rx:catalog:read' },
      args: { ndc: t.arg.string({ required: true }) },
      resolve: (_r, args, ctx) => drugByNdc(ctx, args.ndc),
    }),
  );
  builder.queryField('patientMedications', (t) =>
    t.field({
      type: [MedicationRef],
      authScopes: { permission: 'rx:medication:read' },
      args: { patientId: t.arg({ type: 'UUID', required: true }), includeInactive: t.arg.boolean({ required: false }) },
      resolve: (_r, args, ctx) => patientMedications(ctx, args),
    }),
  );
  builder.queryField('patientAllergies', (t) =>
    t.field({
      type: [AllergyRef],
      authScopes: { permission: 'rx:allergy:read' },
      args: { patientId: t.arg({ type: 'UUID', required: true }), includeInactive: t.arg.boolean({ required: false }) },
      resolve: (_r, args, ctx) => patientAllergies(ctx, args),
    }),
  );
  builder.queryField('medicationSafetyCheck', (t) =>
    t.field({
      type: [AlertRef],
      description: 'the safety alerts for prescribing a drug to the patient now (interactions, allergies, duplicate therapy, dose, age)',
      authScopes: { permission: 'rx:check' },
      args: { patientId: t.arg({ type: 'UUID', required: true }), drugRxcui: t.arg.string({ required: true }), doseAmount: t.arg.float({ required: false }), frequencyPerDay: t.arg.int({ required: false }) },
      resolve: (_r, args, ctx) => medicationSafetyCheck(ctx, args),
    }),
  );
  builder.mutationField('addPatientMedication', (t) =>
    t.field({ type: MedicationRef, authScopes: { permission: 'rx:medication:write' }, args: { input: t.arg({ type: MedicationInput, required: true }) }, resolve: (_r, args, ctx) => addPatientMedication(ctx, args.input) }),
  );
  builder.mutationField('setPatientMedicationStatus', (t) =>
    t.field({
      type: MedicationRef,
      authScopes: { permission: 'rx:medication:write' },
      args: { id: t.arg({ type: 'UUID', required: true }), version: t.arg.int({ required: true }), status: t.arg({ type: MedStatus, required: true }), stoppedOn: t.arg.string({ required: false }) },
      resolve: (_r, args, ctx) => setPatientMedicationStatus(ctx, args),
    }),
  );
  builder.mutationField('addPatientAllergy', (t) =>
    t.field({ type: AllergyRef, authScopes: { permission: 'rx:allergy:write' }, args: { input: t.arg({ type: AllergyInput, required: true }) }, resolve: (_r, args, ctx) => addPatientAllergy(ctx, args.input) }),
  );
  builder.mutationField('setPatientAllergyStatus', (t) =>
    t.field({
      type: AllergyRef,
      authScopes: { permission: 'rx:allergy:write' },
      args: { id: t.arg({ type: 'UUID', required: true }), version: t.arg.int({ required: true }), status: t.arg({ type: AllergyStatus, required: true }) },
      resolve: (_r, args, ctx) => setPatientAllergyStatus(ctx, args),
    }),
  );
}
