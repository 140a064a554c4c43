/**
 * Test entry for the durability test: the real app (test auth + audit +
 * the PHI fixture module) in a child process that the test SIGKILLs.
 * Prints "LISTENING <url>" once ready.
 */
import { createApp } from '../../../src/app.js';
import { loadConfig } from '../../../src/config.js';
import auditModule from '../../../src/modules/audit/index.js';
import identityModule from '../../../src/modules/identity/index.js';
import { createLogger } from '../../../src/platform/logger.js';
import { fixturePatientsModule, testAuthModule } from './fixtures.js';

const config = loadConfig();
const app = await createApp(config, { modules: [identityModule, testAuthModule, auditModule, fixturePatientsModule], logger: createLogger('error') });
const url = await app.listen();
process.stdout.write(`LISTENING ${url}\n`);
