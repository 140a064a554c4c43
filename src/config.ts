import { createPrivateKey, createPublicKey, type KeyObject } from 'node:crypto';
import path from 'node:path';
import { z } from 'zod';

/**
 * The one place where environment variables become a typed, validated Config.
 * Unset means the embedded default; a malformed value stops the
 * boot with one line naming the variable (see ConfigError).
 */

const emptyToUndefined = (v: unknown) => (typeof v === 'string' && v.trim() === '' ? undefined : v);
const optionalUrl = (protocols: string[]) =>
  z.preprocess(
    emptyToUndefined,
    z
      .string()
      .refine((v) => {
        try {
          return protocols.includes(new URL(v).protocol);
        } catch {
          return false;
        }
      }, `must be a URL (${protocols.join(' or ')})`)
      .optional(),
  );
const optionalString = z.preprocess(emptyToUndefined, z.string().min(1).optional());

/** An Ed25519 private key as PKCS#8 PEM, or its DER in base64 (env-friendly: one line). */
export function parseEd25519PrivateKey(v: string): KeyObject {
  const key = v.includes('-----BEGIN') ? createPrivateKey(v) : createPrivateKey({ key: Buffer.from(v, 'base64'), format: 'der', type: 'pkcs8' });
  if (key.asymmetricKeyType !== 'ed25519') throw new Error('not an Ed25519 key');
  return key;
}
/** An Ed25519 public key as SPKI DER in base64. */
export function parseEd25519PublicKey(v: string): KeyObject {
  const key = createPublicKey({ key: Buffer.from(v, 'base64'), format: 'der', type: 'spki' });
  if (key.asymmetricKeyType !== 'ed25519') throw new Error('not an Ed25519 key');
  return key;
}
const succeeds = (fn: (v: string) => unknown) => (v: string) => {
  try {
    fn(v);
    return true;
  } catch {
    return false;
  }
};
const isEd25519PrivateKey = succeeds(parseEd25519PrivateKey);
const isEd25519PublicKey = succeeds(parseEd25519PublicKey);

const envSchema = z.object({
  PORT: z.preprocess(emptyToUndefined, z.coerce.number().int().min(0).max(65535).default(4000)),
  HOST: z.preprocess(emptyToUndefined, z.string().min(1).default('0.0.0.0')),
  NODE_ENV: z.preprocess(emptyToUndefined, z.enum(['development', 'production', 'test']).default('development')),
  LOG_LEVEL: z.preprocess(
    emptyToUndefined,
    z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
  ),
  DATA_DIR: z.preprocess(emptyToUndefined, z.string().min(1).default('./.data')),
  DATABASE_URL: optionalUrl(['postgres:', 'postgresql:']),
  DATABASE_APP_URL: optionalUrl(['postgres:', 'postgresql:']),
  DATABASE_POOL_MAX: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).max(500).default(20)),
  REDIS_URL: optionalUrl(['redis:', 'rediss:']),
  FEATURES: z.preprocess(emptyToUndefined, z.string().default('all')),
  PUBLIC_ORIGINS: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .default('')
      .transform((s) => s.split(',').map((o) => o.trim()).filter(Boolean))
      .refine((list) => list.every((o) => /^https?:\/\/[^/\s]+$/.test(o)), 'must be a comma list of origins like https://app.example.com'),
  ),
  KMS_KEY_ID: optionalString,
  KMS_ENDPOINT: optionalUrl(['http:', 'https:']),
  AWS_REGION: z.preprocess(emptyToUndefined, z.string().regex(/^[a-z]{2}(-[a-z]+)+-\d$/, 'must be an AWS region like us-east-1').optional()),
  SHUTDOWN_TIMEOUT_MS: z.preprocess(emptyToUndefined, z.coerce.number().int().min(100).max(600_000).default(10_000)),
  BODY_LIMIT_BYTES: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1024).max(50 * 1024 * 1024).default(1024 * 1024)),
  TRUST_PROXY: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^(true|false|\d{1,2}|[0-9a-fA-F.:/]+(,[0-9a-fA-F.:/]+)*)$/, 'must be true, false, a hop count, or a comma list of proxy IPs/CIDRs')
      .default('false'),
  ),
  REQUEST_TIMEOUT_MS: z.preprocess(emptyToUndefined, z.coerce.number().int().min(100).max(600_000).default(10_000)),
  LOCK_TIMEOUT_MS: z.preprocess(emptyToUndefined, z.coerce.number().int().min(10).max(600_000).default(3_000)),
  DATABASE_CONNECT_TIMEOUT_S: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).max(120).default(5)),
  LOAD_SHED_EVENT_LOOP_DELAY_MS: z.preprocess(emptyToUndefined, z.coerce.number().int().min(0).max(60_000).default(200)),
  LOAD_SHED_POOL_WAITING: z.preprocess(emptyToUndefined, z.coerce.number().int().min(0).max(100_000).default(200)),
  LOAD_SHED_MAX_IN_FLIGHT: z.preprocess(emptyToUndefined, z.coerce.number().int().min(0).max(1_000_000).default(128)),
  IDEMPOTENCY_TTL_HOURS: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).max(24 * 30).default(24)),
  JOB_WORKERS: z.preprocess(emptyToUndefined, z.enum(['inline', 'off']).default('inline')),
  JOBS_KEY_PREFIX: z.preprocess(emptyToUndefined, z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'must be 1-64 of A-Z a-z 0-9 _ -').default('carebase')),
  /** per-schedule interval overrides in ms, e.g. `audit.anomalies=30000,platform.purgeIdempotencyKeys=600000` */
  JOB_SCHEDULE_INTERVALS: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^[a-z][a-zA-Z0-9]*(\.[a-zA-Z0-9]+)+=\d{3,9}(,[a-z][a-zA-Z0-9]*(\.[a-zA-Z0-9]+)+=\d{3,9})*$/, 'must be a comma list of job.name=milliseconds (at least 100)')
      .optional(),
  ),
  SOCKET_MAX_PAYLOAD_BYTES: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1024).max(10 * 1024 * 1024).default(64 * 1024)),
  SOCKET_EVENTS_PER_SECOND: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).max(10_000).default(20)),
  RATE_LIMIT_STORE: z.preprocess(emptyToUndefined, z.enum(['redis', 'postgres', 'memory']).optional()),
  RATE_LIMIT_KEY_PREFIX: z.preprocess(emptyToUndefined, z.string().regex(/^[A-Za-z0-9:_-]{1,64}$/, 'must be 1-64 of A-Z a-z 0-9 : _ -').default('carebase')),
  RATE_LIMIT_AUTH_IP_PER_MINUTE: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).max(1_000_000).default(60)),
  RATE_LIMIT_ANON_IP_PER_MINUTE: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).max(1_000_000).default(300)),
  RATE_LIMIT_USER_PER_MINUTE: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).max(10_000_000).default(1_200)),
  AUDIT_SIGNING_KEY: z.preprocess(emptyToUndefined, z.string().refine(isEd25519PrivateKey, 'must be an Ed25519 private key (PKCS#8 PEM, or its DER in base64)').optional()),
  AUDIT_TRUSTED_KEYS: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .refine((v) => v.split(',').every((k) => isEd25519PublicKey(k.trim())), 'must be a comma list of Ed25519 public keys (SPKI DER in base64)')
      .optional(),
  ),
  AUDIT_CHECKPOINT_INTERVAL_S: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).max(86_400).default(900)),
  /** LiveKit (telehealth video): all three or none; none = the in-repo LiveKit simulator (refused in production) */
  LIVEKIT_URL: optionalUrl(['ws:', 'wss:', 'http:', 'https:']),
  LIVEKIT_API_KEY: optionalString,
  LIVEKIT_API_SECRET: z.preprocess(emptyToUndefined, z.string().min(32, 'must be at least 32 characters').optional()),
  LIVEKIT_TOKEN_TTL_MINUTES: z.preprocess(emptyToUndefined, z.coerce.number().int().min(5).max(24 * 60).default(120)),
  /** telehealth: minutes before a visit's start at which its patient is reminded, comma list (default 24 h and 1 h) */
  TELEHEALTH_REMINDER_OFFSETS_MINUTES: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^\d{1,5}(,\d{1,5}){0,5}$/, 'must be a comma list of minutes before the start, e.g. 1440,60')
      .default('1440,60')
      .transform((v) => [...new Set(v.split(',').map(Number))].sort((a, b) => b - a))
      .refine((m) => m.every((x) => x >= 5 && x <= 14 * 24 * 60), 'each offset must be 5 minutes to 14 days'),
  ),
  /** telehealth: a visit not started this many minutes after its start is marked no-show */
  TELEHEALTH_NO_SHOW_GRACE_MINUTES: z.preprocess(emptyToUndefined, z.coerce.number().int().min(5).max(24 * 60).default(15)),
  /** the pharmacy network's SCRIPT endpoint (unset: the in-repo pharmacy simulator, refused in production) */
  PHARMACY_NETWORK_URL: optionalUrl(['http:', 'https:']),
  /** shared secret(s) of the X-Script-Signature HMAC, comma list, the first signs (rotation: add the new one first) */
  PHARMACY_NETWORK_SECRET: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .refine((v) => v.split(',').every((s) => s.trim().length >= 32), 'must be a comma list of secrets of at least 32 characters')
      .optional(),
  ),
  PHARMACY_NETWORK_TIMEOUT_MS: z.preprocess(emptyToUndefined, z.coerce.number().int().min(500).max(60_000).default(8_000)),
  STRIPE_SECRET_KEY: z.preprocess(emptyToUndefined, z.string().regex(/^(sk|rk)_(test|live)_[A-Za-z0-9]{8,}$/, 'must be a Stripe secret or restricted key (sk_test_..., sk_live_..., rk_...)').optional()),
  STRIPE_WEBHOOK_SECRET: z.preprocess(emptyToUndefined, z.string().regex(/^whsec_[A-Za-z0-9]{16,}$/, 'must be a Stripe webhook signing secret (whsec_...)').optional()),
  /** a Stripe-compatible API base URL (the standalone simulator, `npm run stripe:simulator`); unset: api.stripe.com with a key, else the embedded simulator */
  STRIPE_API_URL: optionalUrl(['http:', 'https:']),
  BILLING_DUNNING_RETRY_DAYS: z.preprocess(
    emptyToUndefined,
    z
      .string()
      .regex(/^\d{1,2}(,\d{1,2}){0,9}$/, 'must be a comma list of days after the first failed payment, e.g. 1,3,5')
      .default('1,3,5')
      .transform((v) => v.split(',').map(Number))
      .refine((days) => days.every((d, i) => d >= 1 && (i === 0 || d > days[i - 1]!)), 'must be increasing days >= 1'),
  ),
  /** where modules keep binary objects (shared visit documents): local files under DATA_DIR/blobs, or an S3-compatible bucket */
  BLOB_STORE: z.preprocess(emptyToUndefined, z.enum(['local', 's3']).default('local')),
  S3_BUCKET: z.preprocess(emptyToUndefined, z.string().regex(/^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/, 'must be an S3 bucket name (3-63 of a-z 0-9 . -)').optional()),
  S3_REGION: z.preprocess(emptyToUndefined, z.string().regex(/^[a-z0-9-]{2,32}$/, 'must be a region such as us-east-1').default('us-east-1')),
  S3_ENDPOINT: optionalUrl(['http:', 'https:']),
  S3_FORCE_PATH_STYLE: z.preprocess(emptyToUndefined, z.enum(['true', 'false']).optional()),
  S3_ACCESS_KEY_ID: optionalString,
  S3_SECRET_ACCESS_KEY: optionalString,
  S3_PREFIX: z.preprocess(emptyToUndefined, z.string().regex(/^[A-Za-z0-9_-]+(\/[A-Za-z0-9_-]+)*$/, 'must be a key prefix of A-Z a-z 0-9 _ - and /').optional()),
  BILLING_UNPAID_AFTER_DAYS: z.preprocess(emptyToUndefined, z.coerce.number().int().min(1).max(90).default(10)),
});

export type Env = z.infer<typeof envSchema>;

export class ConfigError extends Error {
  constructor(
    readonly variable: string,
    readonly problem: string,
  ) {
    super(`Invalid configuration: ${variable} ${problem}`);
    this.name = 'ConfigError';
  }
}

export interface Config {
  port: number;
  host: string;
  nodeEnv: Env['NODE_ENV'];
  isProduction: boolean;
  logLevel: Env['LOG_LEVEL'];
  dataDir: string;
  databaseUrl?: string;
  databaseAppUrl?: string;
  databasePoolMax: number;
  redisUrl?: string;
  /** raw FEATURES value; resolved against the module list by resolveModules() */
  features: string;
  publicOrigins: string[];
  kms: { keyId?: string; endpoint?: string; region: string };
  shutdownTimeoutMs: number;
  bodyLimitBytes: number;
  /** Fastify trustProxy: whose X-Forwarded-For to believe for the client IP (rate limits, audit) */
  trustProxy: boolean | number | string[];
  /** per-request deadlines: statement_timeout (and GraphQL root-field deadline), lock_timeout; pool connect timeout */
  deadlines: { requestTimeoutMs: number; lockTimeoutMs: number; connectTimeoutS: number };
  /** load shedding: 503 SERVER_BUSY when the event loop lags more than this (0 = off) or this many requests wait for a connection */
  loadShedding: { maxEventLoopDelayMs: number; maxPoolWaiting: number; maxInFlight: number };
  /** how long an Idempotency-Key's stored outcome is kept */
  idempotencyTtlHours: number;
  /**
   * jobs: run workers in the API process (inline) or only in `npm run worker` (off); Redis key prefix of queues and socket
   * streams; interval overrides (ms) of scheduled jobs by job name (JOB_SCHEDULE_INTERVALS)
   */
  jobs: { workers: 'inline' | 'off'; keyPrefix: string; scheduleEveryMs: Readonly<Record<string, number>> };
  /** realtime: largest socket message (bytes) and per-socket sustained events per second */
  realtime: { maxPayloadBytes: number; eventsPerSecond: number };
  /** rate limits (platform/ratelimit): store override, key prefix, per-minute budgets */
  rateLimit: {
    store?: 'redis' | 'postgres' | 'memory';
    keyPrefix: string;
    authIpPerMinute: number;
    anonIpPerMinute: number;
    userPerMinute: number;
  };
  /**
   * signed audit checkpoints (platform/audit/checkpoint.ts): the Ed25519 signing key (unset: generated once in
   * DATA_DIR), retired public keys still trusted for older checkpoints, how often each tenant's head is signed
   */
  auditCheckpoints: { signingKey?: string; trustedKeys: string[]; intervalS: number };
  /** LiveKit for telehealth video (unset: the in-repo simulator); lifetime of join tokens */
  livekit: { url?: string; apiKey?: string; apiSecret?: string; tokenTtlMinutes: number };
  /** telehealth jobs: reminder offsets (minutes before the start, largest first) and the no-show grace (minutes) */
  telehealth: { reminderOffsetsMinutes: number[]; noShowGraceMinutes: number };
  /** e-prescribing: the pharmacy network's SCRIPT endpoint (unset: the simulator), HMAC secrets, answer timeout */
  pharmacyNetwork: { url?: string; secrets: string[]; timeoutMs: number };
  /**
   * payments (billing module): a Stripe secret key (unset: the Stripe simulator), the webhook signing secret, an
   * optional Stripe-compatible API URL (a standalone simulator); dunning: retry days after the first failure, and the
   * days after which a past-due subscription becomes unpaid
   */
  stripe: { secretKey?: string; webhookSecret?: string; apiUrl?: string };
  billing: { retryDays: number[]; unpaidAfterDays: number };
  /** the blob store (platform/blobs): local files under DATA_DIR/blobs, or S3 (bucket, region, endpoint, path style, static keys, key prefix) */
  blobs: { store: 'local' | 's3'; s3?: { bucket: string; region: string; endpoint?: string; forcePathStyle: boolean; credentials?: { accessKeyId: string; secretAccessKey: string }; prefix?: string } };
}

/**
 * Reads `./.env` (see .env.example) into process.env, once: npm start, the
 * worker and every CLI see the same settings. A variable already set in the
 * environment wins; a missing file is fine; a malformed one stops the boot.
 */
let envFileLoaded = false;
export function loadEnvFile(file = '.env'): void {
  if (envFileLoaded) return;
  envFileLoaded = true;
  try {
    process.loadEnvFile(file);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new ConfigError(file, `cannot be read: ${(e as Error).message}`);
  }
}

/** `env` defaults to process.env, after reading ./.env into it (loadEnvFile). */
export function loadConfig(env?: NodeJS.ProcessEnv): Config {
  if (!env) loadEnvFile();
  env ??= process.env;
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0]!;
    const variable = String(issue.path[0] ?? 'environment');
    throw new ConfigError(variable, issue.message.replace(/^Invalid input: /, ''));
  }
  const e = parsed.data;
  if (e.NODE_ENV === 'production') {
    if (!e.KMS_KEY_ID) throw new ConfigError('KMS_KEY_ID', 'is required when NODE_ENV=production (the local key provider is refused)');
    if (!e.DATABASE_URL) throw new ConfigError('DATABASE_URL', 'is required when NODE_ENV=production (embedded PostgreSQL is refused)');
  }
  const livekitSet = [e.LIVEKIT_URL, e.LIVEKIT_API_KEY, e.LIVEKIT_API_SECRET].filter(Boolean).length;
  if (livekitSet > 0 && livekitSet < 3) {
    const missing = !e.LIVEKIT_URL ? 'LIVEKIT_URL' : !e.LIVEKIT_API_KEY ? 'LIVEKIT_API_KEY' : 'LIVEKIT_API_SECRET';
    throw new ConfigError(missing, 'is required with the other LIVEKIT_* variables (set all three, or none for the simulator)');
  }
  if (e.STRIPE_SECRET_KEY && !e.STRIPE_WEBHOOK_SECRET) throw new ConfigError('STRIPE_WEBHOOK_SECRET', 'is required with STRIPE_SECRET_KEY (the signing secret of the /webhooks/stripe endpoint)');
  if (e.STRIPE_API_URL && e.STRIPE_SECRET_KEY?.includes('_live_')) throw new ConfigError('STRIPE_API_URL', 'cannot be used with a live Stripe key');
  if (e.BILLING_UNPAID_AFTER_DAYS <= e.BILLING_DUNNING_RETRY_DAYS[e.BILLING_DUNNING_RETRY_DAYS.length - 1]!) {
    throw new ConfigError('BILLING_UNPAID_AFTER_DAYS', 'must be after the last of BILLING_DUNNING_RETRY_DAYS');
  }
  if (e.PHARMACY_NETWORK_URL && !e.PHARMACY_NETWORK_SECRET) throw new ConfigError('PHARMACY_NETWORK_SECRET', 'is required with PHARMACY_NETWORK_URL (the X-Script-Signature shared secret)');
  if (e.BLOB_STORE === 's3' && !e.S3_BUCKET) throw new ConfigError('S3_BUCKET', 'is required with BLOB_STORE=s3');
  if (!!e.S3_ACCESS_KEY_ID !== !!e.S3_SECRET_ACCESS_KEY) throw new ConfigError('S3_SECRET_ACCESS_KEY', 'and S3_ACCESS_KEY_ID go together (or neither: the AWS default credential chain)');
  if (e.RATE_LIMIT_STORE === 'redis' && !e.REDIS_URL) throw new ConfigError('RATE_LIMIT_STORE', 'is redis but REDIS_URL is not set');
  return {
    port: e.PORT,
    host: e.HOST,
    nodeEnv: e.NODE_ENV,
    isProduction: e.NODE_ENV === 'production',
    logLevel: e.LOG_LEVEL,
    dataDir: path.resolve(e.DATA_DIR),
    databaseUrl: e.DATABASE_URL,
    databaseAppUrl: e.DATABASE_APP_URL,
    databasePoolMax: e.DATABASE_POOL_MAX,
    redisUrl: e.REDIS_URL,
    features: e.FEATURES,
    publicOrigins: e.PUBLIC_ORIGINS,
    kms: { keyId: e.KMS_KEY_ID, endpoint: e.KMS_ENDPOINT, region: e.AWS_REGION ?? 'us-east-1' },
    shutdownTimeoutMs: e.SHUTDOWN_TIMEOUT_MS,
    bodyLimitBytes: e.BODY_LIMIT_BYTES,
    trustProxy: e.TRUST_PROXY === 'true' ? true : e.TRUST_PROXY === 'false' ? false : /^\d+$/.test(e.TRUST_PROXY) ? Number(e.TRUST_PROXY) : e.TRUST_PROXY.split(','),
    deadlines: { requestTimeoutMs: e.REQUEST_TIMEOUT_MS, lockTimeoutMs: e.LOCK_TIMEOUT_MS, connectTimeoutS: e.DATABASE_CONNECT_TIMEOUT_S },
    loadShedding: { maxEventLoopDelayMs: e.LOAD_SHED_EVENT_LOOP_DELAY_MS, maxPoolWaiting: e.LOAD_SHED_POOL_WAITING, maxInFlight: e.LOAD_SHED_MAX_IN_FLIGHT },
    idempotencyTtlHours: e.IDEMPOTENCY_TTL_HOURS,
    jobs: {
      workers: e.JOB_WORKERS,
      keyPrefix: e.JOBS_KEY_PREFIX,
      scheduleEveryMs: Object.fromEntries((e.JOB_SCHEDULE_INTERVALS?.split(',') ?? []).map((kv) => [kv.split('=')[0]!, Number(kv.split('=')[1])])),
    },
    realtime: { maxPayloadBytes: e.SOCKET_MAX_PAYLOAD_BYTES, eventsPerSecond: e.SOCKET_EVENTS_PER_SECOND },
    rateLimit: {
      store: e.RATE_LIMIT_STORE,
      keyPrefix: e.RATE_LIMIT_KEY_PREFIX,
      authIpPerMinute: e.RATE_LIMIT_AUTH_IP_PER_MINUTE,
      anonIpPerMinute: e.RATE_LIMIT_ANON_IP_PER_MINUTE,
      userPerMinute: e.RATE_LIMIT_USER_PER_MINUTE,
    },
    auditCheckpoints: {
      signingKey: e.AUDIT_SIGNING_KEY,
      trustedKeys: e.AUDIT_TRUSTED_KEYS ? e.AUDIT_TRUSTED_KEYS.split(',').map((k) => k.trim()) : [],
      intervalS: e.AUDIT_CHECKPOINT_INTERVAL_S,
    },
    livekit: { url: e.LIVEKIT_URL, apiKey: e.LIVEKIT_API_KEY, apiSecret: e.LIVEKIT_API_SECRET, tokenTtlMinutes: e.LIVEKIT_TOKEN_TTL_MINUTES },
    telehealth: { reminderOffsetsMinutes: e.TELEHEALTH_REMINDER_OFFSETS_MINUTES, noShowGraceMinutes: e.TELEHEALTH_NO_SHOW_GRACE_MINUTES },
    pharmacyNetwork: {
      url: e.PHARMACY_NETWORK_URL,
      secrets: (e.PHARMACY_NETWORK_SECRET ?? '').split(',').map((x) => x.trim()).filter(Boolean),
      timeoutMs: e.PHARMACY_NETWORK_TIMEOUT_MS,
    },
    stripe: { secretKey: e.STRIPE_SECRET_KEY, webhookSecret: e.STRIPE_WEBHOOK_SECRET, apiUrl: e.STRIPE_API_URL },
    billing: { retryDays: e.BILLING_DUNNING_RETRY_DAYS, unpaidAfterDays: e.BILLING_UNPAID_AFTER_DAYS },
    blobs: {
      store: e.BLOB_STORE,
      s3:
        e.BLOB_STORE === 's3'
          ? {
              bucket: e.S3_BUCKET!,
              region: e.S3_REGION,
              endpoint: e.S3_ENDPOINT,
              forcePathStyle: e.S3_FORCE_PATH_STYLE ? e.S3_FORCE_PATH_STYLE === 'true' : !!e.S3_ENDPOINT,
              credentials: e.S3_ACCESS_KEY_ID ? { accessKeyId: e.S3_ACCESS_KEY_ID, secretAccessKey: e.S3_SECRET_ACCESS_KEY! } : undefined,
              prefix: e.S3_PREFIX,
            }
          : undefined,
    },
  };
}
