import type postgres from 'postgres';
import type { PatientDirectory } from '../audit/index.js';

/**
 * What the audit module's anomaly check asks about patients: which
 * (user, patient) pairs are a care relationship (care team member, or the
 * patient's own account). Accesses outside these raise OUTSIDE_CARE_TEAM.
 */
export const patientDirectory: PatientDirectory = {
  async careTeamMembers(sql: postgres.ReservedSql, pairs) {
    const out = new Set<string>();
    if (!pairs.length) return out;
    const actors = pairs.map((p) => p.actorId);
    const patientIds = pairs.map((p) => p.patientId);
    const rows = await sql<{ actor: string; patient: string }[]>`
      select x.actor, x.patient
        from unnest(${actors}::text[], ${patientIds}::uuid[]) as x(actor, patient)
       where exists (select 1 from patient_care_team ct where ct.patient_id = x.patient and ct.user_id::text = x.actor)
          or exists (select 1 from patients p where p.id = x.patient and p.user_id::text = x.actor)`;
    for (const r of rows) out.add(`${r.actor}:${r.patient}`);
    return out;
  },
};
