import { sql } from 'drizzle-orm';
import type { Db } from '../../platform/db/index.js';
import { notFound } from '../../platform/errors.js';
import type { RequestScope } from '../../platform/scope/index.js';
import { resourceExists } from '../../platform/access/index.js';
import { patients } from '../patients/index.js';
import { readCatalogSeed } from './catalog/loader.js';
import type { AlertSeverity, PrescriptionSafety, SafetyAlertRef } from './prescriptions.js';
import { findDrug } from './prescriptions.js';
import { badInputWith, intArg, principalOf, requirePatientAccess, userIdOf, uuidArg } from './rx-common.js';
import { rxAlertOverrides } from './tables.js';

/**
 * The safety checks run before a prescription is signed (the lifecycle's `check` step) and on demand
 * (`medicationSafetyCheck`), for a drug and a patient, against what the patient takes: active and on-hold entries of
 * the medication list and prescriptions in flight (checked, signed, transmitted, accepted, dispensed).
 *
 * - interaction: a drug–drug interaction between any ingredient of the drug and any ingredient of what the patient
 *   takes (rx_interactions is by ingredient, so brands and generics match alike); severity from the catalog.
 * - allergy: an active allergy to the drug itself, one of its ingredients, or a class of one of its ingredients or any
 *   ancestor class (a penicillin allergy matches amoxicillin). Severity: a severe or life-threatening allergy is
 *   contraindicated, any other allergy major, an intolerance moderate. Cross-sensitivity (the seed's
 *   crossSensitivities: a penicillin allergy and a cephalosporin) is its own, lower alert.
 * - duplicate_therapy: the same ingredient already taken (major), or another ingredient of the same therapeutic class
 *   (moderate).
 * - dose: acetaminophen above 4,000 mg a day (major); methotrexate with a daily frequency (major: it is dosed weekly
 *   outside oncology); warfarin above 10 mg a day (moderate) or 15 mg a day (major); opioids at 50 MME a day or more (moderate) and 90 or more (major), CDC 2022 conversion factors.
 * - age: codeine or tramadol for a child under 12 (contraindicated, FDA 2017).
 *
 * Alert keys are stable (kind:codes:drug) so an override can name them. Nothing here is logged; what the check read
 * is audited by the caller's field or by the lifecycle.
 */
export interface SafetyAlert extends SafetyAlertRef {
  message: string;
  management: string | null;
  /** the RxCUIs / class ids the alert is about */
  codes: string[];
}

const TAKEN_PRESCRIPTION_STATUSES = ['checked', 'signed', 'transmitted', 'accepted', 'dispensed'];
/** CDC 2022 clinical practice guideline, morphine milligram equivalent conversion factors (oral) */
const MME_FACTORS: Record<string, number> = { morphine: 1, oxycodone: 1.5, hydrocodone: 1, codeine: 0.15, tramadol: 0.2, methadone: 4.7 };
const ACETAMINOPHEN_MAX_MG_PER_DAY = 4000;
const NO_CHILD_UNDER_12 = new Set(['codeine', 'tramadol']);
/**
 * Warfarin: usual maintenance 2–10 mg a day and initiation at 10 mg or less (ACCP/CHEST 2012, the label's 2–5 mg
 * start); above 10 mg a day is moderate (verify the INR plan), above 15 mg a day major (likely a units or tablet error).
 */
const WARFARIN_MODERATE_MG_PER_DAY = 10;
const WARFARIN_MAJOR_MG_PER_DAY = 15;

interface Ingredient {
  rxcui: string;
  name: string;
  strengthValue: number | null;
  strengthUnit: string | null;
}
interface Taken {
  drugRxcui: string;
  drugName: string;
  ingredientRxcui: string;
}

const rows = <T>(r: unknown) => r as T[];

export async function evaluateSafety(
  db: Db,
  tenantId: string,
  input: { patientId: string; drugRxcui: string; doseAmount: number | null; frequencyPerDay: number | null; excludePrescriptionId?: string | null },
): Promise<SafetyAlert[]> {
  const { patientId, drugRxcui } = input;
  const drug = await findDrug(db, drugRxcui);
  const ingredients = rows<Ingredient>(
    await db.execute(sql`select i.rxcui, i.name, di.strength_value as "strengthValue", di.strength_unit as "strengthUnit"
      from rx_drug_ingredients di join rx_ingredients i on i.rxcui = di.ingredient_rxcui where di.drug_rxcui = ${drug.rxcui} order by i.rxcui`),
  );
  const ingIds = ingredients.map((i) => i.rxcui);
  const ingList = sql.join(ingIds.length ? ingIds.map((x) => sql`${x}`) : [sql`null`], sql`, `);
  // the classes of the drug's ingredients and all their ancestors
  const classes = rows<{ classId: string; therapeutic: boolean; ingredient: string }>(
    await db.execute(sql`with recursive up(class_id, ingredient) as (
        select class_id, ingredient_rxcui from rx_ingredient_classes where ingredient_rxcui in (${ingList})
        union select c.parent_id, up.ingredient from up join rx_drug_classes c on c.id = up.class_id where c.parent_id is not null)
      select up.class_id as "classId", c.therapeutic, up.ingredient from up join rx_drug_classes c on c.id = up.class_id`),
  );
  const classIds = new Set(classes.map((c) => c.classId));
  // what the patient takes, by ingredient
  const taken = rows<Taken>(
    await db.execute(sql`select d.rxcui as "drugRxcui", d.name as "drugName", di.ingredient_rxcui as "ingredientRxcui"
      from (
        select drug_rxcui from rx_patient_medications where tenant_id = ${tenantId} and patient_id = ${patientId} and status in ('active', 'on_hold')
        union
        select drug_rxcui from rx_prescriptions where tenant_id = ${tenantId} and patient_id = ${patientId}
          and status in (${sql.join(TAKEN_PRESCRIPTION_STATUSES.map((s) => sql`${s}`), sql`, `)})
          and id is distinct from ${input.excludePrescriptionId ?? null}::uuid
      ) t join rx_drugs d on d.rxcui = t.drug_rxcui join rx_drug_ingredients di on di.drug_rxcui = d.rxcui`),
  );
  const alerts = new Map<string, SafetyAlert>();
  const add = (a: SafetyAlert) => {
    if (!alerts.has(a.key)) alerts.set(a.key, a);
  };
  const nameOf = new Map(ingredients.map((i) => [i.rxcui, i.name]));

  // ---- interactions
  if (ingIds.length && taken.length) {
    const takenIds = [...new Set(taken.map((t) => t.ingredientRxcui))];
    const takenList = sql.join(takenIds.map((x) => sql`${x}`), sql`, `);
    const found = rows<{ a: string; b: string; an: string; bn: string; severity: AlertSeverity; mechanism: string; management: string }>(
      await db.execute(sql`select x.ingredient_a as a, x.ingredient_b as b, ia.name as an, ib.name as bn, x.severity, x.mechanism, x.management
        from rx_interactions x join rx_ingredients ia on ia.rxcui = x.ingredient_a join rx_ingredients ib on ib.rxcui = x.ingredient_b
        where (x.ingredient_a in (${ingList}) and x.ingredient_b in (${takenList})) or (x.ingredient_b in (${ingList}) and x.ingredient_a in (${takenList}))`),
    );
    for (const x of found) {
      const other = nameOf.has(x.a) ? x.b : x.a;
      const with_ = taken.find((t) => t.ingredientRxcui === other);
      add({
        key: `interaction:${x.a}:${x.b}`,
        kind: 'interaction',
        severity: x.severity,
        message: `${x.an} + ${x.bn} (${with_?.drugName ?? 'current medication'}): ${x.mechanism}`,
        management: x.management,
        codes: [x.a, x.b],
      });
    }
  }

  // ---- allergies (drug, ingredient, class incl. ancestors) and cross-sensitivity
  const allergies = rows<{ id: string; kind: string; code: string; name: string; type: string; severity: string; reaction: string | null }>(
    await db.execute(sql`select id, allergen_kind as kind, allergen_code as code, allergen_name as name, type, severity, reaction
      from rx_patient_allergies where tenant_id = ${tenantId} and patient_id = ${patientId} and status = 'active'`),
  );
  for (const al of allergies) {
    const hit = (al.kind === 'drug' && (al.code === drug.rxcui || al.code === drug.genericRxcui)) || (al.kind === 'ingredient' && nameOf.has(al.code)) || (al.kind === 'class' && classIds.has(al.code));
    if (!hit) continue;
    const severity: AlertSeverity = al.type === 'intolerance' ? 'moderate' : al.severity === 'severe' || al.severity === 'life_threatening' ? 'contraindicated' : 'major';
    add({
      key: `allergy:${al.code}:${drug.rxcui}`,
      kind: 'allergy',
      severity,
      message: `Recorded ${al.type} to ${al.name} (${al.severity}${al.reaction ? `: ${al.reaction}` : ''}) matches ${drug.name}`,
      management: 'Choose an agent outside the allergen class, or confirm tolerance and override with a reason.',
      codes: [al.code, drug.rxcui],
    });
  }
  const { seed } = await readCatalogSeed();
  for (const cross of seed.crossSensitivities) {
    if (!classIds.has(cross.crossClass)) continue;
    const allergyToClass = await allergicToClass(db, allergies, cross.allergyClass);
    if (!allergyToClass) continue;
    const severe = allergyToClass.severity === 'severe' || allergyToClass.severity === 'life_threatening';
    add({
      key: `allergy:${cross.allergyClass}~${cross.crossClass}:${drug.rxcui}`,
      kind: 'allergy',
      severity: severe ? 'major' : cross.severity,
      message: `Possible cross-sensitivity: recorded allergy to ${allergyToClass.name}; ${drug.name} is in ${cross.crossClass}`,
      management: cross.note,
      codes: [allergyToClass.code, cross.crossClass, drug.rxcui],
    });
  }

  // ---- duplicate therapy
  const therapeutic = new Set(classes.filter((c) => c.therapeutic).map((c) => c.classId));
  for (const t of taken) {
    if (t.drugRxcui === drug.rxcui || nameOf.has(t.ingredientRxcui)) {
      add({
        key: `duplicate_therapy:${t.ingredientRxcui}:${t.drugRxcui}`,
        kind: 'duplicate_therapy',
        severity: 'major',
        message: `The patient already takes ${t.drugName}, with the same ingredient`,
        management: 'Stop one of them, or document why both are intended.',
        codes: [t.ingredientRxcui, t.drugRxcui],
      });
    }
  }
  if (therapeutic.size && taken.length) {
    const takenIds = [...new Set(taken.map((t) => t.ingredientRxcui))].filter((x) => !nameOf.has(x));
    if (takenIds.length) {
      const shared = rows<{ ingredient: string; classId: string; className: string }>(
        await db.execute(sql`select ic.ingredient_rxcui as ingredient, c.id as "classId", c.name as "className"
          from rx_ingredient_classes ic join rx_drug_classes c on c.id = ic.class_id
          where c.therapeutic and ic.ingredient_rxcui in (${sql.join(takenIds.map((x) => sql`${x}`), sql`, `)})`),
      );
      for (const s of shared) {
        if (!therapeutic.has(s.classId)) continue;
        const t = taken.find((x) => x.ingredientRxcui === s.ingredient)!;
        add({
          key: `duplicate_therapy:${s.classId}:${t.drugRxcui}`,
          kind: 'duplicate_therapy',
          severity: 'moderate',
          message: `The patient already takes ${t.drugName} (${s.className})`,
          management: 'Two agents of one therapeutic class are rarely intended: confirm or stop one.',
          codes: [s.classId, t.drugRxcui],
        });
      }
    }
  }

  // ---- dose
  const perDay = input.doseAmount !== null && input.frequencyPerDay !== null ? input.doseAmount * input.frequencyPerDay : null;
  let mme = 0;
  for (const i of ingredients) {
    const mgPerDay = perDay !== null && i.strengthValue !== null && i.strengthUnit === 'MG' ? i.strengthValue * perDay : null;
    if (i.name === 'acetaminophen' && mgPerDay !== null && mgPerDay > ACETAMINOPHEN_MAX_MG_PER_DAY) {
      add({ key: `dose:${i.rxcui}:max-daily`, kind: 'dose', severity: 'major', message: `acetaminophen ${mgPerDay} mg a day exceeds ${ACETAMINOPHEN_MAX_MG_PER_DAY} mg`, management: 'Reduce the dose or frequency; count other acetaminophen products.', codes: [i.rxcui] });
    }
    if (i.name === 'methotrexate' && input.frequencyPerDay !== null) {
      add({ key: `dose:${i.rxcui}:daily`, kind: 'dose', severity: 'major', message: 'methotrexate prescribed with a daily frequency; outside oncology it is taken once weekly (fatal daily-dosing errors are reported)', management: 'Write a once-weekly sig with the day of the week.', codes: [i.rxcui] });
    }
    if (i.name === 'warfarin' && mgPerDay !== null && mgPerDay > WARFARIN_MODERATE_MG_PER_DAY) {
      const major = mgPerDay > WARFARIN_MAJOR_MG_PER_DAY;
      add({
        key: `dose:${i.rxcui}:max-daily`,
        kind: 'dose',
        severity: major ? 'major' : 'moderate',
        message: `warfarin ${mgPerDay} mg a day is above ${major ? WARFARIN_MAJOR_MG_PER_DAY : WARFARIN_MODERATE_MG_PER_DAY} mg (usual maintenance 2-10 mg a day)`,
        management: major ? 'Check the units and tablet strength; doses this high need a documented INR history.' : 'Confirm the dose against recent INR results; start at 10 mg a day or less.',
        codes: [i.rxcui],
      });
    }
    if (MME_FACTORS[i.name] !== undefined && mgPerDay !== null) mme += mgPerDay * MME_FACTORS[i.name]!;
  }
  if (mme >= 50) {
    const opioid = ingredients.find((i) => MME_FACTORS[i.name] !== undefined)!;
    add({
      key: `dose:${opioid.rxcui}:mme`,
      kind: 'dose',
      severity: mme >= 90 ? 'major' : 'moderate',
      message: `${Math.round(mme)} morphine milligram equivalents a day`,
      management: mme >= 90 ? 'Avoid 90 MME/day or more or justify it; offer naloxone.' : 'Reassess benefit and risk at 50 MME/day or more; offer naloxone.',
      codes: [opioid.rxcui],
    });
  }

  // ---- age
  const underTwelve = ingredients.filter((i) => NO_CHILD_UNDER_12.has(i.name));
  if (underTwelve.length) {
    const [p] = rows<{ age: number }>(
      await db.execute(sql`select extract(year from age(current_date, ${patients.dateOfBirth}))::int as age from ${patients} where ${patients.tenantId} = ${tenantId} and ${patients.id} = ${patientId}`),
    );
    if (p && p.age < 12) {
      for (const i of underTwelve) {
        add({ key: `age:${i.rxcui}`, kind: 'age', severity: 'contraindicated', message: `${i.name} is contraindicated under 12 years (ultra-rapid CYP2D6 metabolism: fatal respiratory depression)`, management: 'Use a non-opioid analgesic or another agent.', codes: [i.rxcui] });
      }
    }
  }
  const order: Record<AlertSeverity, number> = { contraindicated: 0, major: 1, moderate: 2, minor: 3 };
  return [...alerts.values()].sort((a, b) => order[a.severity] - order[b.severity] || a.key.localeCompare(b.key));
}

/** The active allergy (to the class, a descendant class, or one of its ingredients) that makes the patient allergic to `classId`. */
async function allergicToClass(db: Db, allergies: { kind: string; code: string; name: string; severity: string }[], classId: string) {
  const relevant = allergies.filter((a) => a.kind === 'class' || a.kind === 'ingredient');
  if (!relevant.length) return undefined;
  const members = rows<{ code: string }>(
    await db.execute(sql`with recursive down(id) as (select ${classId}::text union select c.id from rx_drug_classes c join down on c.parent_id = down.id)
      select id as code from down union select ingredient_rxcui from rx_ingredient_classes where class_id in (select id from down)`),
  );
  const inClass = new Set(members.map((m) => m.code));
  return relevant.find((a) => inClass.has(a.code));
}

/** The module's safety checks as the prescription lifecycle calls them. */
export const catalogSafety: PrescriptionSafety = {
  async check(scope, input) {
    const p = principalOf(scope);
    const db = await scope.db();
    return evaluateSafety(db, p.tenantId, {
      patientId: input.patientId,
      drugRxcui: input.drugRxcui,
      doseAmount: input.doseAmount === null ? null : Number(input.doseAmount),
      frequencyPerDay: input.frequencyPerDay,
      excludePrescriptionId: input.prescriptionId,
    });
  },
  async override(scope, input) {
    // a major or contraindicated alert is overridden only by whoever may (rx:alert:override), with a reason
    const p = principalOf(scope, input.alert.severity === 'major' || input.alert.severity === 'contraindicated' ? 'rx:alert:override' : null);
    const db = await scope.db();
    await db.insert(rxAlertOverrides).values({
      tenantId: p.tenantId,
      patientId: input.patientId,
      drugRxcui: input.drugRxcui,
      prescriptionId: input.prescriptionId,
      alertKey: input.alert.key,
      kind: input.alert.kind as 'interaction',
      severity: input.alert.severity,
      reason: input.reason,
      actorId: userIdOf(p),
      requestId: scope.requestId,
    });
    // ids and codes only: the reason stays in its table (compliance reads it there)
    scope.recordPhiAccess({ patientIds: [input.patientId], resourceType: 'SafetyAlertOverride', resourceId: input.prescriptionId, fields: ['SafetyAlertOverride.reason'], action: 'create', outcome: 'allowed', detail: { alertKey: input.alert.key, severity: input.alert.severity } });
  },
};

/** medicationSafetyCheck: the alerts for prescribing `drugRxcui` to a patient now (before any draft exists). */
export async function medicationSafetyCheck(scope: RequestScope, args: { patientId: unknown; drugRxcui: unknown; doseAmount?: unknown; frequencyPerDay?: unknown }): Promise<SafetyAlert[]> {
  const p = principalOf(scope, 'rx:check');
  const patientId = uuidArg(args.patientId, 'patientId');
  const db = await scope.db();
  if (!(await resourceExists(scope, 'patient', db, patientId))) throw notFound('Patient');
  await requirePatientAccess(scope, db, patientId, 'clinical:read', 'SafetyCheck');
  let doseAmount: number | null = null;
  if (args.doseAmount !== undefined && args.doseAmount !== null) {
    if (typeof args.doseAmount !== 'number' || !Number.isFinite(args.doseAmount) || args.doseAmount <= 0 || args.doseAmount > 10_000) throw badInputWith('doseAmount must be a positive number', 'doseAmount', 'DOSE_INVALID');
    doseAmount = args.doseAmount;
  }
  const frequencyPerDay = intArg(args.frequencyPerDay, 'frequencyPerDay', 1, 48, true);
  const alerts = await evaluateSafety(db, p.tenantId, { patientId, drugRxcui: String(args.drugRxcui ?? ''), doseAmount, frequencyPerDay });
  scope.recordPhiAccess({ patientIds: [patientId], resourceType: 'SafetyCheck', resourceId: null, fields: ['SafetyCheck.alerts'], action: 'read', outcome: 'allowed', detail: { alerts: alerts.length } });
  return alerts;
}
