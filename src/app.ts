import { randomUUID } from 'node:crypto';
import { STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';
import { ApolloServer, type ApolloServerPlugin } from '@apollo/server';
import { ApolloServerPluginCacheControlDisabled, ApolloServerPluginLandingPageDisabled } from '@apollo/server/plugin/disabled';
import fastifyApollo, { fastifyApolloDrainPlugin } from '@as-integrations/fastify';
import { ApolloArmor } from '@escape.tech/graphql-armor';
import Fastify, { LogController, type FastifyServerOptions, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import type { GraphQLSchema } from 'graphql';
import { startApiBackground, type ApiBackground, type BackgroundOptions } from './background.js';
import { bootDependencies, type Booted } from './boot.js';
import type { Config } from './config.js';
import { modules as allModules } from './modules/index.js';
import { auditApolloPlugin, closeAuditWriter, createAuditWriter, ensureAuditPartitions } from './platform/audit/index.js';
import { RequestTransaction, type Database } from './platform/db/index.js';
import { Entitlements, entitlementKey, registerRoute, ScopeFactory, type RouteAdapterOptions } from './platform/scope/index.js';
import { settledWithin } from './platform/deadline.js';
import { dbAppError } from './platform/db/errors.js';
import { AppError, ErrorCode } from './platform/errors.js';
import { errorStatusPlugin, noStorePlugin } from './platform/http/error-status.js';
import { describeForLog, formatError, isUnexpected } from './platform/http/graphql-errors.js';
import { apolloLogger } from './platform/http/apollo-logger.js';
import { IdempotencyKeys, idempotencyPlugin } from './platform/http/idempotency.js';
import { exceedsNesting, inputRulesPlugin, MAX_QUERY_NESTING, UNSAFE_INPUT_MESSAGE, unsafeQueryParam } from './platform/http/input-rules.js';
import { registerLoadShedding } from './platform/http/load-shedding.js';
import { createMetrics, type Metrics } from './platform/http/metrics.js';
import { createLogger, type Logger } from './platform/logger.js';
import { enforceRateLimits, requestChecks } from './platform/ratelimit/index.js';
import { buildSchema, resolveModules, type ModuleManifest, type Principal, type RequestContext } from './schema/index.js';

export interface AppOptions {
  /** module manifests to choose from (default: src/modules/index.ts) */
  modules?: readonly ModuleManifest[];
  logger?: Logger;
  /** an already open database (tests); otherwise openDatabase(config) */
  database?: Database;
  /** jobs / relay / realtime knobs (tests, benchmarks) */
  background?: BackgroundOptions;
}

export interface App {
  server: FastifyInstance;
  config: Config;
  log: Logger;
  database: Database;
  schema: GraphQLSchema;
  modules: readonly ModuleManifest[];
  metrics: Metrics;
  /** job queues (+ workers when JOB_WORKERS=inline), the outbox relay and socket.io */
  background: ApiBackground;
  /** request scopes of every door (GraphQL, module routes, socket events, jobs) and the tenants' entitlements */
  scopes: ScopeFactory;
  /** starts listening; resolves to the base URL */
  listen(): Promise<string>;
  /** stops accepting, drains in-flight requests (bounded), closes modules and the pool */
  close(): Promise<void>;
}

const REQUEST_ID = /^[A-Za-z0-9._:-]{1,128}$/;

declare module 'fastify' {
  interface FastifyRequest {
    carebaseTx?: RequestTransaction;
    /** the request watchdog's timer (cleared when the answer is sent) */
    carebaseWatchdog?: NodeJS.Timeout;
  }
}

export async function createApp(config: Config, opts: AppOptions = {}): Promise<App> {
  const log = opts.logger ?? createLogger(config.logLevel);
  const modules = resolveModules(config.features, opts.modules ?? allModules);
  const enabledModules = modules.map((m) => m.name);
  const enabledPhase = modules.reduce((max, m) => Math.max(max, m.phase), 0);
  const schema = buildSchema(modules);
  const metrics = createMetrics(config.databasePoolMax);
  // the same dependencies as the worker and the CLIs (database, field crypto, permission table) plus the rate limiter
  const boot = await bootDependencies(config, log, { role: 'api', modules, database: opts.database, registry: metrics.registry });
  try {
    return await startServer({ config, log, modules, schema, metrics, boot, enabledModules, enabledPhase, background: opts.background });
  } catch (e) {
    await boot.close();
    throw e;
  }
}

interface Parts {
  config: Config;
  log: Logger;
  modules: readonly ModuleManifest[];
  schema: GraphQLSchema;
  metrics: Metrics;
  boot: Booted;
  enabledModules: string[];
  enabledPhase: number;
  background?: BackgroundOptions;
}

async function startServer(parts: Parts): Promise<App> {
  const { config, log, modules, schema, metrics, boot, enabledModules, enabledPhase } = parts;
  const { deps } = boot;
  const { database } = deps;
  const rateLimit = deps.rateLimit!;
  // group commit of audit events (reads, denials), closed after the modules and before the database
  // (its own two connections: requests hold theirs while they wait for their batch to commit)
  const auditWriter = createAuditWriter({ sql: database.sql, writerSql: database.appPool(2), log, registry: metrics.registry });
  boot.onClose('audit writer', () => closeAuditWriter(database.sql));
  // each module's instance (deps.instances); closed in reverse order by boot.close()
  await boot.initModules();

  RequestTransaction.deadlines = { statementTimeoutMs: config.deadlines.requestTimeoutMs, lockTimeoutMs: config.deadlines.lockTimeoutMs };
  const server: FastifyInstance = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    logController: new LogController({ disableRequestLogging: true }),
    // no per-request child logger (pino children with redaction cost ~5% of a small request); lines carry reqId explicitly
    childLoggerFactory: (logger) => logger,
    bodyLimit: config.bodyLimitBytes,
    trustProxy: config.trustProxy as FastifyServerOptions['trustProxy'],
    genReqId: (req) => {
      const h = req.headers['x-request-id'];
      return typeof h === 'string' && REQUEST_ID.test(h) ? h : randomUUID();
    },
    return503OnClosing: true,
    // malformed HTTP (bad request line, headers or URL too large) and unusable URLs get a GraphQL-shaped coded error too
    clientErrorHandler: clientError,
    frameworkErrors: (err, req, reply) => {
      const long = err.code === 'FST_ERR_MAX_PARAM_LENGTH';
      void (reply as FastifyReply).code(long ? 414 : 400).send(errorBody(long ? 'URL too long' : 'Malformed URL', ErrorCode.BAD_REQUEST, req.id));
    },
    forceCloseConnections: 'idle',
  });

  // @as-integrations/fastify answers 500 to a request without Host; refuse it first.
  await registerLoadShedding(server, { ...config.loadShedding, registry: metrics.registry });
  // expired Idempotency-Key outcomes are purged by the platform.purgeIdempotencyKeys schedule (platform/jobs/schedules.ts)
  server.addHook('onRequest', async (req, reply) => {
    reply.header('x-request-id', req.id);
    if (!req.headers.host) {
      return reply.code(400).send(errorBody('Missing Host header', ErrorCode.BAD_REQUEST, req.id));
    }
    // per-IP budget of the REST auth routes (/auth/refresh, /auth/logout, ...)
    if (req.url.startsWith('/auth/')) {
      try {
        await enforceRateLimits(rateLimit, [[rateLimit.policies.authIp, req.ip]], reply);
      } catch (e) {
        if (!(e instanceof AppError)) throw e;
        const { http: _http, ...extensions } = e.extensions as Record<string, unknown>;
        return reply.code(429).send({ errors: [{ message: e.message, extensions: { ...extensions, requestId: req.id } }] });
      }
    }
  });
  // the request watchdog: every request gets an answer. Statements are bounded by statement_timeout and the audit
  // commit by its own deadline, but an await that never settles (a query lost on a connection that died under it)
  // would otherwise hold the client forever: REQUEST_TIMEOUT_MS + 5 s after its handler started, a request without an
  // answer gets 503 TIMEOUT, its transaction is rolled back, and an error line says which route it was.
  const watchdogMs = config.deadlines.requestTimeoutMs + 5_000;
  server.addHook('preHandler', async (req, reply) => {
    req.carebaseWatchdog = setTimeout(() => {
      // a streamed answer (the audit CSV export) has its status and headers out and is still sending: it has its answer,
      // bounded by its own statement timeout. A 503 now would be JSON into a started text stream (an uncaught
      // FST_ERR_REP_INVALID_PAYLOAD_TYPE) and the rollback would cut the stream's transaction under it.
      if (reply.sent || reply.raw.headersSent) return;
      log.error({ reqId: req.id, route: req.routeOptions.url ?? 'unmatched', ms: watchdogMs, transaction: !!req.carebaseTx }, 'request watchdog: no answer in time');
      void req.carebaseTx?.rollback().catch(() => undefined);
      void reply.code(503).header('retry-after', '1').send(errorBody('The request did not complete in time', ErrorCode.TIMEOUT, req.id));
    }, watchdogMs);
    req.carebaseWatchdog.unref();
  });
  // before any handler: the input rules' string rule for every route's query string (REST routes such as the audit
  // export included), and /graphql's query nesting, refused before GraphQL parsing recurses into it
  server.addHook('preHandler', async (req, reply) => {
    const param = unsafeQueryParam(req.query);
    if (param) return reply.code(400).send({ errors: [{ message: UNSAFE_INPUT_MESSAGE, extensions: { code: ErrorCode.BAD_USER_INPUT, field: param, requestId: req.id } }] });
    if (req.routeOptions.url !== '/graphql') return;
    const query = ((req.method === 'GET' ? req.query : req.body) as { query?: unknown } | undefined)?.query;
    if (typeof query === 'string' && exceedsNesting(query, MAX_QUERY_NESTING)) {
      return reply.code(400).send(errorBody(`The query nests deeper than ${MAX_QUERY_NESTING} levels`, ErrorCode.QUERY_TOO_COMPLEX, req.id));
    }
  });
  server.addHook('onResponse', async (req, reply) => {
    clearTimeout(req.carebaseWatchdog);
    await req.carebaseTx?.rollback().catch(() => undefined); // safety net: never leak a connection
    const route = req.routeOptions.url ?? 'unmatched';
    metrics.http.observe({ method: req.method, route, status: String(reply.statusCode) }, reply.elapsedTime / 1000);
    log.info({ reqId: req.id, method: req.method, route, status: reply.statusCode, ms: Math.round(reply.elapsedTime) }, 'request');
  });
  server.addHook('onRequestAbort', async (req) => {
    clearTimeout(req.carebaseWatchdog);
    await req.carebaseTx?.rollback().catch(() => undefined);
  });

  server.setErrorHandler((err: Error & { statusCode?: number; code?: string }, req, reply) => {
    const status = err.statusCode && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) {
      log.error({ reqId: req.id, ...describeForLog(err) }, 'unexpected HTTP error');
      return reply.code(status === 503 ? 503 : 500).send(errorBody('Internal server error', ErrorCode.INTERNAL_SERVER_ERROR, req.id));
    }
    const [code, message] = fastifyErrorCode(err);
    return reply.code(status).send(errorBody(message, code, req.id));
  });
  server.setNotFoundHandler((req, reply) => reply.code(404).send(errorBody('Not found', ErrorCode.NOT_FOUND, req.id)));

  // ---- operations endpoints ----
  server.get('/healthz', async () => ({ status: 'ok' }));
  // readiness asks the database on a connection of its own: behind a busy request pool the probe would wait for a free
  // connection and report a working, merely loaded server as not ready (and so take it out of the load balancer)
  const probe = database.appPool(1);
  boot.onClose('readiness probe', () => probe.end({ timeout: 1 }));
  server.get('/readyz', async (_req, reply) => {
    try {
      // bounded: a probe answers whatever the database does (a connection attempt may wait up to connect_timeout)
      const query = probe<{ n: number }[]>`select count(*)::int as n from drizzle.__drizzle_migrations`.execute();
      if (!(await settledWithin(query, 1_000))) return reply.code(503).send({ status: 'not ready', reason: 'database did not answer' });
      const [row] = await query;
      const applied = row?.n ?? 0;
      if (applied < database.migrationsExpected) {
        return reply.code(503).send({ status: 'not ready', reason: 'migrations pending', applied, expected: database.migrationsExpected });
      }
      return { status: 'ready', migrations: applied };
    } catch {
      return reply.code(503).send({ status: 'not ready', reason: 'database unreachable' });
    }
  });
  server.get('/metrics', async (_req, reply) => {
    reply.header('content-type', metrics.registry.contentType);
    return metrics.registry.metrics();
  });

  // ---- GraphQL ----
  // audit partitions for this month and the next ones exist before the first request
  await ensureAuditPartitions(database.sql);
  // one request scope for every door: GraphQL (context below), module routes, socket events and jobs
  const idempotency = new IdempotencyKeys(deps.crypto, config.idempotencyTtlHours);
  const scopes = new ScopeFactory({
    pool: database.sql,
    writer: auditWriter,
    log,
    entitlements: new Entitlements(modules),
    timeoutMs: config.deadlines.requestTimeoutMs,
    instances: deps.instances,
  });

  const armor = new ApolloArmor({
    maxDepth: { n: 12, ignoreIntrospection: true },
    // __typename counts like any other field (armor allows it by default)
    maxAliases: { n: 15, allowList: [] },
    maxDirectives: { n: 10 },
    costLimit: { maxCost: 5000, ignoreIntrospection: true },
    // armor's max-tokens turns syntax errors into HTTP 500 on Apollo 5: Apollo's parseOptions.maxTokens does it instead
    maxTokens: { enabled: false },
    blockFieldSuggestion: { enabled: true },
  });
  const protection = armor.protect();
  const apollo = new ApolloServer<RequestContext>({
    schema,
    plugins: [
      // armor and the fastify integration ship CJS typings of Apollo's types: same runtime objects
      ...(protection.plugins as unknown as ApolloServerPlugin<RequestContext>[]),
      fastifyApolloDrainPlugin(server) as unknown as ApolloServerPlugin<RequestContext>,
      ...(config.isProduction ? [ApolloServerPluginLandingPageDisabled() as ApolloServerPlugin<RequestContext>] : []),
      // no cache hints are given: the built-in plugin would only instrument every field; no-store is set below
      ApolloServerPluginCacheControlDisabled() as ApolloServerPlugin<RequestContext>,
      noStorePlugin<RequestContext>(),
      // writes each request's PHI audit trail before transactionPlugin commits and before the response is sent
      auditApolloPlugin<RequestContext>(auditWriter, log),
      // query nesting is checked in preHandler; here: subscriptions over HTTP, variable size, no NUL / unpaired surrogate in any input string
      inputRulesPlugin<RequestContext>(),
      // replays stored outcomes of Idempotency-Key mutations; must run before transactionPlugin commits
      idempotencyPlugin<RequestContext>(idempotency),
      transactionPlugin(),
      // RATE_LIMITED from a resolver (sign-in lockout, a module's limiter) answers 429 + Retry-After like the request budget
      errorStatusPlugin<RequestContext>(),
      observabilityPlugin(metrics),
    ],
    validationRules: protection.validationRules,
    allowBatchedHttpRequests: false,
    includeStacktraceInErrorResponses: false,
    hideSchemaDetailsFromClientErrors: true,
    introspection: !config.isProduction,
    csrfPrevention: true,
    // main.ts owns signal handling and shuts Apollo down in order
    stopOnTerminationSignals: false,
    parseOptions: { maxTokens: 5000 },
    // Apollo's own lines (e.g. an error thrown from a plugin hook) into the JSON log, without the error's text
    logger: apolloLogger(log),
    persistedQueries: false,
    formatError,
  });
  await apollo.start();

  let background: ApiBackground | undefined;
  const authenticators = modules.filter((m) => m.authenticate);
  async function authenticate(req: FastifyRequest): Promise<Principal | null> {
    for (const m of authenticators) {
      const p = await m.authenticate!(req, deps);
      if (p) return p;
    }
    return null;
  }
  // REST routes of modules (e.g. GET /exports/audit.csv) authenticate with the same credentials as /graphql
  deps.authenticate = authenticate;

  await server.register(fastifyApollo(apollo), {
    path: '/graphql',
    context: async (req, reply): Promise<RequestContext> => {
      let principal: Principal | null;
      try {
        principal = await authenticate(req);
        // per-principal budget (anonymous: per IP; user; API key tier per minute and per month)
        await enforceRateLimits(rateLimit, requestChecks(rateLimit, principal, req.ip), reply);
      } catch (e) {
        if (e instanceof AppError) {
          const status = e.code === ErrorCode.UNAUTHENTICATED ? 401 : e.code === ErrorCode.RATE_LIMITED ? 429 : 400;
          throw new AppError(e.code, e.message, { ...e.extensions, http: { status } });
        }
        const typed = dbAppError(e);
        if (typed) throw new AppError(typed.code, typed.message, { ...typed.extensions, requestId: req.id, http: { status: 503 } });
        log.error({ reqId: req.id, ...describeForLog(e) }, 'authentication failed unexpectedly');
        throw new AppError(ErrorCode.INTERNAL_SERVER_ERROR, 'Internal server error', { requestId: req.id, http: { status: 500 } });
      }
      const scope = scopes.create({ door: 'graphql', principal, requestId: req.id, ip: req.ip, userAgent: req.headers['user-agent'] });
      req.carebaseTx = scope.tx;
      void reply;
      // the context is the request's scope (the audit plugin starts its trail; transactionPlugin ends it)
      return Object.assign(scope, {
        ip: req.ip,
        config,
        log: req.log as Logger,
        enabledModules,
        enabledPhase,
        responseHeaders: new Map(),
        jobs: background?.jobs,
        rateLimit,
      });
    },
  });

  // module routes: definitions run on the request-scope adapter (authentication and rate limits as for /graphql)
  const routeAdapter: RouteAdapterOptions = {
    scopes,
    idempotency,
    authenticate: async (req, reply) => {
      const principal = await authenticate(req);
      if (principal) await enforceRateLimits(rateLimit, requestChecks(rateLimit, principal, req.ip), reply);
      return principal;
    },
  };
  for (const m of modules) {
    const route = (r: Parameters<typeof registerRoute>[3]) => registerRoute(server, routeAdapter, entitlementKey(m), r);
    if (typeof m.routes === 'function') await m.routes(server, { ...deps, route });
    else for (const r of m.routes ?? []) route(r);
  }

  // ---- jobs, outbox relay, socket.io on the same HTTP server ----
  background = await startApiBackground({ config, log, database, modules, registry: metrics.registry, httpServer: server.server, deps, scopes, options: parts.background });
  const bg = background;

  log.info({ modules: enabledModules, phase: enabledPhase, embeddedDatabase: database.embedded }, 'modules enabled');

  let closing: Promise<void> | undefined;
  return {
    server,
    config,
    log,
    database,
    schema,
    modules,
    metrics,
    background: bg,
    scopes,
    async listen() {
      await server.listen({ port: config.port, host: config.host });
      const addr = server.server.address();
      const port = typeof addr === 'object' && addr ? addr.port : config.port;
      return `http://127.0.0.1:${port}`;
    },
    close() {
      closing ??= (async () => {
        // stop publishing and disconnect sockets first: upgraded connections would hold server.close()
        // every stage is bounded by SHUTDOWN_TIMEOUT_MS: a dependency that stopped answering (e.g. a half-open
        // Redis connection) must not hold the process; what a stage leaves behind is redelivered (outbox, jobs)
        const bounded = async (stage: string, work: Promise<unknown>) => {
          const settled = await settledWithin(
            work.catch((e) => log.error(describeForLog(e), `${stage} close failed`)),
            config.shutdownTimeoutMs,
          );
          if (!settled) log.warn({ stage }, 'shutdown timeout: moving on');
        };
        await bounded('realtime', bg.stopIntake());
        const jobsClosed = bounded('jobs', bg.jobs.close());
        // keep-alive connections that finish their last request while we drain are closed as they go idle
        const idleSweep = setInterval(() => server.server.closeIdleConnections(), 50);
        const drained = await settledWithin(server.close(), config.shutdownTimeoutMs);
        clearInterval(idleSweep);
        if (!drained) {
          log.warn('shutdown timeout: closing remaining connections');
          server.server.closeAllConnections();
        }
        await apollo.stop().catch(() => undefined);
        await jobsClosed;
        // module instances (reverse order), the audit writer, then the boot dependencies (rate limiter, crypto,
        // the database when the app opened it), each stage bounded
        await boot.close();
      })();
      return closing;
    },
  };
}

function errorBody(message: string, code: string, requestId: string) {
  return { errors: [{ message, extensions: { code, requestId } }] };
}

/** Node's HTTP parser errors (before Fastify sees a request): a coded JSON answer, then close the socket. */
function clientError(err: Error & { code?: string }, socket: Duplex) {
  if (err.code === 'ECONNRESET' || socket.destroyed) return;
  const [status, code, message] =
    err.code === 'HPE_HEADER_OVERFLOW'
      ? [431, ErrorCode.PAYLOAD_TOO_LARGE, 'Request line or headers are too large']
      : err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, ErrorCode.TIMEOUT, 'Request timeout']
        : [400, ErrorCode.BAD_REQUEST, 'Malformed HTTP request'];
  const body = JSON.stringify({ errors: [{ message, extensions: { code } }] });
  if (socket.writable) {
    socket.write(`HTTP/1.1 ${status} ${STATUS_CODES[status]}\r\nContent-Length: ${Buffer.byteLength(body)}\r\nContent-Type: application/json\r\nConnection: close\r\n\r\n${body}`);
  }
  socket.destroy();
}

function fastifyErrorCode(err: Error & { code?: string; statusCode?: number }): [string, string] {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return [ErrorCode.PAYLOAD_TOO_LARGE, 'Request body is too large'];
    case 'FST_ERR_CTP_INVALID_MEDIA_TYPE':
      return [ErrorCode.BAD_REQUEST, 'Unsupported content type; send application/json'];
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return [ErrorCode.BAD_REQUEST, 'Empty JSON body'];
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
      return [ErrorCode.BAD_REQUEST, 'Malformed JSON body'];
    default:
      if (err instanceof SyntaxError) return [ErrorCode.BAD_REQUEST, 'Malformed JSON body'];
      if (err.statusCode === 429) return [ErrorCode.RATE_LIMITED, 'Too many requests'];
      if (err.statusCode === 401) return [ErrorCode.UNAUTHENTICATED, 'Authentication required'];
      if (err.statusCode === 403) return [ErrorCode.FORBIDDEN, 'Not allowed'];
      if (err.statusCode === 404) return [ErrorCode.NOT_FOUND, 'Not found'];
      return [ErrorCode.BAD_REQUEST, 'Bad request'];
  }
}

/**
 * Ends each request's transaction before the response is sent: commit, or roll back a failed mutation. A query's
 * statements are transactions of their own (perStatement); it ends by waiting for their last COMMIT.
 */
function transactionPlugin(): ApolloServerPlugin<RequestContext> {
  return {
    async requestDidStart() {
      return {
        // a query reads: each of its statements is a transaction of its own, sent in one write (RequestTransaction.perStatement)
        async didResolveOperation({ contextValue, operation }) {
          if (operation?.operation === 'query') contextValue.tx.perStatement();
        },
        async willSendResponse({ contextValue, response, operation }) {
          const body = response.body.kind === 'single' ? response.body.singleResult : undefined;
          for (const [k, v] of contextValue.responseHeaders) response.http.headers.set(k, Array.isArray(v) ? v.join(', ') : v);
          if (body?.errors) {
            for (const e of body.errors) {
              if (e.extensions?.code === ErrorCode.INTERNAL_SERVER_ERROR) {
                (e.extensions as Record<string, unknown>).requestId = contextValue.requestId;
              }
            }
          }
          // a database outage in any resolver: the response says so (503, retry), like the failed commit below
          if (body?.errors?.some((e) => e.extensions?.code === ErrorCode.DATABASE_UNAVAILABLE)) {
            response.http.status = 503;
            response.http.headers.set('retry-after', '1');
          }
          const tx = contextValue.tx;
          if (!tx.isOpen) return;
          if (operation?.operation === 'mutation' && body?.errors?.length) {
            await tx.rollback();
            return;
          }
          try {
            await tx.commit();
          } catch (e) {
            contextValue.log.error({ reqId: contextValue.requestId, ...describeForLog(e) }, 'commit failed');
            // e.g. AUDIT_UNAVAILABLE from the audit trail's pre-commit work; anything else: the database did not confirm
            const [code, message] =
              e instanceof AppError ? [e.code, e.message] : [ErrorCode.DATABASE_UNAVAILABLE, 'The database did not confirm the write'];
            if (body) {
              body.data = null;
              body.errors = [{ message, extensions: { code, requestId: contextValue.requestId } }];
            }
            response.http.status = 503;
          }
        },
      };
    },
  };
}

/** Logs each unexpected error once (without its message text) and records operation metrics. */
function observabilityPlugin(metrics: Metrics): ApolloServerPlugin<RequestContext> {
  return {
    async requestDidStart() {
      const started = process.hrtime.bigint();
      return {
        async didEncounterErrors({ errors, contextValue }) {
          for (const e of errors) {
            if (isUnexpected(e)) contextValue.log.error({ reqId: contextValue.requestId, ...describeForLog(e) }, 'unexpected GraphQL error');
          }
        },
        async willSendResponse({ operation, operationName, response }) {
          const body = response.body.kind === 'single' ? response.body.singleResult : undefined;
          metrics.graphql.observe(
            { operation: metrics.operationLabel(operationName), type: operation?.operation ?? 'unknown', outcome: body?.errors?.length ? 'error' : 'ok' },
            Number(process.hrtime.bigint() - started) / 1e9,
          );
        },
      };
    },
  };
}
