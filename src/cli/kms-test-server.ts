/**
 * Local KMS for development: speaks the AWS KMS JSON protocol.
 *
 *   tsx src/cli/kms-test-server.ts [--port 4566] [--host 127.0.0.1] [--state .data/kms-test-server.json] [--region us-east-1]
 *
 * Then run the app with the printed KMS_ENDPOINT and KMS_KEY_ID, plus dummy
 * credentials (AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test). Without
 * --state, keys live in memory and data encrypted under them is unreadable
 * after a restart.
 */
import { parseArgs } from 'node:util';
import { DEFAULT_ALIAS, KmsTestServer } from '../platform/crypto/index.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '4566' },
    host: { type: 'string', default: '127.0.0.1' },
    state: { type: 'string' },
    region: { type: 'string', default: 'us-east-1' },
  },
});

const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error('--port must be a port number');
  process.exit(2);
}

const server = await KmsTestServer.start({ port, host: values.host, stateFile: values.state, region: values.region });
console.log(`KMS test server listening on ${server.endpoint}`);
console.log(`KMS_ENDPOINT=${server.endpoint}`);
console.log(`KMS_KEY_ID=${server.defaultKey.arn}`);
console.log(`(also reachable as KMS_KEY_ID=${DEFAULT_ALIAS}; AWS_REGION=${values.region}; credentials: any, e.g. AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test)`);

for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    void server.close().then(() => process.exit(0));
  });
}
