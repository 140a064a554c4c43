import type { FastifyInstance, FastifyRequest } from 'fastify';
import type { Config } from '../config.js';
import { PermissionCatalog, type PermissionVocabulary } from '../platform/access/permissions.js';
import type { BlobStore } from '../platform/blobs/index.js';
import type { FieldCrypto } from '../platform/crypto/index.js';
import type { Database } from '../platform/db/index.js';
import type { Logger } from '../platform/logger.js';
import type { ModuleInstance, ModuleInstances, RouteDefinition } from '../platform/scope/index.js';
import type { JobHandler as PlatformJobHandler, JobRegistration } from '../platform/jobs/types.js';
import type { RealtimeSocketHandler, RoomAccessCheck, RoomType } from '../platform/realtime/types.js';
import type { AppRateLimiter } from '../platform/ratelimit/index.js';
import type { Builder } from './builder.js';
import type { Principal } from './context.js';

/** What a module gets at boot (routes, init): the same in the API, the worker and the CLIs (src/boot.ts). */
export interface ModuleDeps {
  config: Config;
  log: Logger;
  database: Database;
  /** the app's permission table: the platform's and the enabled modules' permissions and role grants */
  permissions: PermissionCatalog;
  /** field encryption shared by every module (one data-key cache, one set of KMS metrics), in every process */
  crypto: FieldCrypto;
  /** binary objects (encrypt before put): local files under DATA_DIR/blobs, or S3-compatible (platform/blobs) */
  blobs: BlobStore;
  /**
   * This app's module instances (what each enabled module's init returned), for hooks that get deps rather than
   * a scope (authenticate, routes): `deps.instances.get<IdentityRuntime>('identity')`.
   */
  instances: ModuleInstances;
  /** the app's rate limiter and built-in policies (absent outside the app, e.g. in CLIs) */
  rateLimit?: AppRateLimiter;
  /** the app's authenticators in order (same credentials as /graphql), for REST routes; absent outside the app */
  authenticate?: (request: FastifyRequest) => Promise<Principal | null>;
  /** registers a route definition of this module on the request-scope adapter (inside a `routes` function) */
  route?: (route: RouteDefinition) => void;
}

/**
 * A background job handler; payloads carry ids only, never PHI. ctx adds the
 * tenant, the triggering event and `once(fn)` for exactly-once effects
 * (platform/jobs JobContext).
 */
export type JobHandler = PlatformJobHandler;
/** A job with options: event subscriptions (`on`), attempts, backoff, concurrency, a schedule (`every` / `cron`). */
export type { JobDefinition, JobContext } from '../platform/jobs/types.js';

/**
 * A socket.io event handler registered by a module (event names are
 * namespaced, e.g. `visit:chat`); `handle(socket, payload, ctx)` returns the
 * ack; ctx carries the principal and `broadcast(room, event, data)`.
 */
export type SocketHandler = RealtimeSocketHandler;

/**
 * A module's manifest (its index.ts default export). A module that is not
 * enabled contributes no GraphQL field, route, job or socket handler.
 */
export interface ModuleManifest {
  name: string;
  /** roadmap phase (0..N); FEATURES=phase:N enables every module with phase <= N */
  phase: number;
  description: string;
  /** other modules this one imports (through their index.ts) */
  dependsOn: readonly string[];
  schema?: (builder: Builder) => void;
  /**
   * REST routes (an export, a webhook, an upload): route definitions run in a request scope (platform/scope
   * defineRoute: authenticated, permission, entitlement, audit trail durable and transaction committed before the
   * answer), or a function registering raw Fastify routes (public ones, e.g. /auth/refresh).
   */
  routes?: readonly RouteDefinition[] | ((app: FastifyInstance, deps: ModuleDeps) => void | Promise<void>);
  /**
   * Per-tenant entitlement key (default: the module name): a tenant whose entitlements lack it gets
   * FEATURE_NOT_ENTITLED from this module's fields, routes, socket events and jobs. null: a core module, always
   * entitled (identity, access, audit).
   */
  entitlement?: string | null;
  /** job name (module.jobName) -> handler or definition; the queue is named after the job */
  jobs?: Readonly<Record<string, JobRegistration>>;
  socketHandlers?: readonly SocketHandler[];
  /**
   * Socket room types this module authorises (e.g. `visit`): joining
   * `visit:<id>` runs the check in a transaction scoped to the caller's tenant.
   */
  roomAccess?: Readonly<Record<string, RoomAccessCheck | RoomType>>;
  /**
   * The permissions this module declares (its own names, e.g. `patient:read`)
   * and which platform roles hold them. The platform declares no module's
   * permissions: a disabled module's permissions do not exist.
   */
  permissions?: PermissionVocabulary;
  /**
   * What this module offers other modules, by capability key (e.g. `resource:patient`, a ResourceLookup; the audit
   * module's PATIENT_DIRECTORY). Kept per app in deps.instances, read with `scope.provided<T>(key)` /
   * `deps.instances.provided<T>(key)`: one entry per enabled module that provides the key, none when no enabled
   * module does. The owner of a key exports it and the type of its values.
   */
  provides?: Readonly<Record<string, unknown>>;
  /** PHI categories this module's fields are marked with (`phi: 'clinical'`), with what they cover */
  phiCategories?: Readonly<Record<string, string>>;
  /**
   * Turns request credentials into a Principal. Return undefined when the
   * request carries no credential this module understands; throw an
   * UNAUTHENTICATED AppError for a credential that is present but invalid
   * (never fall back to anonymous).
   */
  authenticate?: (request: FastifyRequest, deps: ModuleDeps) => Promise<Principal | undefined>;
  /**
   * Verifies a bare access token (e.g. from a socket.io handshake) and returns
   * its Principal; undefined when the token is not this module's kind; throws
   * UNAUTHENTICATED when it is invalid, expired or revoked.
   */
  authenticateToken?: (token: string, deps: ModuleDeps) => Promise<Principal | undefined>;
  /**
   * Called once per app (API, worker, CLI) at boot, after the dependencies are open; returns the module's
   * instance: what it needs at request and job time (its clients, caches, timers) plus its `close()`. No
   * module-level state: the platform keeps the instance per app and hands it back through
   * `scope.module<T>(name)` (GraphQL context, route, socket and job scopes) and `deps.instances`. At shutdown the
   * instances close in reverse module order, after the HTTP drain and before the dependencies.
   */
  init?: (deps: ModuleDeps) => Promise<ModuleInstance | void>;
}

/** The permission table of a set of enabled modules (plus the platform's own permissions). */
export function permissionCatalog(modules: readonly ModuleManifest[]): PermissionCatalog {
  return new PermissionCatalog(modules.map((m) => ({ owner: m.name, vocabulary: m.permissions })));
}
