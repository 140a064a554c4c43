import { createApp } from './app.js';
import { ConfigError, loadConfig } from './config.js';
import { createLogger } from './platform/logger.js';

async function main() {
  let config;
  try {
    config = loadConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`carebase: ${e.message}\n`);
      process.exit(1);
    }
    throw e;
  }
  const log = createLogger(config.logLevel);
  let app: Awaited<ReturnType<typeof createApp>>;
  try {
    app = await createApp(config, { logger: log });
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`carebase: ${e.message}\n`);
      process.exit(1);
    }
    log.fatal({ err: { name: (e as Error).name, message: (e as Error).message } }, 'boot failed');
    process.exit(1);
  }
  const url = await app.listen();
  log.info({ url: `${url.replace('127.0.0.1', 'localhost')}/graphql` }, 'Carebase is listening');

  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal }, 'shutting down');
    try {
      await app.close();
      log.info('stopped');
      log.flush(() => process.exit(0));
    } catch (e) {
      log.error({ err: { name: (e as Error).name } }, 'shutdown failed');
      log.flush(() => process.exit(1));
    }
  };
  process.on('SIGTERM', () => void stop('SIGTERM'));
  process.on('SIGINT', () => void stop('SIGINT'));
}

void main();
