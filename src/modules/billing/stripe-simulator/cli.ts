/**
 * The Stripe simulator as a process of its own (`npm run stripe:simulator`), for a deployment where the API and
 * the worker are separate processes without a Stripe account (development, staging): both point STRIPE_API_URL
 * at it and share STRIPE_WEBHOOK_SECRET, which it signs webhooks with.
 *
 *   STRIPE_WEBHOOK_SECRET=whsec_... npm run stripe:simulator -- --port 12111 --webhook-url http://127.0.0.1:4000/webhooks/stripe
 *
 * Options: --port (default 12111), --host (default 127.0.0.1), --webhook-url (repeatable), --state <file>
 * (default ./.data/stripe-simulator-standalone.json). Refused when NODE_ENV=production.
 */
import path from 'node:path';
import { parseArgs } from 'node:util';
import { SIMULATOR_KEY, WEBHOOK_EVENTS } from '../payments.js';
import { StripeSimulator } from './server.js';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: '12111' },
    host: { type: 'string', default: '127.0.0.1' },
    'webhook-url': { type: 'string', multiple: true, default: [] },
    state: { type: 'string', default: path.join(process.env.DATA_DIR ?? './.data', 'stripe-simulator-standalone.json') },
  },
});

if (process.env.NODE_ENV === 'production') {
  console.error('stripe simulator: refused when NODE_ENV=production (set STRIPE_SECRET_KEY for Stripe)');
  process.exit(1);
}
const secret = process.env.STRIPE_WEBHOOK_SECRET;
if (!secret || !/^whsec_[A-Za-z0-9]{16,}$/.test(secret)) {
  console.error('stripe simulator: STRIPE_WEBHOOK_SECRET (whsec_..., at least 16 characters after the prefix) is required: the app verifies webhooks with it');
  process.exit(1);
}
const port = Number(values.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) {
  console.error('stripe simulator: --port must be a port number');
  process.exit(1);
}

const sim = new StripeSimulator({ secretKey: SIMULATOR_KEY, endpointSecret: secret, stateFile: path.resolve(values.state!), log: (line, msg) => console.error(msg, line) });
const url = await sim.listen(port, values.host);
for (const hook of values['webhook-url'] ?? []) sim.addEndpoint(hook, WEBHOOK_EVENTS);
console.log(JSON.stringify({ msg: 'stripe simulator listening', url, secretKey: SIMULATOR_KEY, webhooks: values['webhook-url'] }));

const stop = async () => {
  await sim.close();
  process.exit(0);
};
process.on('SIGINT', () => void stop());
process.on('SIGTERM', () => void stop());
