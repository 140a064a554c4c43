import underPressure from '@fastify/under-pressure';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import client from 'prom-client';
import { RequestTransaction } from '../db/tenancy.js';
import { ErrorCode } from '../errors.js';

/** Operational routes keep answering under pressure (probes must see the truth, not a 503). */
const EXEMPT = new Set(['/healthz', '/readyz', '/metrics']);

/**
 * Load shedding: when `maxInFlight` requests are already being served (an
 * admission limit: the latency of accepted requests stays about
 * maxInFlight / throughput however much is offered), when the event loop lags
 * more than `maxEventLoopDelayMs` (@fastify/under-pressure), or when more
 * than `maxPoolWaiting` requests already wait for a database connection, new
 * requests get 503 SERVER_BUSY with Retry-After at once (no body parsing, no
 * GraphQL, no database), instead of joining an unbounded queue.
 */
export async function registerLoadShedding(
  server: FastifyInstance,
  opts: { maxEventLoopDelayMs: number; maxPoolWaiting: number; maxInFlight: number; registry: client.Registry },
) {
  let inFlight = 0;
  new client.Gauge({
    name: 'carebase_http_in_flight',
    help: 'HTTP requests being served (load-shedding admission count; probes excluded)',
    registers: [opts.registry],
    collect() {
      this.set(inFlight);
    },
  });
  const shed = new client.Counter({
    name: 'carebase_requests_shed_total',
    help: 'Requests refused with SERVER_BUSY, by reason',
    labelNames: ['reason'] as const,
    registers: [opts.registry],
  });
  new client.Gauge({
    name: 'carebase_db_pool_waiting',
    help: 'Requests waiting for a database connection',
    registers: [opts.registry],
    collect() {
      this.set(RequestTransaction.waiting);
    },
  });
  const busy = (req: FastifyRequest, reply: FastifyReply, reason: string) => {
    shed.inc({ reason });
    return reply
      .code(503)
      .header('retry-after', '1')
      .send({ errors: [{ message: 'The server is busy; retry shortly', extensions: { code: ErrorCode.SERVER_BUSY, requestId: req.id } }] });
  };
  if (opts.maxInFlight > 0) {
    // first, so that a refused request costs as little as possible
    server.addHook('onRequest', async (req, reply) => {
      if (EXEMPT.has(req.routeOptions.url ?? '')) return;
      if (inFlight >= opts.maxInFlight) return busy(req, reply, 'in_flight');
      inFlight++;
      // 'close' fires once the response is sent or the client went away
      reply.raw.once('close', () => inFlight--);
    });
  }
  if (opts.maxEventLoopDelayMs > 0) {
    await server.register(underPressure, {
      maxEventLoopDelay: opts.maxEventLoopDelayMs,
      sampleInterval: 100,
      pressureHandler: (req, reply) => {
        if (EXEMPT.has(req.routeOptions.url ?? '')) return; // handled normally
        void busy(req, reply, 'event_loop');
      },
    });
  }
  if (opts.maxPoolWaiting > 0) {
    server.addHook('onRequest', async (req, reply) => {
      if (RequestTransaction.waiting >= opts.maxPoolWaiting && !EXEMPT.has(req.routeOptions.url ?? '')) return busy(req, reply, 'pool_queue');
    });
  }
}
