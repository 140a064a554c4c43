/**
 * telehealth (issue 15): BENCH_TELEHEALTH_SESSIONS concurrent video visits (default 100), each run end to end by its
 * patient and its provider as two signed-in clients with a socket.io connection each:
 *
 *   book → consent → check in → wait → admit → chat (BENCH_TELEHEALTH_MESSAGES messages, default 20, alternately
 *   patient and provider) → vitals → end
 *
 *   book       the patient books their own record into the next free 10-minute slot of their provider
 *              (bookAppointment; the provider's socket, in `waitingRoom:<providerId>`, hears appointment.booked)
 *   consent    the patient records their TELEHEALTH consent to the current text (recordConsent)
 *   check in   the patient checks in (checkInAppointment; the provider hears appointment.checkedIn)
 *   wait       the patient enters the waiting room (enterWaitingRoom; the provider hears appointment.waiting)
 *   admit      once the provider's socket has heard the patient waiting: admitPatient (the patient hears
 *              appointment.admitted)
 *   chat       sendVisitChatMessage, patient first; each message is sent once the other side's socket has heard the
 *              previous one (visit.chatMessage on `visit:<appointmentId>`, ids only), as a conversation goes
 *   vitals     the provider records a heart rate (recordVitalSign; the patient hears visit.vitalRecorded)
 *   end        the provider completes the visit (completeVisit; the patient hears appointment.completed)
 *
 * The server (bench/servers/carebase-telehealth.ts, a child process running the real createApp on the real clock)
 * provisions a tenant with BENCH_TELEHEALTH_PROVIDERS providers (default 20), one patient record per session linked to
 * its own PATIENT account, a 10-minute video visit type without buffer and the published consent text. Session k goes
 * to provider k mod 20, in that provider's slot ⌊k / 20⌋: 5 back-to-back slots per provider, the first starting 5 to 6
 * minutes after the run starts, all inside the hour in which check-in is open, none overlapping (the exclusion
 * constraint). Sessions are not paced by a clock: each step follows the previous one as soon as its answer (and, where
 * the other side must react, the event) is in, so the 100 sessions run at the same time from start to end. All start
 * together unless BENCH_TELEHEALTH_RAMP_S spreads their starts; BENCH_TELEHEALTH_THINK_MS (default 0) adds an
 * exponential pause before each step.
 *
 * Each session's patient and provider hold their own socket.io connection (websocket, `auth: { token }`); the
 * provider's joins `waitingRoom:<providerId>` before booking (so a provider with 5 sessions has 5 sockets, as with a tab
 * per visit), and both join `visit:<appointmentId>` after booking (the room acks are recorded as "room:join visit").
 *
 * Measured in this process:
 *   - per step, the GraphQL round trip (HTTP/1.1 keep-alive through one node:http Agent bounded to
 *     BENCH_TELEHEALTH_HTTP_CONNECTIONS connections, default 200): p50 / p95 / p99 / max;
 *   - socket event delivery: from just before the mutation is sent to the event's arrival at the other participant's
 *     socket (both clocks are this process's performance.now(); the event may arrive before the mutation's answer),
 *     p50 / p95 / p99 / max overall and by event type; also from the event's `occurredAt` (the outbox row's created_at:
 *     PostgreSQL's now(), the start of the writing transaction, ms precision) to its arrival (Date.now() here, the same
 *     machine's clock);
 *   - errors: an answer that is not HTTP 200 without GraphQL errors, an expected event that does not arrive within
 *     10 s, a socket that fails to connect or join, or drops; a session stops at its first error;
 *   - the run's wall time, each session's time, the CPU of the server process and of PostgreSQL during the run.
 *
 * Database: as `users`: with DATABASE_URL a fresh database `carebase_bench_telehealth_<hex>` created on that server
 * and dropped afterwards, else embedded PostgreSQL in a fresh temporary DATA_DIR. REDIS_URL is passed to the server.
 */
import os from 'node:os';
import { io, type Socket } from 'socket.io-client';
import { keepAliveGraphql, scenarioDatabase, startServer, percentile } from '../lib.js';
import { cpuPressureUs, PgCpu, processCpuUs } from '../cpu.js';

const SESSIONS = Number(process.env.BENCH_TELEHEALTH_SESSIONS ?? 100);
const PROVIDERS = Number(process.env.BENCH_TELEHEALTH_PROVIDERS ?? 20);
const MESSAGES = Number(process.env.BENCH_TELEHEALTH_MESSAGES ?? 20);
const RAMP_S = Number(process.env.BENCH_TELEHEALTH_RAMP_S ?? 0);
const THINK_MS = Number(process.env.BENCH_TELEHEALTH_THINK_MS ?? 0);
const HTTP_CONNECTIONS = Number(process.env.BENCH_TELEHEALTH_HTTP_CONNECTIONS ?? 200);
const SLOT_MINUTES = 10;
const REQUEST_TIMEOUT_MS = 15_000;
const EVENT_TIMEOUT_MS = 10_000;

interface Info {
  tenantId: string;
  visitTypeId: string;
  consentVersion: number;
  providers: { userId: string; token: string }[];
  patients: { userId: string; token: string; patientId: string }[];
  setupMs: number;
  pg: { url: string; database: string };
}

const STEPS = ['book', 'consent', 'check in', 'wait', 'admit', 'chat message', 'vitals', 'end', 'socket connect + join', 'room:join visit'] as const;
type Step = (typeof STEPS)[number];

const FIELDS = 'id status version';
const BOOK = `mutation Book($i: BookAppointmentInput!) { bookAppointment(input: $i) { ${FIELDS} } }`;
const CONSENT = 'mutation Consent($i: RecordConsentInput!) { recordConsent(input: $i) { id } }';
const transition = (op: string, field: string) => `mutation ${op}($id: UUID!) { ${field}(id: $id) { ${FIELDS} } }`;
const CHECK_IN = transition('CheckIn', 'checkInAppointment');
const WAIT = transition('EnterWaitingRoom', 'enterWaitingRoom');
const ADMIT = transition('Admit', 'admitPatient');
const COMPLETE = transition('Complete', 'completeVisit');
const CHAT = 'mutation Chat($a: UUID!, $b: String!, $k: String!) { sendVisitChatMessage(appointmentId: $a, body: $b, clientMessageId: $k) { id } }';
const VITAL = 'mutation Vital($i: RecordVitalSignInput!) { recordVitalSign(input: $i) { id } }';

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, Math.max(0, ms)));
const exp = (mean: number) => -mean * Math.log(1 - Math.random());
const think = () => (THINK_MS > 0 ? sleep(exp(THINK_MS)) : undefined);

// ------------------------------------------------------------------ recording

interface Delivery {
  type: string;
  /** who heard it */
  to: 'patient' | 'provider';
  /** mutation sent → event at the other participant's socket, ms */
  ms: number;
  /** event occurredAt (server wall clock) → arrival (this process's wall clock), ms */
  fromCommitMs?: number;
}

class Recorder {
  samples: { step: Step; ms: number; code?: string }[] = [];
  deliveries: Delivery[] = [];
  errors = new Map<string, number>();
  completed = 0;
  sessionMs: number[] = [];
  eventsReceived = 0;
  add(step: Step, startedAt: number, code?: string) {
    this.samples.push({ step, ms: performance.now() - startedAt, code });
    if (code) this.error(`${step}: ${code}`);
  }
  error(key: string) {
    this.errors.set(key, (this.errors.get(key) ?? 0) + 1);
  }
}

/** a session's first error: it stops there */
class SessionError extends Error {}

// ------------------------------------------------------------------ HTTP


function graphqlClient(baseUrl: string) {
  const client = keepAliveGraphql(baseUrl, { connections: HTTP_CONNECTIONS, timeoutMs: REQUEST_TIMEOUT_MS });
  return { post: (token: string, query: string, variables: Record<string, unknown>) => client.post(token, JSON.stringify({ query, variables })), close: client.close };
}

// ------------------------------------------------------------------ sockets

interface Ev {
  id: string;
  type: string;
  aggregateId: string;
  payload: Record<string, unknown>;
  occurredAt?: string;
}
interface Heard {
  e: Ev;
  /** performance.now() at arrival */
  at: number;
  /** Date.now() at arrival */
  wall: number;
}

/** A socket's domain events, deduplicated by id (delivery is at-least-once), each taken once by the session waiting for it. */
class Inbox {
  private items: Heard[] = [];
  private seen = new Set<string>();
  private waiters: { pred: (e: Ev) => boolean; resolve: (h: Heard | undefined) => void }[] = [];
  constructor(
    readonly socket: Socket,
    rec: Recorder,
  ) {
    socket.on('event', (e: Ev) => {
      const h = { e, at: performance.now(), wall: Date.now() };
      rec.eventsReceived++;
      if (this.seen.has(e.id)) return;
      this.seen.add(e.id);
      const i = this.waiters.findIndex((w) => w.pred(e));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(h);
      else this.items.push(h);
    });
  }
  /** the first unclaimed event matching `pred`, received already or within `ms` (undefined: none came) */
  take(pred: (e: Ev) => boolean, ms = EVENT_TIMEOUT_MS): Promise<Heard | undefined> {
    const i = this.items.findIndex((h) => pred(h.e));
    if (i >= 0) return Promise.resolve(this.items.splice(i, 1)[0]);
    return new Promise((resolve) => {
      const w = {
        pred,
        resolve: (h: Heard | undefined) => {
          clearTimeout(timer);
          resolve(h);
        },
      };
      const timer = setTimeout(() => {
        this.waiters.splice(this.waiters.indexOf(w), 1);
        resolve(undefined);
      }, ms);
      this.waiters.push(w);
    });
  }
}

function ack<T = { ok: boolean; error?: { code: string } }>(s: Socket, event: string, payload: unknown): Promise<T> {
  return s.timeout(REQUEST_TIMEOUT_MS).emitWithAck(event, payload) as Promise<T>;
}

// ------------------------------------------------------------------ server-side probes

interface Probe {
  /** event-loop delay p99 / max since the previous scrape (prom-client resets its histogram at each scrape), ms */
  lagP99: number;
  lagMax: number;
  inFlight: number;
  poolWaiting: number;
  txOpen: number;
  /** carebase_requests_shed_total, all reasons (cumulative) */
  shed: number;
}

/** One GET /metrics of the server (undefined when it does not answer). */
async function probe(baseUrl: string): Promise<Probe | undefined> {
  try {
    const text = await (await fetch(`${baseUrl}/metrics`)).text();
    const v = (name: string) => Number(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'm').exec(text)?.[1] ?? NaN);
    let shed = 0;
    for (const m of text.matchAll(/^carebase_requests_shed_total\{[^}]*\} (\S+)$/gm)) shed += Number(m[1]);
    return {
      lagP99: v('nodejs_eventloop_lag_p99_seconds') * 1000,
      lagMax: v('nodejs_eventloop_lag_max_seconds') * 1000,
      inFlight: v('carebase_http_in_flight'),
      poolWaiting: v('carebase_db_pool_waiting'),
      txOpen: v('carebase_db_transactions_open'),
      shed,
    };
  } catch {
    return undefined;
  }
}

// ------------------------------------------------------------------ the run

export async function run() {
  const { env: dbEnv, cleanup, where } = await scenarioDatabase('telehealth');
  const env = { BENCH_TELEHEALTH_SESSIONS: String(SESSIONS), BENCH_TELEHEALTH_PROVIDERS: String(PROVIDERS), ...dbEnv };
  const setupStarted = Date.now();
  let server: Awaited<ReturnType<typeof startServer>>;
  try {
    server = await startServer('bench/servers/carebase-telehealth.ts', env);
  } catch (e) {
    await cleanup().catch(() => undefined);
    throw e;
  }
  const info = server.info as Info;
  const pid = server.child.pid!;
  const pg = await PgCpu.open({ url: info.pg.url, database: info.pg.database });
  const client = graphqlClient(server.url);
  const rec = new Recorder();
  const sockets: Socket[] = [];
  const disconnects = new Map<string, number>();

  console.log(
    `server ready in ${((Date.now() - setupStarted) / 1000).toFixed(0)} s on ${where}: ${info.providers.length} providers, ${info.patients.length} patients ` +
      `(PATIENT accounts linked to their records), setup ${(info.setupMs / 1000).toFixed(1)} s; REDIS_URL ${process.env.REDIS_URL ? 'set' : 'unset'}`,
  );
  const load0 = os.loadavg();
  console.log(
    `load: ${SESSIONS} concurrent sessions (${MESSAGES} chat messages each), ${info.providers.length} providers × ${Math.ceil(SESSIONS / info.providers.length)} back-to-back ${SLOT_MINUTES}-minute slots, ` +
      `ramp ${RAMP_S} s, think time ${THINK_MS ? `exponential mean ${THINK_MS} ms` : 'none'}, ${HTTP_CONNECTIONS} keep-alive HTTP connections at most; ` +
      `load average at start ${load0.map((l) => l.toFixed(2)).join(' / ')}`,
  );

  const connect = async (token: string, rooms: string[]): Promise<Inbox> => {
    const t = performance.now();
    const s = io(server.url, { transports: ['websocket'], auth: { token }, reconnection: false, forceNew: true });
    sockets.push(s);
    const inbox = new Inbox(s, rec);
    const ok = await new Promise<string | undefined>((resolve) => {
      s.once('connect', () => resolve(undefined));
      s.once('connect_error', (e: Error & { data?: { code?: string } }) => resolve(e.data?.code ?? e.message));
    });
    if (ok !== undefined) {
      rec.add('socket connect + join', t, `connect ${ok}`);
      throw new SessionError();
    }
    for (const room of rooms) {
      const r = await ack(s, 'room:join', { room }).catch(() => ({ ok: false, error: { code: 'ACK_TIMEOUT' } }));
      if (!r.ok) {
        rec.add('socket connect + join', t, `room:join ${room.split(':')[0]} ${r.error?.code ?? 'REFUSED'}`);
        throw new SessionError();
      }
    }
    rec.add('socket connect + join', t);
    s.on('disconnect', (reason) => {
      if (reason === 'io client disconnect') return;
      disconnects.set(reason, (disconnects.get(reason) ?? 0) + 1);
    });
    return inbox;
  };

  /** a GraphQL step: its round trip is recorded; an error ends the session */
  const step = async (name: Step, token: string, query: string, variables: Record<string, unknown>): Promise<{ data: any; sentAt: number }> => {
    await think();
    const sentAt = performance.now();
    const a = await client.post(token, query, variables);
    rec.add(name, sentAt, a.code);
    if (a.code) throw new SessionError();
    return { data: a.data, sentAt };
  };

  /** waits for the other participant's socket to hear `type` about `appointmentId` (and `match` of its payload) */
  const hear = async (inbox: Inbox, to: Delivery['to'], type: string, appointmentId: string, sentAt: number, match: (p: Record<string, unknown>) => boolean = () => true) => {
    const h = await inbox.take((e) => e.type === type && e.aggregateId === appointmentId && match(e.payload));
    if (!h) {
      rec.error(`event ${type} not heard by the ${to} within ${EVENT_TIMEOUT_MS / 1000} s`);
      throw new SessionError();
    }
    const commit = h.e.occurredAt ? Date.parse(h.e.occurredAt) : NaN;
    rec.deliveries.push({ type, to, ms: h.at - sentAt, fromCommitMs: Number.isFinite(commit) ? h.wall - commit : undefined });
  };

  // slots: provider k mod P, slot ⌊k / P⌋; the first slot starts at the first whole minute at least 5 minutes ahead
  const P = info.providers.length;
  const firstStart = Math.ceil((Date.now() + 5 * 60_000) / 60_000) * 60_000;
  const slotsPerProvider = Math.ceil(SESSIONS / P);
  if ((firstStart - Date.now()) / 60_000 + (slotsPerProvider - 1) * SLOT_MINUTES >= 60) {
    throw new Error(`${slotsPerProvider} slots of ${SLOT_MINUTES} minutes per provider do not fit in the hour in which check-in is open: add providers (BENCH_TELEHEALTH_PROVIDERS)`);
  }

  async function session(k: number) {
    const patient = info.patients[k]!;
    const provider = info.providers[k % P]!;
    const startsAt = new Date(firstStart + Math.floor(k / P) * SLOT_MINUTES * 60_000).toISOString();
    await sleep((k * RAMP_S * 1000) / SESSIONS);
    const t0 = performance.now();
    try {
      const [pt, pv] = await Promise.all([connect(patient.token, []), connect(provider.token, [`waitingRoom:${provider.userId}`])]);

      const booked = await step('book', patient.token, BOOK, { i: { providerId: provider.userId, visitTypeId: info.visitTypeId, startsAt } });
      const id = booked.data.bookAppointment.id as string;
      await hear(pv, 'provider', 'appointment.booked', id, booked.sentAt);
      for (const [who, inbox] of [
        ['patient', pt],
        ['provider', pv],
      ] as const) {
        const t = performance.now();
        const r = await ack(inbox.socket, 'room:join', { room: `visit:${id}` }).catch(() => ({ ok: false, error: { code: 'ACK_TIMEOUT' } }));
        rec.add('room:join visit', t, r.ok ? undefined : `${who} ${r.error?.code ?? 'REFUSED'}`);
        if (!r.ok) throw new SessionError();
      }

      await step('consent', patient.token, CONSENT, { i: { kind: 'TELEHEALTH', version: info.consentVersion } });
      const checkedIn = await step('check in', patient.token, CHECK_IN, { id });
      await hear(pv, 'provider', 'appointment.checkedIn', id, checkedIn.sentAt);
      const waiting = await step('wait', patient.token, WAIT, { id });
      await hear(pv, 'provider', 'appointment.waiting', id, waiting.sentAt);
      const admitted = await step('admit', provider.token, ADMIT, { id });
      await hear(pt, 'patient', 'appointment.admitted', id, admitted.sentAt);

      for (let m = 0; m < MESSAGES; m++) {
        const fromPatient = m % 2 === 0;
        const sent = await step('chat message', fromPatient ? patient.token : provider.token, CHAT, { a: id, b: `Bench message ${m + 1} of ${MESSAGES}`, k: `bench-${k}-${m}` });
        const messageId = sent.data.sendVisitChatMessage.id as string;
        await hear(fromPatient ? pv : pt, fromPatient ? 'provider' : 'patient', 'visit.chatMessage', id, sent.sentAt, (p) => p.messageId === messageId);
      }

      const vital = await step('vitals', provider.token, VITAL, { i: { appointmentId: id, kind: 'HEART_RATE', value: 72, unit: '/min' } });
      const vitalId = vital.data.recordVitalSign.id as string;
      await hear(pt, 'patient', 'visit.vitalRecorded', id, vital.sentAt, (p) => p.vitalId === vitalId);
      const ended = await step('end', provider.token, COMPLETE, { id });
      await hear(pt, 'patient', 'appointment.completed', id, ended.sentAt);

      rec.completed++;
      rec.sessionMs.push(performance.now() - t0);
    } catch (e) {
      if (!(e instanceof SessionError)) rec.error(`session: ${(e as Error).message}`);
    }
  }

  let result;
  try {
    // idle reference (the first scrape resets the server's event-loop histogram)
    await probe(server.url);
    await sleep(1000);
    const idle = await probe(server.url);
    const cpuServer0 = await processCpuUs(pid);
    const pgWindow = await pg?.start();
    const cpuClient0 = process.cpuUsage();
    const psi0 = await cpuPressureUs();
    // the server's gauges once a second during the run
    const probes: Probe[] = [];
    const probeTimer = setInterval(() => void probe(server.url).then((p) => p && probes.push(p)), 1000);
    const started = performance.now();
    await Promise.all(Array.from({ length: SESSIONS }, (_, k) => session(k)));
    const wallMs = performance.now() - started;
    clearInterval(probeTimer);
    const last = await probe(server.url);
    if (last) probes.push(last);
    const cpuServer = (await processCpuUs(pid))! - cpuServer0!;
    const cpuPg = pgWindow ? await pgWindow() : undefined;
    const cpuClient = process.cpuUsage(cpuClient0);
    const psi1 = await cpuPressureUs();
    const cpuPressure = psi0 !== undefined && psi1 !== undefined ? (psi1 - psi0) / (wallMs * 1000) : undefined;
    result = report({ rec, wallMs, cpuServer, cpuPg, cpuClient, cpuPressure, disconnects, load0, probes, idle });
  } finally {
    for (const s of sockets) s.close();
    client.close();
    await pg?.close().catch(() => undefined);
    await server.stop();
    await cleanup().catch((e) => console.error(`cleanup failed: ${(e as Error).message}`));
  }
  return result;
}

// ------------------------------------------------------------------ report

function report(r: {
  rec: Recorder;
  wallMs: number;
  cpuServer: number;
  cpuPg?: number;
  cpuClient: NodeJS.CpuUsage;
  cpuPressure?: number;
  disconnects: Map<string, number>;
  load0: number[];
  probes: Probe[];
  idle?: Probe;
}) {
  const f = (v: number) => v.toFixed(1);
  const stats = (xs: number[]) => {
    const s = [...xs].sort((a, b) => a - b);
    return { n: s.length, p50: percentile(s, 0.5), p95: percentile(s, 0.95), p99: percentile(s, 0.99), max: s.at(-1) ?? 0 };
  };
  const { rec } = r;
  for (const [k, v] of r.disconnects) rec.errors.set(`socket dropped: ${k}`, v);
  const errors = [...rec.errors.values()].reduce((a, b) => a + b, 0);

  console.log(`\n${rec.completed}/${SESSIONS} sessions completed in ${(r.wallMs / 1000).toFixed(1)} s (wall time of the run)`);
  console.log('| step | count | p50 ms | p95 ms | p99 ms | max ms | errors |');
  console.log('|---|---:|---:|---:|---:|---:|---:|');
  const rows = STEPS.map((step) => {
    const all = rec.samples.filter((x) => x.step === step);
    const s = stats(all.filter((x) => !x.code).map((x) => x.ms));
    return { step, ...s, count: all.length, errors: all.length - s.n };
  });
  for (const x of rows) console.log(`| ${x.step} | ${x.count} | ${f(x.p50)} | ${f(x.p95)} | ${f(x.p99)} | ${f(x.max)} | ${x.errors} |`);
  const gqlSteps = rec.samples.filter((x) => !x.code && x.step !== 'socket connect + join' && x.step !== 'room:join visit');
  const g = stats(gqlSteps.map((x) => x.ms));
  console.log(`| all GraphQL steps | ${gqlSteps.length} | ${f(g.p50)} | ${f(g.p95)} | ${f(g.p99)} | ${f(g.max)} | – |`);

  const d = stats(rec.deliveries.map((x) => x.ms));
  const c = stats(rec.deliveries.filter((x) => x.fromCommitMs !== undefined).map((x) => x.fromCommitMs!));
  console.log(`\nsocket event delivery to the other participant (mutation sent → event at their socket), ${d.n} events:`);
  console.log('| event → to | count | p50 ms | p95 ms | p99 ms | max ms |');
  console.log('|---|---:|---:|---:|---:|---:|');
  const kinds = [...new Set(rec.deliveries.map((x) => `${x.type} → ${x.to}`))];
  for (const kind of kinds) {
    const s = stats(rec.deliveries.filter((x) => `${x.type} → ${x.to}` === kind).map((x) => x.ms));
    console.log(`| ${kind} | ${s.n} | ${f(s.p50)} | ${f(s.p95)} | ${f(s.p99)} | ${f(s.max)} |`);
  }
  console.log(`| all | ${d.n} | ${f(d.p50)} | ${f(d.p95)} | ${f(d.p99)} | ${f(d.max)} |`);
  console.log(
    `from the event's occurredAt (the outbox row's created_at: the start of the writing transaction) to its arrival: p50 ${f(c.p50)} ms, p95 ${f(c.p95)} ms, p99 ${f(c.p99)} ms, max ${f(c.max)} ms; ` +
      `events received by all sockets (duplicates included): ${rec.eventsReceived}`,
  );

  const s = stats(rec.sessionMs);
  console.log(`session time (connect to the end's event): p50 ${(s.p50 / 1000).toFixed(1)} s, p95 ${(s.p95 / 1000).toFixed(1)} s, max ${(s.max / 1000).toFixed(1)} s`);
  console.log(`errors: ${errors}${errors ? ` (${[...rec.errors].map(([k, v]) => `${k} ×${v}`).join('; ')})` : ''}`);
  const sec = r.wallMs / 1000;
  console.log(
    `CPU during the run: server ${((r.cpuServer / 1e6 / sec) * 100).toFixed(0)}% of a core (${(r.cpuServer / 1e3 / Math.max(1, rec.completed)).toFixed(0)} ms per session), ` +
      `PostgreSQL ${r.cpuPg === undefined ? '–' : `${((r.cpuPg / 1e6 / sec) * 100).toFixed(0)}% (${(r.cpuPg / 1e3 / Math.max(1, rec.completed)).toFixed(0)} ms per session)`}, ` +
      `this bench process ${(((r.cpuClient.user + r.cpuClient.system) / 1e6 / sec) * 100).toFixed(0)}%; load average at start ${r.load0.map((l) => l.toFixed(2)).join(' / ')}, at end ${os
        .loadavg()
        .map((l) => l.toFixed(2))
        .join(' / ')}`,
  );
  if (r.probes.length) {
    const max = (f: (p: Probe) => number) => Math.max(...r.probes.map(f));
    const shed = r.probes.at(-1)!.shed - (r.idle?.shed ?? 0);
    console.log(
      `server gauges (${r.probes.length} scrapes of /metrics, 1 s apart): in flight max ${max((p) => p.inFlight)}, waiting for a pool connection max ${max((p) => p.poolWaiting)}, ` +
        `request transactions open max ${max((p) => p.txOpen)}; event-loop delay p99 worst ${f(max((p) => p.lagP99))} ms, max ${f(max((p) => p.lagMax))} ms ` +
        `(idle: p99 ${r.idle ? f(r.idle.lagP99) : '–'} ms, includes the 10 ms sampling interval); requests shed: ${shed}`,
    );
  }
  console.log(`CPU pressure (PSI some: share of the run in which a runnable task of the machine waited for a core): ${r.cpuPressure === undefined ? '–' : `${(r.cpuPressure * 100).toFixed(0)}%`}`);
  console.log(`target: ${SESSIONS} sessions with 0 errors: ${rec.completed === SESSIONS && errors === 0 ? 'met' : `NOT met (${rec.completed} completed, ${errors} errors)`}`);
  return { rows, delivery: d, completed: rec.completed, errors, wallMs: r.wallMs };
}
