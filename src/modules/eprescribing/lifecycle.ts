import { catalogSafety } from './safety.js';
import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import type { FieldCrypto } from '../../platform/crypto/index.js';
import type { Database } from '../../platform/db/index.js';
import type { ModuleDeps } from '../../schema/index.js';
import { HttpPharmacyNetwork, type PharmacyNetwork } from './network/adapter.js';
import { epcsSignatureHeader, signControlled } from './epcs.js';
import { PharmacySimulator } from './pharmacy-simulator/server.js';
import type { Prescription } from './prescription-tables.js';
import type { ControlledSigner, PrescriptionSafety } from './prescriptions.js';
import type { ScriptDigitalSignature, ScriptMessage } from './script/index.js';
import type { Db } from '../../platform/db/index.js';

/**
 * What the prescription lifecycle needs at request and job time (part of
 * the e-prescribing module's instance): the pharmacy network adapter, the
 * simulator behind it in development and tests, the database (EPCS refusals
 * are logged in a transaction of their own), field encryption (SCRIPT XML,
 * signing keys) and a clock.
 *
 * The adapter is chosen here, in one place: PHARMACY_NETWORK_URL set -> SCRIPT
 * over HTTP to that network with PHARMACY_NETWORK_SECRET; unset -> the
 * in-repo pharmacy simulator on 127.0.0.1 with a secret of this process,
 * posting back to this app's inbound route once it listens (refused when
 * NODE_ENV=production).
 */
export interface LifecycleRuntime {
  network: PharmacyNetwork;
  simulator?: PharmacySimulator;
  database: Database;
  crypto: FieldCrypto;
  /** epoch ms */
  now(): number;
  /** the module's safety checks (safety.ts), run by the `check` step */
  safety?: PrescriptionSafety;
  /** EPCS signing of a controlled substance (epcs.ts) */
  signControlled?: ControlledSigner;
  /** EPCS: the Header/DigitalSignature and DEA number a signed controlled prescription is transmitted with */
  epcsSignatureHeader?: (db: Db, rx: Prescription) => Promise<{ header: ScriptDigitalSignature; deaNumber: string }>;
  /** parsed inbound messages, by request (the authenticate hook parses, the route handler uses) */
  inbound: WeakMap<object, ScriptMessage>;
}

export const INBOUND_PATH = '/eprescribing/network/inbound';

export interface LifecycleOptions {
  now?: () => number;
  /** a network to use instead of the configured one (tests) */
  network?: PharmacyNetwork;
  /** the safety checks the `check` step runs */
  safety?: PrescriptionSafety;
}

export async function createLifecycleRuntime(deps: ModuleDeps, options: LifecycleOptions = {}): Promise<LifecycleRuntime> {
  const base = { database: deps.database, crypto: deps.crypto, now: options.now ?? Date.now, inbound: new WeakMap<object, ScriptMessage>(), safety: options.safety ?? catalogSafety, signControlled, epcsSignatureHeader };
  if (options.network) return { ...base, network: options.network };
  const cfg = deps.config.pharmacyNetwork;
  if (cfg.url) {
    return { ...base, network: new HttpPharmacyNetwork({ url: cfg.url, secrets: cfg.secrets, kind: 'http', timeoutMs: cfg.timeoutMs }) };
  }
  if (deps.config.isProduction) throw new Error('eprescribing: PHARMACY_NETWORK_URL and PHARMACY_NETWORK_SECRET are required when NODE_ENV=production (the pharmacy simulator is refused)');
  const secret = randomBytes(32).toString('base64url');
  const simulator = await PharmacySimulator.start({ secret });
  return { ...base, simulator, network: new HttpPharmacyNetwork({ url: simulator.url, secrets: [secret], kind: 'simulator', timeoutMs: cfg.timeoutMs }) };
}

/** Development: the embedded simulator posts to this app's inbound route once the app listens. */
export function pointSimulatorAtApp(app: FastifyInstance, runtime: LifecycleRuntime): void {
  const sim = runtime.simulator;
  if (!sim) return;
  app.addHook('onListen', async function () {
    const addr = this.server.address() as AddressInfo | null;
    if (addr && typeof addr === 'object') sim.callbackUrl ??= `http://127.0.0.1:${addr.port}${INBOUND_PATH}`;
  });
}

export async function closeLifecycleRuntime(runtime: LifecycleRuntime): Promise<void> {
  await runtime.network.close();
  await runtime.simulator?.close();
}
