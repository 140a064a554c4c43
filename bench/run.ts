/**
 * npm run bench -- <scenario>
 * Starts the app (embedded or DATABASE_URL) and its baselines in child
 * processes, loads each from this process with autocannon, and prints rps,
 * p50, p95, p99 and errors with the ratio to the baseline measured in this
 * run, and the CPU per request of each server process and of PostgreSQL.
 * patient-read and patient-create also run the peer, PostGraphile 5 over a
 * plain patients table in its own database on the same PostgreSQL
 * (bench/servers/postgraphile.ts), and print Carebase's ratio to it.
 * BENCH_DURATION (s, default 10), BENCH_CONNECTIONS (default 32) and
 * BENCH_ROUNDS (default 2) tune it.
 */
import os from 'node:os';

const scenarios: Record<string, () => Promise<unknown>> = {
  serverInfo: async () => (await import('./scenarios/serverInfo.js')).run(),
  overload: async () => (await import('./scenarios/overload.js')).run(),
  encrypt: async () => (await import('./scenarios/encrypt.js')).run(),
  'authed-serverInfo': async () => (await import('./scenarios/app.js')).authedServerInfo(),
  login: async () => (await import('./scenarios/app.js')).login(),
  'patient-read': async () => (await import('./scenarios/app.js')).patientRead(),
  'patient-create': async () => (await import('./scenarios/app.js')).patientCreate(),
  'patient-search': async () => (await import('./scenarios/app.js')).patientSearch(),
  'audited-read': async () => (await import('./scenarios/app.js')).auditedRead(),
  // e-prescribing safety check for a patient on 10 medications with 5 allergies, against an audited read
  'rx-check': async () => (await import('./scenarios/app.js')).rxCheck(),
  'audit-report': async () => (await import('./scenarios/audit-report.js')).auditReport(),
  'audit-seed': async () => (await import('./scenarios/audit-report.js')).auditSeed(),
  // 1,000 signed-in virtual users: socket.io connected, GraphQL over keep-alive HTTP with think time (embedded default or DATABASE_URL)
  users: async () => (await import('./scenarios/users.js')).run(),
  // 100 concurrent telehealth visits (book → consent → check in → wait → admit → chat → vitals → end), p95 per step and socket delivery p99 (embedded default or DATABASE_URL)
  telehealth: async () => (await import('./scenarios/telehealth.js')).run(),
  // the realtime scenarios run against DATABASE_URL (REDIS_URL optional) and print their own numbers
  // SQL statements and transactions per request, counted on the wire (needs DATABASE_URL)
  // CPU profile of the seeded server under one operation (read, create, search), summarised per pipeline phase
  profile: async () => (await import('./scenarios/profile.js')).run(),
  statements: async () => (await import('./scenarios/statements.js')).run(),
  fanout: async () => console.log(await (await import('./scenarios/fanout.js')).run({ databaseUrl: requireDatabaseUrl(), redisUrl: process.env.REDIS_URL || undefined })),
  jobs: async () => console.log(await (await import('./scenarios/jobs.js')).run({ databaseUrl: requireDatabaseUrl(), redisUrl: process.env.REDIS_URL || undefined })),
};

function requireDatabaseUrl(): string {
  if (!process.env.DATABASE_URL) throw new Error('this scenario needs DATABASE_URL');
  return process.env.DATABASE_URL;
}

const name = process.argv[2];
if (!name || !scenarios[name]) {
  console.error(
    `usage: npm run bench -- <scenario>\nscenarios: ${Object.keys(scenarios).join(', ')}\n` +
      'patient-read / patient-create: Carebase vs the PostGraphile 5 peer (patientByRowId / createPatient on a plain table), bare Apollo and bare Apollo + SQL',
  );
  process.exit(2);
}
console.log(`# bench ${name} — ${new Date().toISOString()} — ${os.cpus().length} cores, ${Math.round(os.totalmem() / 2 ** 30)} GiB, node ${process.version}`);
await scenarios[name]!();
process.exit(0);
