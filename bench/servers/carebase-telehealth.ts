/**
 * Carebase for the `telehealth` scenario (issue 15): the real createApp (all modules, the telehealth module on the real
 * clock and the in-repo LiveKit simulator, job workers inline as `npm start` runs them on the embedded default) and a
 * provisioned tenant ready for BENCH_TELEHEALTH_SESSIONS visits (default 100):
 *
 *   - BENCH_TELEHEALTH_PROVIDERS providers (default 20; PROVIDER, TOTP enrolled at their first sign-in), each available
 *     all week, all day, in UTC;
 *   - one patient record per session (created by a FRONT_DESK user through createPatient) linked to its own PATIENT
 *     account (inviteUser → acceptInvitation → login, as test/modules/telehealth/helpers.ts does), so each patient books,
 *     consents, checks in and chats as themselves;
 *   - a 10-minute VIDEO visit type without buffer (`video-10`), so each provider's share of the sessions fits, one after
 *     another, inside the hour in which check-in is open (check-in opens 60 minutes before the start);
 *   - the current TELEHEALTH consent text, published by the admin (each patient records their consent in the session).
 *
 * Accounts are created and signed in 4 at a time (argon2id). Guards as shipped except where one bench process stands
 * in for a clinic's many clients: per-IP budgets are raised (every request comes from 127.0.0.1); the per-user budget
 * and load shedding stay at their defaults, so a 429 or 503 is an error of the run. Any of them can be overridden from
 * the env.
 *
 * Prints `BENCH_INFO <json>` ({ tenantId, visitTypeId, consentVersion, providers: [{ userId, token }],
 * patients: [{ userId, token, patientId }], setupMs, pg }) and then `BENCH_URL <url>`.
 */
import { createTenantWithAdmin, createUser, loginAs, adminSession } from '../../test/helpers/auth.js';
import { limited, startBenchApp } from './client.js';

const started = Date.now();
const SESSIONS = Number(process.env.BENCH_TELEHEALTH_SESSIONS ?? 100);
const PROVIDERS = Number(process.env.BENCH_TELEHEALTH_PROVIDERS ?? 20);

const { app, url, gql, t } = await startBenchApp('.data/bench-telehealth');

/** the data of an answer that must have succeeded */
async function must<T>(p: Promise<{ status: number; body: { data?: T; errors?: { message: string }[] } }>, what: string): Promise<T> {
  const r = await p;
  if (r.status !== 200 || r.body.errors?.length) throw new Error(`setup: ${what} failed (${r.status}): ${JSON.stringify(r.body.errors ?? r.body).slice(0, 300)}`);
  return r.body.data as T;
}

const tenant = await createTenantWithAdmin(t);
const admin = await adminSession(t, tenant);
const frontDesk = await loginAs(t, await createUser(t, tenant, 'FRONT_DESK'));
const providerUsers = await limited(Array.from({ length: PROVIDERS }, (_, i) => i), 4, (i) => createUser(t, tenant, 'PROVIDER', { displayName: `Dr Bench ${i + 1}` }));
const patientUsers = await limited(Array.from({ length: SESSIONS }, (_, i) => i), 4, () => createUser(t, tenant, 'PATIENT'));

// one patient record per session, linked to its PATIENT account (distinct names and dates of birth: no duplicate warnings)
const CREATE_PATIENT = 'mutation($i: CreatePatientInput!) { createPatient(input: $i) { id } }';
const LINK = 'mutation($p: UUID!, $u: UUID) { linkPatientUser(patientId: $p, userId: $u) { id } }';
/** 0 → 'aaa', 1 → 'aab', … (names take letters only) */
const letters = (n: number) => Array.from({ length: 3 }, (_, d) => String.fromCharCode(97 + (Math.floor(n / 26 ** (2 - d)) % 26))).join('');
const patientIds = await limited(patientUsers, 4, async (u, i) => {
  const dob = new Date(Date.UTC(1950, 0, 1) + i * 97 * 86_400_000).toISOString().slice(0, 10);
  const id = (await must(gql<{ createPatient: { id: string } }>(CREATE_PATIENT, { i: { givenName: 'Bench', familyName: `Telehealth-${letters(i)}`, dateOfBirth: dob } }, frontDesk.headers), 'createPatient')).createPatient.id;
  await must(gql(LINK, { p: id, u: u.id }, frontDesk.headers), 'linkPatientUser');
  return id;
});

// schedules: every provider all week, all day, UTC; one 10-minute video visit type without buffer
const SET_AVAILABILITY = 'mutation($i: SetProviderAvailabilityInput!) { setProviderAvailability(input: $i) { providerId } }';
const allWeek = [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, startTime: '00:00', endTime: '24:00' }));
for (const p of providerUsers) await must(gql(SET_AVAILABILITY, { i: { providerId: p.id, timeZone: 'UTC', weeklyHours: allWeek } }, frontDesk.headers), 'setProviderAvailability');
const visitTypeId = (
  await must(
    gql<{ createVisitType: { id: string } }>(
      'mutation($i: CreateVisitTypeInput!) { createVisitType(input: $i) { id } }',
      { i: { code: 'video-10', name: 'Video visit (10 min)', durationMinutes: 10, modality: 'VIDEO', bufferMinutes: 0 } },
      admin.headers,
    ),
    'createVisitType',
  )
).createVisitType.id;
const consentVersion = (
  await must(
    gql<{ publishConsentText: { version: number } }>(
      'mutation($i: PublishConsentTextInput!) { publishConsentText(input: $i) { version } }',
      { i: { kind: 'TELEHEALTH', title: 'Telehealth consent', body: 'I agree to receive care through video visits, and understand their limits.' } },
      admin.headers,
    ),
    'publishConsentText',
  )
).publishConsentText.version;

// sign-ins (TOTP enrolment for the providers)
const providerSessions = await limited(providerUsers, 4, (u) => loginAs(t, u));
const patientSessions = await limited(patientUsers, 4, (u) => loginAs(t, u));

// where the app's PostgreSQL is (for the bench's per-process CPU accounting of PostgreSQL)
const ownerUrl = new URL(app.database.ownerUrl);
console.log(
  `BENCH_INFO ${JSON.stringify({
    tenantId: tenant.id,
    visitTypeId,
    consentVersion,
    providers: providerSessions.map((s) => ({ userId: s.user.id, token: s.token })),
    patients: patientSessions.map((s, i) => ({ userId: s.user.id, token: s.token, patientId: patientIds[i]! })),
    setupMs: Date.now() - started,
    pg: { url: app.database.ownerUrl, database: ownerUrl.pathname.slice(1) },
  })}`,
);
console.log(`BENCH_URL ${url}`);
const stop = () => void app.close().then(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
