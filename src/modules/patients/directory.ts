import type postgres from 'postgres';
import type { PatientDirectory } from '../audit/index.js';
import { scopesFor } from './policy.js';

/**
 * What the audit module's anomaly check asks about patients: which
 * (user, patient) pairs are a care relationship (care team member, or the
 * patient's own account), or need none (a role with tenant-wide read, such as
 * the front desk). Accesses outside these raise OUTSIDE_CARE_TEAM.
 */
export const patientDirectory: PatientDirectory = {
  async careTeamMembers(sql: postgres.ReservedSql, allPairs) {
    const out = new Set<string>();
    // a role that reads every patient of the tenant by design (front desk, billing, admin) is not outside a care team:
    // its accesses are watched by HIGH_VOLUME and the other rules instead
    const pairs = allPairs.filter((p) => {
      if (!scopesFor(p.roles, 'read').has('tenant')) return true;
      out.add(`${p.actorId}:${p.patientId}`);
      return false;
    });
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
