/**
 * npm run tenant:create -- --name "Northside Clinic" --slug northside --admin-email boss@northside.example [--admin-name "Dr Boss"]
 * npm run tenant:create -- --platform-admin --admin-email ops@carebase.example [--admin-name "Ops"]
 *
 * Creates a tenant with its first admin (or invites a platform administrator
 * into the platform tenant) against DATABASE_URL, or the embedded database in
 * DATA_DIR, and prints the admin's one-time invitation token (valid 72 hours,
 * stored only as a hash). The admin sets their password by accepting it
 * (acceptInvitation, or the frontend's accept page), then signs in and enrols
 * TOTP. No password ever passes through the command line or the environment.
 */
import { parseArgs } from 'node:util';
import { bootDependencies } from '../boot.js';
import { ConfigError, loadConfig } from '../config.js';
import { invitePlatformAdmin, provisionTenant } from '../modules/identity/index.js';
import { AppError } from '../platform/errors.js';
import { createLogger } from '../platform/logger.js';

const USAGE = `usage: npm run tenant:create -- --name <name> --slug <slug> --admin-email <email> [--admin-name <name>]
       npm run tenant:create -- --platform-admin --admin-email <email> [--admin-name <name>]`;

function fail(message: string): never {
  process.stderr.write(`carebase: ${message}\n`);
  process.exit(1);
}

let args;
try {
  args = parseArgs({
    options: {
      name: { type: 'string' },
      slug: { type: 'string' },
      'admin-email': { type: 'string' },
      'admin-name': { type: 'string' },
      'platform-admin': { type: 'boolean', default: false },
      help: { type: 'boolean', default: false },
    },
    strict: true,
  }).values;
} catch (e) {
  fail(`${(e as Error).message}\n${USAGE}`);
}
if (args.help) {
  process.stdout.write(`${USAGE}\n`);
  process.exit(0);
}
const email = args['admin-email'];
if (!email) fail(`--admin-email is required\n${USAGE}`);
if (!args['platform-admin'] && (!args.name || !args.slug)) fail(`--name and --slug are required\n${USAGE}`);

let config;
try {
  config = loadConfig();
} catch (e) {
  fail(e instanceof ConfigError ? e.message : String(e));
}
const log = createLogger(process.env.LOG_LEVEL ? config.logLevel : 'warn');
// the same dependencies as the API and the worker (database, field crypto, permission table), closed in reverse order
let boot;
try {
  boot = await bootDependencies(config, log, { role: 'cli', modules: [] });
} catch (e) {
  fail(`cannot open the database: ${(e as Error).message}`);
}
const db = boot.deps.database;
try {
  const p = args['platform-admin']
    ? await invitePlatformAdmin(db.sql, { email, name: args['admin-name'] })
    : await provisionTenant(db.sql, { name: args.name!, slug: args.slug!, adminEmail: email, adminName: args['admin-name'] });
  const origin = config.publicOrigins[0];
  const lines = [
    args['platform-admin'] ? 'Platform administrator invited.' : `Tenant created: ${p.slug} (${p.tenantId})`,
    `Admin user:        ${p.adminUserId}`,
    `Invitation token:  ${p.invitationToken}`,
    `Expires:           ${p.invitationExpiresAt.toISOString()}`,
    ...(origin ? [`Accept at:         ${origin}/accept-invitation#token=${encodeURIComponent(p.invitationToken)}`] : []),
    '',
    'The token is shown once and works once. To accept it over the API:',
    `  mutation { acceptInvitation(input: { token: "${p.invitationToken}", password: "<12+ characters>" }) { id } }`,
    `then sign in with login(input: { tenantSlug: "${p.slug}", email, password }) and enrol TOTP.`,
  ];
  process.stdout.write(`${lines.join('\n')}\n`);
} catch (e) {
  await boot.close();
  fail(e instanceof AppError ? e.message : `tenant creation failed: ${(e as Error).name}`);
}
await boot.close();
