import type postgres from 'postgres';
import { toDate } from '../../platform/audit/index.js';
import { withTenant } from '../../platform/db/index.js';
import { OUTBOX_CHANNEL } from '../../platform/jobs/index.js';
import type { Logger } from '../../platform/logger.js';

/**
 * Anomaly rules over the audit log, run per tenant by a scheduled check.
 * Each rule upserts alerts keyed by (rule, actor, patient, window), so a
 * re-run never duplicates an alert. Windows are checked incrementally from
 * audit_anomaly_state.checked_until up to now minus a lag (events are stamped
 * before they commit).
 */

/** What the patients module tells the audit module about patients (registered in its init). */
export interface PatientDirectory {
  /**
   * Of these (user, patient) pairs, which are on the patient's care team?
   * Return keys `${actorId}:${patientId}`. Pairs not returned raise
   * OUTSIDE_CARE_TEAM alerts. `roles`: the actor's roles at the time of the
   * accesses (a role whose access is not by care team, such as the front
   * desk's, is not outside a care team). Runs in a transaction scoped to the tenant.
   */
  careTeamMembers?(sql: postgres.ReservedSql, pairs: readonly { actorId: string; patientId: string; roles: readonly string[] }[]): Promise<ReadonlySet<string>>;
  /** Flags the directory knows (e.g. patients who are employees), in addition to audit_patient_flags. */
  patientFlags?(sql: postgres.ReservedSql, patientIds: readonly string[]): Promise<ReadonlyMap<string, 'vip' | 'employee'>>;
}

/** The capability key under which a module provides its PatientDirectory (manifest `provides`). */
export const PATIENT_DIRECTORY = 'audit.patientDirectory';

export interface AnomalySettings {
  /** distinct patients one user may access in one hour before HIGH_VOLUME */
  volumePatientsPerHour: number;
  /** distinct patients one user may open by break-glass per day before BREAK_GLASS_FREQUENT */
  breakGlassPatientsPerDay: number;
  /** business hours in the tenant's time zone; PHI access outside raises AFTER_HOURS */
  businessHours: { start: number; end: number; timezone: string; weekends: boolean };
}

export const DEFAULT_ANOMALY_SETTINGS: AnomalySettings = {
  volumePatientsPerHour: 50,
  breakGlassPatientsPerDay: 3,
  businessHours: { start: 7, end: 19, timezone: 'UTC', weekends: false },
};

/** tenants.settings.audit overrides the defaults (validated field by field). */
export function anomalySettings(raw: unknown): AnomalySettings {
  const a = (raw && typeof raw === 'object' ? (raw as { audit?: unknown }).audit : undefined) as Record<string, unknown> | undefined;
  const s = structuredClone(DEFAULT_ANOMALY_SETTINGS);
  if (!a || typeof a !== 'object') return s;
  const int = (v: unknown, min: number, max: number) => (typeof v === 'number' && Number.isInteger(v) && v >= min && v <= max ? v : undefined);
  s.volumePatientsPerHour = int(a.volumePatientsPerHour, 1, 100_000) ?? s.volumePatientsPerHour;
  s.breakGlassPatientsPerDay = int(a.breakGlassPatientsPerDay, 0, 10_000) ?? s.breakGlassPatientsPerDay;
  const bh = a.businessHours as Record<string, unknown> | undefined;
  if (bh && typeof bh === 'object') {
    s.businessHours.start = int(bh.start, 0, 23) ?? s.businessHours.start;
    s.businessHours.end = int(bh.end, 1, 24) ?? s.businessHours.end;
    if (typeof bh.timezone === 'string' && isTimeZone(bh.timezone)) s.businessHours.timezone = bh.timezone;
    if (typeof bh.weekends === 'boolean') s.businessHours.weekends = bh.weekends;
  }
  return s;
}

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export interface AnomalyCheckOptions {
  now?: Date;
  /** what the enabled modules provide under PATIENT_DIRECTORY (the job passes `ctx.scope.provided(...)`); none: those rules find nothing */
  directories?: readonly PatientDirectory[];
  /** events younger than this are left for the next run (default 60 s) */
  lagMs?: number;
  /** first run of a tenant looks back this far (default 1 h) */
  initialLookbackMs?: number;
}

/** Runs every rule for every tenant with recent audit activity; returns alerts created or updated. */
export async function runAnomalyCheck(pool: postgres.Sql, log: Logger | undefined, opts: AnomalyCheckOptions = {}): Promise<number> {
  const now = opts.now ?? new Date();
  const until = new Date(now.getTime() - (opts.lagMs ?? 60_000));
  const tenants = await pool<{ t: string }[]>`select t from carebase_audit_active_tenants(${new Date(until.getTime() - 2 * 86_400_000)}) t`;
  let alerts = 0;
  for (const { t } of tenants) {
    try {
      alerts += await checkTenant(pool, t, until, opts.initialLookbackMs ?? 3_600_000, opts.directories ?? []);
    } catch (e) {
      const err = e as { code?: string; name?: string };
      log?.error({ tenantId: t, pgCode: err?.code, errorName: err?.name }, 'audit anomaly check failed for a tenant');
    }
  }
  return alerts;
}

async function checkTenant(pool: postgres.Sql, tenantId: string, until: Date, initialLookbackMs: number, directories: readonly PatientDirectory[]): Promise<number> {
  return withTenant(pool, tenantId, async (_db, tx) => {
    const [lock] = await tx<{ ok: boolean }[]>`select pg_try_advisory_xact_lock(hashtext('carebase.audit.anomalies'), hashtext(${tenantId})) as ok`;
    if (!lock?.ok) return 0; // another process is checking this tenant
    const [state] = await tx<{ checked_until: Date | string }[]>`select checked_until from audit_anomaly_state where tenant_id = ${tenantId}`;
    const since = state ? toDate(state.checked_until) : new Date(until.getTime() - initialLookbackMs);
    if (since >= until) return 0;
    const [tenant] = await tx<{ settings: unknown }[]>`select settings from tenants where id = ${tenantId}`;
    const s = anomalySettings(tenant?.settings);
    let n = 0;
    n += await highVolume(tx, tenantId, since, until, s);
    n += await afterHours(tx, tenantId, since, until, s);
    n += await breakGlassFrequent(tx, tenantId, since, until, s);
    n += await flaggedPatients(tx, tenantId, since, until, directories);
    n += await outsideCareTeam(tx, tenantId, since, until, directories);
    await tx`
      insert into audit_anomaly_state (tenant_id, checked_until) values (${tenantId}, ${until})
      on conflict (tenant_id) do update set checked_until = excluded.checked_until, updated_at = now()`;
    return n;
  }, { statementTimeoutMs: ANOMALY_STATEMENT_TIMEOUT_MS });
}

/** the first run of a tenant scans its whole look-back window: more than a request's deadline */
const ANOMALY_STATEMENT_TIMEOUT_MS = 120_000;

type Tx = postgres.ReservedSql;

interface Candidate {
  actor_id: string | null;
  patient_id: string | null;
  window_start: Date;
  window_end: Date;
  n: number;
  patients?: number;
  flag?: string;
}

/**
 * Upserts alerts; `recount`: the candidate counts the whole window (replace),
 * else only [since, until) (add to what earlier runs counted).
 */
async function upsertAlerts(tx: Tx, tenantId: string, rule: string, severity: string, rows: readonly Candidate[], recount: boolean): Promise<number> {
  for (const r of rows) {
    const detail: Record<string, string | number> = {};
    if (r.patients !== undefined) detail.patients = r.patients;
    if (r.flag !== undefined) detail.flag = r.flag;
    const [row] = await tx<{ id: string; inserted: boolean }[]>`
      insert into audit_alerts (tenant_id, rule, severity, actor_id, patient_id, window_start, window_end, event_count, detail)
      values (${tenantId}, ${rule}, ${severity}, ${r.actor_id}, ${r.patient_id}, ${r.window_start}, ${r.window_end}, ${r.n}, ${tx.json(detail)})
      on conflict (tenant_id, rule, actor_id, patient_id, window_start) do update set
        event_count = ${recount ? tx`excluded.event_count` : tx`audit_alerts.event_count + excluded.event_count`},
        detail = excluded.detail,
        updated_at = now()
      returning id, (xmax = 0) as inserted`;
    // a new alert is pushed to compliance dashboards (socket room alerts:security) through the outbox, in this
    // transaction: ids and codes only, never PHI
    if (row?.inserted) {
      const payload = { alertId: row.id, rule, severity };
      await tx`
        with ev as (
          insert into outbox (tenant_id, type, aggregate_id, payload, rooms, jobs)
          values (${tenantId}, ${ALERT_EVENT}, ${row.id}, ${tx.json(payload)}, ${[ALERT_ROOM]}::text[], '{}'::text[])
          returning id
        )
        select pg_notify(${OUTBOX_CHANNEL}, '') from ev`;
    }
  }
  return rows.length;
}

/** The outbox event of a new anomaly alert and the socket room compliance dashboards join (access's break-glass alerts use it too). */
export const ALERT_EVENT = 'audit.alertRaised';
export const ALERT_ROOM = 'alerts:security';

/**
 * audit_events as the rules read it: one row per patient an event covers (an event about several patients, a search
 * page, counts once for each of them, as when it was one row per patient); the rules' filters reach the table.
 */
function perPatient(tx: Tx) {
  return tx`(select e.tenant_id, e.at, e.event_type, e.actor_type, e.actor_id, e.actor_roles, e.action, e.outcome, e.purpose_of_use, p.patient_id
               from audit_events e
               cross join lateral unnest(case when cardinality(e.patient_ids) = 0 then array[e.patient_id] else e.patient_ids end) as p(patient_id)) audit_events`;
}

/** HIGH_VOLUME: a user touched more distinct patients in one hour than the threshold. */
async function highVolume(tx: Tx, tenantId: string, since: Date, until: Date, s: AnomalySettings) {
  const rows = await tx<Candidate[]>`
    select actor_id, null::uuid as patient_id, date_trunc('hour', at) as window_start, date_trunc('hour', at) + interval '1 hour' as window_end,
           count(distinct patient_id)::int as n
      from ${perPatient(tx)}
     where tenant_id = ${tenantId} and event_type = 'phi' and outcome = 'allowed' and actor_id is not null and patient_id is not null
       and at >= date_trunc('hour', ${since}::timestamptz) and at < ${until}
     group by actor_id, date_trunc('hour', at)
    having count(distinct patient_id) > ${s.volumePatientsPerHour}`;
  return upsertAlerts(tx, tenantId, 'HIGH_VOLUME', 'medium', rows, true);
}

/** AFTER_HOURS: PHI access by a user outside business hours (tenant time zone), per user and local day. */
async function afterHours(tx: Tx, tenantId: string, since: Date, until: Date, s: AnomalySettings) {
  const { start, end, timezone, weekends } = s.businessHours;
  const rows = await tx<Candidate[]>`
    select actor_id, null::uuid as patient_id,
           date_trunc('day', at at time zone ${timezone}) at time zone ${timezone} as window_start,
           (date_trunc('day', at at time zone ${timezone}) + interval '1 day') at time zone ${timezone} as window_end,
           count(*)::int as n, count(distinct patient_id)::int as patients
      from ${perPatient(tx)}
     where tenant_id = ${tenantId} and event_type = 'phi' and actor_type = 'user' and outcome = 'allowed'
       and at >= ${since} and at < ${until}
       and (extract(hour from at at time zone ${timezone}) < ${start}
            or extract(hour from at at time zone ${timezone}) >= ${end}
            or (${!weekends} and extract(isodow from at at time zone ${timezone}) >= 6))
     group by 1, 3, 4`;
  return upsertAlerts(tx, tenantId, 'AFTER_HOURS', 'low', rows, false);
}

/** BREAK_GLASS_FREQUENT: a user opened more patients by break-glass in one (UTC) day than the threshold. */
async function breakGlassFrequent(tx: Tx, tenantId: string, since: Date, until: Date, s: AnomalySettings) {
  const rows = await tx<Candidate[]>`
    select actor_id, null::uuid as patient_id, date_trunc('day', at) as window_start, date_trunc('day', at) + interval '1 day' as window_end,
           count(distinct patient_id)::int as n
      from ${perPatient(tx)}
     where tenant_id = ${tenantId} and (action = 'break-glass' or purpose_of_use = 'ETREAT') and outcome = 'allowed' and actor_id is not null
       and at >= date_trunc('day', ${since}::timestamptz) and at < ${until}
     group by actor_id, date_trunc('day', at)
    having count(distinct patient_id) > ${s.breakGlassPatientsPerDay}`;
  return upsertAlerts(tx, tenantId, 'BREAK_GLASS_FREQUENT', 'high', rows, true);
}

/** FLAGGED_PATIENT: any access to a VIP or employee patient, per user, patient and day. */
async function flaggedPatients(tx: Tx, tenantId: string, since: Date, until: Date, directories: readonly PatientDirectory[]) {
  const accessed = await tx<(Candidate & { patient_id: string })[]>`
    select actor_id, patient_id, date_trunc('day', at) as window_start, date_trunc('day', at) + interval '1 day' as window_end, count(*)::int as n
      from ${perPatient(tx)}
     where tenant_id = ${tenantId} and event_type = 'phi' and outcome = 'allowed' and patient_id is not null and actor_id is not null
       and at >= ${since} and at < ${until}
     group by actor_id, patient_id, date_trunc('day', at)`;
  if (!accessed.length) return 0;
  const ids = [...new Set(accessed.map((r) => r.patient_id))];
  const flagged = new Map<string, string>();
  for (const r of await tx<{ patient_id: string; flag: string }[]>`
    select patient_id, flag from audit_patient_flags where tenant_id = ${tenantId} and patient_id = any(${ids}::uuid[])`) {
    flagged.set(r.patient_id, r.flag);
  }
  for (const dir of directories) {
    const more = await dir.patientFlags?.(tx, ids);
    for (const [id, flag] of more ?? []) if (!flagged.has(id)) flagged.set(id, flag);
  }
  const hits = accessed.filter((r) => flagged.has(r.patient_id)).map((r) => ({ ...r, flag: flagged.get(r.patient_id) }));
  return upsertAlerts(tx, tenantId, 'FLAGGED_PATIENT', 'high', hits, false);
}

/** OUTSIDE_CARE_TEAM: a user accessed a patient whose care team they are not on (needs a PatientDirectory). */
async function outsideCareTeam(tx: Tx, tenantId: string, since: Date, until: Date, directories: readonly PatientDirectory[]) {
  const dirs = directories.filter((d) => d.careTeamMembers);
  if (!dirs.length) return 0;
  const pairs = await tx<(Candidate & { actor_id: string; patient_id: string; roles: string[] })[]>`
    select actor_id, patient_id, date_trunc('day', at) as window_start, date_trunc('day', at) + interval '1 day' as window_end, count(*)::int as n,
           array(select distinct r from unnest(array_agg(array_to_string(actor_roles, ','))) a, unnest(string_to_array(a, ',')) r where r <> '') as roles
      from ${perPatient(tx)}
     where tenant_id = ${tenantId} and event_type = 'phi' and actor_type = 'user' and outcome = 'allowed'
       and patient_id is not null and actor_id is not null and coalesce(purpose_of_use, '') <> 'ETREAT'
       and at >= ${since} and at < ${until}
     group by actor_id, patient_id, date_trunc('day', at)`;
  if (!pairs.length) return 0;
  const onTeam = new Set<string>();
  for (const d of dirs) for (const k of await d.careTeamMembers!(tx, pairs.map((p) => ({ actorId: p.actor_id, patientId: p.patient_id, roles: p.roles })))) onTeam.add(k);
  return upsertAlerts(tx, tenantId, 'OUTSIDE_CARE_TEAM', 'medium', pairs.filter((p) => !onTeam.has(`${p.actor_id}:${p.patient_id}`)), false);
}
