/**
 * npm run demo:seed [-- --slug demo]
 *
 * Development only (refused with NODE_ENV=production): creates a demo clinic
 * with one signed-up user per tenant role (ADMIN, PROVIDER, NURSE,
 * FRONT_DESK, BILLING, COMPLIANCE, PATIENT), a few fictitious patients (care
 * teams set, the PATIENT user linked to a record), and prints every user's
 * email and generated password, so a frontend team can sign in at once.
 * Opens the database like `npm run tenant:create`: DATABASE_URL, or the
 * embedded database in DATA_DIR.
 */
import { randomBytes } from 'node:crypto';
import fs from 'node:fs/promises';
import os from 'node:os';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { and, eq, inArray } from 'drizzle-orm';
import { bootDependencies } from '../boot.js';
import { ConfigError, loadConfig } from '../config.js';
import { provisionTenant, seedActiveUser } from '../modules/identity/index.js';
import { importPatientsCsv, patientCareTeam, patients } from '../modules/patients/index.js';
import { modules } from '../modules/index.js';
import { USER_ROLES } from '../platform/access/index.js';
import { withTenant } from '../platform/db/index.js';
import { AppError } from '../platform/errors.js';
import { createLogger } from '../platform/logger.js';

const USAGE = 'usage: npm run demo:seed [-- --slug <slug>]   (development only)';

function fail(message: string): never {
  process.stderr.write(`carebase: ${message}\n`);
  process.exit(1);
}

if (process.env.NODE_ENV === 'production') fail('demo:seed is for development only and is refused when NODE_ENV=production');

let args;
try {
  args = parseArgs({ options: { slug: { type: 'string', default: 'demo' }, help: { type: 'boolean', default: false } }, strict: true }).values;
} catch (e) {
  fail(`${(e as Error).message}\n${USAGE}`);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const slug = args.slug!.trim().toLowerCase();

let config;
try {
  config = loadConfig();
} catch (e) {
  fail(e instanceof ConfigError ? e.message : String(e));
}
if (config.isProduction) fail('demo:seed is for development only and is refused when NODE_ENV=production');

/** Every role a user of a clinic may hold (PLATFORM_ADMIN lives in the platform tenant; API_CLIENT is for API keys). */
const ROLES = USER_ROLES.filter((r) => r !== 'PLATFORM_ADMIN');

/** Fictitious patients and SSNs (made up for the demo). */
const SAMPLE_CSV = [
  'given_name,family_name,date_of_birth,sex_at_birth,email,phone_mobile,address_line1,city,state,postal_code,ssn,insurance_payer,insurance_member_id',
  'Ada,Demo-Lovelace,1985-12-10,F,ada@example.test,+14155550101,1 Analytical Way,Oakland,CA,94607,501-23-4511,Acme Health,AH-1001',
  'Alan,Demo-Turing,1972-06-23,M,alan@example.test,+14155550102,2 Bletchley Rd,Berkeley,CA,94704,502-34-5612,Acme Health,AH-1002',
  'Grace,Demo-Hopper,1956-12-09,F,,+14155550103,3 Compiler Ct,Alameda,CA,94501,,Bay Mutual,BM-2001',
  'Edsger,Demo-Dijkstra,1990-05-11,M,edsger@example.test,,4 Shortest Path,Oakland,CA,94610,,,',
  'Barbara,Demo-Liskov,2001-11-07,F,,+14155550105,5 Substitution St,San Leandro,CA,94577,,Bay Mutual,BM-2002',
  'Katherine,Demo-Johnson,1968-08-26,F,kj@example.test,+14155550106,6 Orbit Ave,Hayward,CA,94541,,,',
].join('\n');

const log = createLogger(process.env.LOG_LEVEL ? config.logLevel : 'warn');
// the same dependencies as the API and the worker (database, field crypto, permission table), closed in reverse order
const boot = await bootDependencies(config, log, { role: 'cli', modules });
const { database: db, crypto, permissions } = boot.deps;
let tmp: string | undefined;
try {
  const clinic = await provisionTenant(db.sql, { name: `Demo Clinic (${slug})`, slug, adminEmail: `admin@${slug}.example.test`, adminName: 'Demo Admin' });
  const people: { role: string; email: string; password: string; userId: string }[] = [];
  for (const role of ROLES) {
    const email = `${role.toLowerCase().replace('_', '-')}@${slug}.example.test`;
    const password = `Demo-${randomBytes(12).toString('base64url')}`;
    const displayName = `Demo ${role.charAt(0)}${role.slice(1).toLowerCase().replace('_', ' ')}`;
    const userId = await seedActiveUser(db.sql, clinic.tenantId, { email, displayName, roles: [role], password }, role === 'ADMIN' ? clinic.adminUserId : undefined);
    people.push({ role, email, password, userId });
  }

  tmp = await fs.mkdtemp(path.join(os.tmpdir(), 'carebase-demo-'));
  const file = path.join(tmp, 'patients.csv');
  await fs.writeFile(file, `${SAMPLE_CSV}\n`, { mode: 0o600 });
  const imported = await importPatientsCsv({ sql: db.sql, crypto, tenantId: clinic.tenantId, file, log });
  if (imported.status !== 'completed' || imported.rejected) throw new Error(`sample patients refused: ${imported.errors.map((x) => `line ${x.line} ${x.field}: ${x.code}`).join('; ')}`);

  // care teams (providers and nurses read only their patients) and the PATIENT user's own record
  const byRole = Object.fromEntries(people.map((p) => [p.role, p.userId]));
  await withTenant(db.sql, clinic.tenantId, async (tx) => {
    const rows = await tx.select({ id: patients.id, familyName: patients.familyName }).from(patients).where(eq(patients.tenantId, clinic.tenantId)).orderBy(patients.mrn);
    const ids = rows.map((r) => r.id);
    const team = [
      ...ids.slice(0, 4).map((patientId) => ({ tenantId: clinic.tenantId, patientId, userId: byRole.PROVIDER!, role: 'primary_provider' as const, addedBy: byRole.ADMIN! })),
      ...ids.slice(0, 2).map((patientId) => ({ tenantId: clinic.tenantId, patientId, userId: byRole.NURSE!, role: 'nurse' as const, addedBy: byRole.ADMIN! })),
    ];
    await tx.insert(patientCareTeam).values(team);
    await tx.update(patients).set({ userId: byRole.PATIENT! }).where(and(eq(patients.tenantId, clinic.tenantId), inArray(patients.id, ids.slice(0, 1))));
  });

  const origin = `http://localhost:${config.port}`;
  const pad = (s: string, n: number) => s.padEnd(n);
  const lines = [
    `Demo clinic created (development only): slug ${slug}, tenant ${clinic.tenantId}`,
    `${imported.imported} sample patients (fictitious); the provider's care team holds 4 of them, the nurse's 2; the patient user is linked to one.`,
    '',
    `${pad('role', 12)}${pad('email', 36)}${pad('password', 24)}sign-in`,
    ...people.map((p) => `${pad(p.role, 12)}${pad(p.email, 36)}${pad(p.password, 24)}${permissions.rolesRequireMfa([p.role]) ? 'password + TOTP (enrol at first sign-in)' : 'password'}`),
    '',
    `Sign in at ${origin}/graphql (Apollo Sandbox in a browser, or curl):`,
    `  mutation { login(input: { tenantSlug: "${slug}", email: "<email>", password: "<password>" }) { status accessToken mfaToken } }`,
    '  status AUTHENTICATED: send the accessToken as  authorization: Bearer <accessToken>',
    '  status MFA_ENROLMENT_REQUIRED (roles marked TOTP): enrol once with the mfaToken, then you are signed in:',
    '    mutation { startTotpEnrolment(mfaToken: "<mfaToken>") { secret provisioningUri } }      # add the secret to an authenticator app',
    '    mutation { confirmTotpEnrolment(input: { mfaToken: "<mfaToken>", code: "<6 digits>" }) { recoveryCodes login { accessToken } } }',
    '  status MFA_REQUIRED (later sign-ins): mutation { verifyMfa(input: { mfaToken: "<mfaToken>", code: "<6 digits>" }) { accessToken } }',
    'First query:  { viewer { user { id email displayName roles } tenant { slug name } roles permissions } }',
    'The passwords are shown once; run demo:seed again with --slug <other> for a fresh clinic.',
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
} catch (e) {
  await boot.close();
  if (tmp) await fs.rm(tmp, { recursive: true, force: true });
  fail(e instanceof AppError ? `${e.message}${e.code === 'CONFLICT' ? ' (pass --slug <other>)' : ''}` : `demo seed failed: ${(e as Error).name}: ${(e as Error).message}`);
}
await boot.close();
if (tmp) await fs.rm(tmp, { recursive: true, force: true });
