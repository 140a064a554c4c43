import { randomUUID } from 'node:crypto';
import type { Server as HttpServer } from 'node:http';
import { createAdapter } from '@socket.io/redis-streams-adapter';
import { Redis } from 'ioredis';
import client, { type Registry } from 'prom-client';
import { Server, type DefaultEventsMap, type Socket } from 'socket.io';
import type { Database } from '../db/index.js';
import { AppError, ErrorCode } from '../errors.js';
import { describeForLog } from '../http/graphql-errors.js';
import type { Logger } from '../logger.js';
import type { ScopeFactory } from '../scope/index.js';
import type { DomainEvent, EventSink } from '../jobs/types.js';
import { automaticRooms, createRoomPolicy, fullRoom, parseRoom, relativeRoom } from './rooms.js';
import type { ClientEvent, RealtimePrincipal, RealtimeSocketHandler, RoomType, SocketHandlerContext } from './types.js';

/** Events the platform handles; modules may not register these names. */
export const RESERVED_EVENTS = ['room:join', 'room:leave', 'room:members', 'auth:refresh'] as const;

export interface RealtimeOptions {
  httpServer: HttpServer;
  log: Logger;
  registry: Registry;
  database: Database;
  /** verifies a bare access token (the enabled modules' authenticateToken hooks) */
  authenticateToken: (token: string) => Promise<RealtimePrincipal | undefined>;
  /** Redis streams adapter when set; in-memory adapter otherwise */
  redisUrl?: string;
  /** Redis key prefix of the adapter's stream and sessions */
  prefix: string;
  /** socket handlers of the enabled modules, with their module's entitlement key (null: core) */
  handlers?: readonly (RealtimeSocketHandler & { module: string; entitlement?: string | null })[];
  /** each handler runs in a request scope; its ack is sent once the scope has committed */
  scopes: ScopeFactory;
  /** room types of the enabled modules (permission + access check), by room type */
  roomAccess?: ReadonlyMap<string, RoomType>;
  /** CORS origins for browsers (PUBLIC_ORIGINS); empty = same origin only */
  origins?: readonly string[];
  /** largest message a client may send (bytes, default 64 KiB) */
  maxPayloadBytes?: number;
  /** per-socket rate limit: sustained events per second (default 20) and burst (default 40) */
  eventsPerSecond?: number;
  burst?: number;
  /** how long a disconnected client can come back with its rooms and missed events (default 2 min) */
  recoveryMs?: number;
  /** re-verify each socket's token (revocation) at least this often (default 60 s) */
  revalidateMs?: number;
  /** expiry/revocation sweep interval (default 5 s) */
  sweepMs?: number;
}

/** Per-socket state that never leaves this process (the token is not put in socket.data, which the adapter stores). */
interface Conn {
  token: string;
  principal: RealtimePrincipal;
  expiresAt: number;
  verifiedAt: number;
  tokens: number;
  refilledAt: number;
  violations: number;
  revalidating?: Promise<boolean>;
}

/** What socket.data holds (persisted by connection state recovery, shared across nodes): ids only. */
interface SocketData {
  userId: string;
  tenantId: string;
  kind: 'user' | 'apiKey';
}

type Ack = (response: unknown) => void;
const ok = (extra: Record<string, unknown> = {}) => ({ ok: true, ...extra });
const fail = (code: string, message: string) => ({ ok: false, error: { code, message } });

/** exp claim (ms) of a JWT, without verifying it (the token was verified by authenticateToken). */
export function tokenExpiry(token: string): number | undefined {
  const parts = token.split('.');
  if (parts.length !== 3) return undefined;
  try {
    const claims = JSON.parse(Buffer.from(parts[1]!, 'base64url').toString('utf8')) as { exp?: unknown };
    return typeof claims.exp === 'number' ? claims.exp * 1000 : undefined;
  } catch {
    return undefined;
  }
}

function bearer(value: unknown): string | undefined {
  if (typeof value !== 'string') return undefined;
  const m = /^Bearer\s+(\S+)$/i.exec(value.trim());
  return m?.[1];
}

export interface Realtime extends EventSink {
  io: Server;
  /** Sends an event to rooms of a tenant (relative names), on every node. */
  publish(event: DomainEvent): void;
  /** Connected sockets on this node. */
  localConnections(): number;
  close(): Promise<void>;
}

/**
 * socket.io on the API's HTTP server: JWT handshake, tenant-prefixed rooms
 * authorised like GraphQL, presence, recovery after short disconnects,
 * per-socket rate and size limits, and fan-out of outbox events. With a Redis
 * URL the streams adapter makes every node deliver every other node's events.
 */
export async function createRealtime(opts: RealtimeOptions): Promise<Realtime> {
  const { log, database } = opts;
  const rate = opts.eventsPerSecond ?? 20;
  const burst = opts.burst ?? 40;
  const revalidateMs = opts.revalidateMs ?? 60_000;
  const conns = new Map<string, Conn>();
  const canJoin = createRoomPolicy({ database, roomAccess: opts.roomAccess ?? new Map(), entitlements: opts.scopes.entitlements });

  for (const h of opts.handlers ?? []) {
    if ((RESERVED_EVENTS as readonly string[]).includes(h.event) || !/^[a-z][a-zA-Z0-9]*:[a-zA-Z0-9:.-]+$/.test(h.event)) {
      throw new Error(`socket handler "${h.event}" of module ${h.module}: use a namespaced name like module:action (not a platform event)`);
    }
  }

  for (const n of ['carebase_realtime_connections', 'carebase_realtime_messages_total', 'carebase_realtime_rejected_total']) opts.registry.removeSingleMetric(n);
  const metrics = {
    connections: new client.Gauge({
      name: 'carebase_realtime_connections',
      help: 'Connected sockets on this node',
      registers: [opts.registry],
      collect() {
        this.set(conns.size);
      },
    }),
    messages: new client.Counter({ name: 'carebase_realtime_messages_total', help: 'Socket messages by direction', labelNames: ['direction'] as const, registers: [opts.registry] }),
    rejected: new client.Counter({
      name: 'carebase_realtime_rejected_total',
      help: 'Refused handshakes, joins and messages by reason',
      labelNames: ['reason'] as const,
      registers: [opts.registry],
    }),
  };

  let redis: Redis | undefined;
  let adapter: ReturnType<typeof createAdapter> | undefined;
  if (opts.redisUrl) {
    redis = new Redis(opts.redisUrl, { maxRetriesPerRequest: null });
    redis.on('error', (e) => log.warn({ errorName: e.name, code: (e as { code?: string }).code }, 'realtime: redis connection error'));
    adapter = createAdapter(redis, {
      streamName: `${opts.prefix}:socket.io`,
      channelPrefix: `${opts.prefix}:socket.io`,
      sessionKeyPrefix: `${opts.prefix}:sio:session:`,
      maxLen: 10_000,
      onlyPlaintext: true,
    });
  }

  const io = new Server<DefaultEventsMap, DefaultEventsMap, DefaultEventsMap, SocketData>(opts.httpServer, {
    maxHttpBufferSize: opts.maxPayloadBytes ?? 64 * 1024,
    connectionStateRecovery: { maxDisconnectionDuration: opts.recoveryMs ?? 2 * 60_000, skipMiddlewares: false },
    cors: opts.origins?.length ? { origin: [...opts.origins], credentials: true } : undefined,
    serveClient: false,
    pingInterval: 20_000,
    pingTimeout: 20_000,
    ...(adapter ? { adapter } : {}),
  });

  async function verify(token: string): Promise<RealtimePrincipal> {
    let principal: RealtimePrincipal | undefined;
    try {
      principal = await opts.authenticateToken(token);
    } catch (e) {
      if (e instanceof AppError) throw e;
      log.warn(describeForLog(e), 'realtime: token verification failed unexpectedly');
      throw new AppError(ErrorCode.UNAUTHENTICATED, 'Authentication required');
    }
    if (!principal) throw new AppError(ErrorCode.UNAUTHENTICATED, 'Authentication required');
    return principal;
  }

  function expiryOf(principal: RealtimePrincipal, token: string): number {
    return principal.expiresAt ?? tokenExpiry(token) ?? Number.POSITIVE_INFINITY;
  }

  function kick(socket: Socket, reason: 'auth:expired' | 'auth:revoked', code: string) {
    metrics.rejected.inc({ reason: reason === 'auth:expired' ? 'expired' : 'revoked' });
    socket.emit(reason, { code });
    socket.disconnect(true);
  }

  /** Re-verifies the token (revocation); disconnects when it no longer verifies. */
  function revalidate(socket: Socket, conn: Conn): Promise<boolean> {
    conn.revalidating ??= (async () => {
      try {
        const p = await verify(conn.token);
        if (p.tenantId !== conn.principal.tenantId || p.id !== conn.principal.id) throw new AppError(ErrorCode.UNAUTHENTICATED, 'Authentication required');
        conn.principal = p;
        conn.expiresAt = expiryOf(p, conn.token);
        conn.verifiedAt = Date.now();
        return true;
      } catch (e) {
        // a token that expired while it was being re-verified is an expiry, not a revocation (the client refreshes)
        if (conns.get(socket.id) === conn) {
          if (Date.now() >= conn.expiresAt) kick(socket, 'auth:expired', ErrorCode.UNAUTHENTICATED);
          else kick(socket, 'auth:revoked', e instanceof AppError ? e.code : ErrorCode.UNAUTHENTICATED);
        }
        return false;
      } finally {
        conn.revalidating = undefined;
      }
    })();
    return conn.revalidating;
  }

  // ---- handshake ----
  io.use(async (socket, next) => {
    const token = (typeof socket.handshake.auth?.token === 'string' ? socket.handshake.auth.token : undefined) ?? bearer(socket.handshake.headers.authorization);
    const refuse = (code: string, message: string) => {
      metrics.rejected.inc({ reason: 'handshake' });
      const err = new Error(message) as Error & { data: unknown };
      err.data = { code };
      next(err);
    };
    if (!token || token.length > 8192) return refuse(ErrorCode.UNAUTHENTICATED, 'Authentication required');
    let principal: RealtimePrincipal;
    try {
      principal = await verify(token);
    } catch (e) {
      return refuse(e instanceof AppError ? e.code : ErrorCode.UNAUTHENTICATED, e instanceof AppError ? e.message : 'Authentication required');
    }
    const expiresAt = expiryOf(principal, token);
    if (expiresAt <= Date.now()) return refuse(ErrorCode.UNAUTHENTICATED, 'Token expired');
    // a recovered session must belong to the same principal
    if (socket.recovered && (socket.data?.userId !== principal.id || socket.data?.tenantId !== principal.tenantId)) {
      return refuse(ErrorCode.FORBIDDEN, 'Session belongs to another principal');
    }
    socket.data = { userId: principal.id, tenantId: principal.tenantId, kind: principal.kind };
    const now = Date.now();
    conns.set(socket.id, { token, principal, expiresAt, verifiedAt: now, tokens: burst, refilledAt: now, violations: 0 });
    next();
  });

  function conn(socket: Socket): Conn | undefined {
    return conns.get(socket.id);
  }

  function joinedRooms(socket: Socket, tenantId: string): string[] {
    return [...socket.rooms].map((r) => relativeRoom(tenantId, r)).filter((r): r is string => !!r);
  }

  const PRESENCE_SKIP = new Set(['tenant', 'user']);

  async function usersIn(full: string, exceptSocket?: string): Promise<string[]> {
    const sockets = await io.in(full).fetchSockets();
    const users = new Set<string>();
    for (const s of sockets) if (s.id !== exceptSocket && s.data?.userId) users.add(s.data.userId);
    return [...users];
  }

  async function announceLeave(socket: Socket, tenantId: string, userId: string, rel: string) {
    const type = rel.slice(0, rel.indexOf(':'));
    if (PRESENCE_SKIP.has(type)) return;
    const full = fullRoom(tenantId, rel);
    const others = await usersIn(full, socket.id);
    if (!others.includes(userId)) io.to(full).emit('presence:leave', { room: rel, userId });
  }

  /** Leaves every room the (new) principal may no longer join; used after a refresh and after recovery. */
  async function recheckRooms(socket: Socket, c: Conn) {
    for (const rel of joinedRooms(socket, c.principal.tenantId)) {
      const parsed = parseRoom(rel);
      let allowed = false;
      try {
        allowed = !!parsed && (await canJoin(c.principal, parsed));
      } catch (e) {
        log.warn(describeForLog(e), 'realtime: room check failed');
      }
      if (!allowed) {
        await socket.leave(fullRoom(c.principal.tenantId, rel));
        socket.emit('room:revoked', { room: rel });
      }
    }
  }

  function takeToken(c: Conn): boolean {
    const now = Date.now();
    c.tokens = Math.min(burst, c.tokens + ((now - c.refilledAt) / 1000) * rate);
    c.refilledAt = now;
    if (c.tokens < 1) return false;
    c.tokens -= 1;
    return true;
  }

  io.on('connection', (socket) => {
    const c = conn(socket);
    if (!c) {
      socket.disconnect(true);
      return;
    }
    const { tenantId } = c.principal;
    for (const rel of automaticRooms(c.principal)) void socket.join(fullRoom(tenantId, rel));
    if (socket.recovered) void recheckRooms(socket, c);

    // every incoming message: expiry, revocation (throttled) and the rate limit
    socket.use(async (packet, next) => {
      metrics.messages.inc({ direction: 'in' });
      const ack = typeof packet[packet.length - 1] === 'function' ? (packet[packet.length - 1] as Ack) : undefined;
      const cur = conn(socket);
      if (!cur) return;
      if (Date.now() >= cur.expiresAt) return kick(socket, 'auth:expired', ErrorCode.UNAUTHENTICATED);
      if (!takeToken(cur)) {
        metrics.rejected.inc({ reason: 'rate' });
        cur.violations++;
        if (cur.violations > burst * 5) {
          socket.emit('rate:limited', { code: ErrorCode.RATE_LIMITED });
          socket.disconnect(true);
          return;
        }
        ack?.(fail(ErrorCode.RATE_LIMITED, 'Too many messages'));
        return;
      }
      if (Date.now() - cur.verifiedAt > revalidateMs && packet[0] !== 'auth:refresh') {
        if (!(await revalidate(socket, cur))) return;
      }
      next();
    });

    socket.on('room:join', async (arg: unknown, ack?: Ack) => {
      if (typeof ack !== 'function') return;
      const cur = conn(socket);
      const rel = (arg as { room?: unknown } | undefined)?.room;
      const parsed = parseRoom(rel);
      if (!cur) return;
      if (!parsed) return ack(fail(ErrorCode.BAD_USER_INPUT, 'room must look like type:id'));
      let allowed = false;
      try {
        allowed = await canJoin(cur.principal, parsed);
      } catch (e) {
        if (e instanceof AppError && e.code === ErrorCode.FEATURE_NOT_ENTITLED) {
          metrics.rejected.inc({ reason: 'join' });
          return ack(fail(e.code, e.message));
        }
        log.warn(describeForLog(e), 'realtime: room check failed');
        return ack(fail(ErrorCode.INTERNAL_SERVER_ERROR, 'Internal server error'));
      }
      if (!allowed) {
        metrics.rejected.inc({ reason: 'join' });
        return ack(fail(ErrorCode.FORBIDDEN, 'Not allowed'));
      }
      const room = `${parsed.type}:${parsed.id}`;
      const full = fullRoom(tenantId, room);
      const already = socket.rooms.has(full);
      const before = PRESENCE_SKIP.has(parsed.type) || already ? [] : await usersIn(full);
      await socket.join(full);
      if (!PRESENCE_SKIP.has(parsed.type) && !already && !before.includes(cur.principal.id)) {
        socket.to(full).emit('presence:join', { room, userId: cur.principal.id });
      }
      ack(ok({ room, members: PRESENCE_SKIP.has(parsed.type) ? undefined : await usersIn(full) }));
    });

    socket.on('room:leave', async (arg: unknown, ack?: Ack) => {
      const cur = conn(socket);
      const parsed = parseRoom((arg as { room?: unknown } | undefined)?.room);
      if (!cur || !parsed) return ack?.(fail(ErrorCode.BAD_USER_INPUT, 'room must look like type:id'));
      const room = `${parsed.type}:${parsed.id}`;
      const full = fullRoom(tenantId, room);
      if (socket.rooms.has(full)) {
        await socket.leave(full);
        await announceLeave(socket, tenantId, cur.principal.id, room);
      }
      ack?.(ok({ room }));
    });

    socket.on('room:members', async (arg: unknown, ack?: Ack) => {
      if (typeof ack !== 'function') return;
      const parsed = parseRoom((arg as { room?: unknown } | undefined)?.room);
      if (!parsed) return ack(fail(ErrorCode.BAD_USER_INPUT, 'room must look like type:id'));
      const full = fullRoom(tenantId, `${parsed.type}:${parsed.id}`);
      // presence is visible to members only
      if (!socket.rooms.has(full)) return ack(fail(ErrorCode.FORBIDDEN, 'Join the room first'));
      ack(ok({ room: `${parsed.type}:${parsed.id}`, members: await usersIn(full) }));
    });

    socket.on('auth:refresh', async (arg: unknown, ack?: Ack) => {
      const cur = conn(socket);
      const token = (arg as { token?: unknown } | undefined)?.token;
      if (!cur) return;
      if (typeof token !== 'string' || token.length > 8192) return ack?.(fail(ErrorCode.BAD_USER_INPUT, 'token is required'));
      let p: RealtimePrincipal;
      try {
        p = await verify(token);
      } catch (e) {
        metrics.rejected.inc({ reason: 'refresh' });
        return ack?.(fail(e instanceof AppError ? e.code : ErrorCode.UNAUTHENTICATED, 'Token refused'));
      }
      if (p.tenantId !== cur.principal.tenantId || p.id !== cur.principal.id || p.kind !== cur.principal.kind) {
        metrics.rejected.inc({ reason: 'refresh' });
        return ack?.(fail(ErrorCode.FORBIDDEN, 'Token belongs to another principal'));
      }
      const expiresAt = expiryOf(p, token);
      if (expiresAt <= Date.now()) return ack?.(fail(ErrorCode.UNAUTHENTICATED, 'Token expired'));
      cur.token = token;
      cur.principal = p;
      cur.expiresAt = expiresAt;
      cur.verifiedAt = Date.now();
      await recheckRooms(socket, cur);
      ack?.(ok({ expiresAt: Number.isFinite(expiresAt) ? new Date(expiresAt).toISOString() : null }));
    });

    for (const h of opts.handlers ?? []) {
      socket.on(h.event, async (payload: unknown, ack?: Ack) => {
        const cur = conn(socket);
        if (!cur) return;
        if (h.permission && !cur.principal.permissions.has(h.permission)) {
          metrics.rejected.inc({ reason: 'permission' });
          return ack?.(fail(ErrorCode.FORBIDDEN, 'Not allowed'));
        }
        // the event runs in a request scope: tenant transaction, PHI-access trail, entitlement
        const scope = opts.scopes.create({ door: 'socket', principal: cur.principal, requestId: randomUUID(), operationName: h.event });
        const ctx: SocketHandlerContext = {
          scope,
          principal: cur.principal,
          tenantId,
          socketId: socket.id,
          log: log.child({ socketEvent: h.event, module: h.module }),
          database,
          rooms: () => joinedRooms(socket, tenantId),
          broadcast(room, event, data) {
            const full = fullRoom(tenantId, room);
            if (!parseRoom(room) || !socket.rooms.has(full)) throw new AppError(ErrorCode.FORBIDDEN, 'Not in that room');
            metrics.messages.inc({ direction: 'out' });
            socket.to(full).emit(event, data);
          },
        };
        try {
          await scope.requireEntitled(h.entitlement ?? null);
          const result = await h.handle(socket, payload, ctx);
          // committed and its PHI access durable before the ack
          await scope.finish(true);
          ack?.(ok(result === undefined ? {} : { result }));
        } catch (e) {
          await scope.finish(false).catch(() => undefined);
          if (e instanceof AppError) return ack?.(fail(e.code, e.message));
          log.error({ socketEvent: h.event, ...describeForLog(e) }, 'realtime: socket handler failed');
          ack?.(fail(ErrorCode.INTERNAL_SERVER_ERROR, 'Internal server error'));
        }
      });
    }

    socket.on('disconnecting', () => {
      const cur = conn(socket);
      if (!cur) return;
      for (const rel of joinedRooms(socket, tenantId)) {
        void announceLeave(socket, tenantId, cur.principal.id, rel).catch(() => undefined);
      }
    });
    socket.on('disconnect', () => {
      conns.delete(socket.id);
    });
  });

  // ---- expiry and revocation sweep ----
  const sweep = setInterval(() => {
    const now = Date.now();
    for (const [id, c] of conns) {
      const socket = io.sockets.sockets.get(id);
      if (!socket) {
        conns.delete(id);
        continue;
      }
      if (now >= c.expiresAt) kick(socket, 'auth:expired', ErrorCode.UNAUTHENTICATED);
      else if (now - c.verifiedAt > revalidateMs && !c.revalidating) void revalidate(socket, c);
    }
  }, opts.sweepMs ?? 5000);
  sweep.unref();

  let closed: Promise<void> | undefined;
  return {
    io: io as unknown as Server,
    publish(event: DomainEvent) {
      const rooms = event.rooms.filter((r) => parseRoom(r)).map((r) => fullRoom(event.tenantId, r));
      if (!rooms.length) return;
      const out: ClientEvent = {
        id: event.id,
        type: event.type,
        aggregateId: event.aggregateId,
        payload: event.payload,
        rooms: event.rooms,
        occurredAt: event.occurredAt.toISOString(),
      };
      metrics.messages.inc({ direction: 'out' });
      io.to(rooms).emit('event', out);
    },
    localConnections: () => conns.size,
    close() {
      closed ??= (async () => {
        clearInterval(sweep);
        // disconnect clients (they reconnect elsewhere) without closing the HTTP server, which app.close owns
        io.disconnectSockets(true);
        await new Promise<void>((resolve) => {
          io.engine.close();
          resolve();
        });
        await Promise.allSettled([...io._nsps.values()].map((nsp) => Promise.resolve(nsp.adapter.close?.())));
        redis?.disconnect();
      })();
      return closed;
    },
  };
}
