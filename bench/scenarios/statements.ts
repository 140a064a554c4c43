/**
 * statements: how many SQL statements and transactions one Carebase request costs (issue 19 item 2).
 *
 * The seeded server (bench/servers/carebase-seeded.ts) reaches PostgreSQL through a TCP proxy in this process that
 * reads the PostgreSQL wire protocol from the client side: every simple Query ('Q') and every extended-protocol
 * Execute ('E') is one statement; BEGIN / COMMIT / ROLLBACK are counted from their text ('Q' or the preceding
 * Parse 'P' of an unnamed or named statement). After a warm-up, N requests of each kind are sent one at a time
 * and the counts between them are divided by N, so the figures include what the request causes in the
 * background (the audit group commit, the outbox relay) and nothing else: nothing else loads the server.
 * Needs DATABASE_URL (TCP); the embedded default connects through a Unix socket the proxy cannot sit in front of.
 */
import net from 'node:net';
import { startServer } from '../lib.js';
import { patientCreateBody, patientReadBody, patientSearchBody, searchPrefixes } from './patients.js';

interface Counts {
  statements: number;
  begins: number;
  commits: number;
  rollbacks: number;
  roundTrips: number;
  byText: Map<string, number>;
}

const newCounts = (): Counts => ({ statements: 0, begins: 0, commits: 0, rollbacks: 0, roundTrips: 0, byText: new Map() });

/** A TCP proxy that parses the frontend messages of every connection and counts statements. */
async function countingProxy(target: { host: string; port: number }) {
  let counts = newCounts();
  const prepared = new Map<string, string>(); // statement name -> text (per proxy; names are per connection, good enough)
  const server = net.createServer((client) => {
    const upstream = net.connect(target.port, target.host);
    let buf = Buffer.alloc(0);
    let started = false;
    let unnamedText = '';
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk);
      counts.roundTrips++; // one client write: postgres-js pipelines what it sends in one tick
      buf = Buffer.concat([buf, chunk]);
      for (;;) {
        if (!started) {
          if (buf.length < 8) break;
          const len = buf.readInt32BE(0);
          if (buf.length < len) break;
          const code = buf.readInt32BE(4);
          buf = buf.subarray(len);
          if (code !== 80877103) started = true; // SSLRequest is answered 'N', then the startup message follows
          continue;
        }
        if (buf.length < 5) break;
        const type = String.fromCharCode(buf[0]!);
        const len = buf.readInt32BE(1);
        if (buf.length < 1 + len) break;
        const body = buf.subarray(5, 1 + len);
        buf = buf.subarray(1 + len);
        if (type === 'Q') count(body.subarray(0, body.indexOf(0)).toString());
        else if (type === 'P') {
          const nameEnd = body.indexOf(0);
          const name = body.subarray(0, nameEnd).toString();
          const text = body.subarray(nameEnd + 1, body.indexOf(0, nameEnd + 1)).toString();
          if (name) prepared.set(name, text);
          else unnamedText = text;
        } else if (type === 'B') {
          const portalEnd = body.indexOf(0);
          const stmt = body.subarray(portalEnd + 1, body.indexOf(0, portalEnd + 1)).toString();
          unnamedText = stmt ? (prepared.get(stmt) ?? stmt) : unnamedText;
        } else if (type === 'E') count(unnamedText);
      }
    });
    const drop = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on('error', drop).on('close', drop);
    upstream.on('error', drop).on('close', drop);
    upstream.pipe(client);
  });
  function count(text: string) {
    counts.statements++;
    const t = text.trim().toLowerCase();
    if (/^begin\b|^start transaction\b/.test(t)) counts.begins++;
    else if (/^commit\b/.test(t)) counts.commits++;
    else if (/^rollback\b/.test(t)) counts.rollbacks++;
    const key = text.replace(/\s+/g, ' ').trim().slice(0, 70);
    counts.byText.set(key, (counts.byText.get(key) ?? 0) + 1);
  }
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return {
    port: (server.address() as net.AddressInfo).port,
    take(): Counts {
      const c = counts;
      counts = newCounts();
      return c;
    },
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

export async function run() {
  const dbUrl = process.env.DATABASE_URL;
  if (!dbUrl) throw new Error('the statements scenario needs DATABASE_URL (TCP)');
  const u = new URL(dbUrl);
  const proxy = await countingProxy({ host: u.hostname, port: Number(u.port || 5432) });
  const viaProxy = new URL(dbUrl);
  viaProxy.hostname = '127.0.0.1';
  viaProxy.port = String(proxy.port);
  const server = await startServer('bench/servers/carebase-seeded.ts', { DATABASE_URL: viaProxy.toString(), BENCH_PATIENTS: '2000' });
  const headers = { authorization: `Bearer ${server.info.token}`, 'content-type': 'application/json' };
  const post = async (body: string) => {
    const r = (await (await fetch(`${server.url}/graphql`, { method: 'POST', headers, body })).json()) as { errors?: unknown };
    if (r.errors) throw new Error(`bench request failed: ${JSON.stringify(r.errors)}`);
  };
  const settle = () => new Promise((r) => setTimeout(r, 1_500)); // the audit batch and the outbox relay finish
  const ids: string[] = server.info.ids;
  const prefixes = searchPrefixes(50);
  const kinds: [string, (i: number) => string][] = [
    ['patient(id)', (i) => patientReadBody(ids[i % ids.length]!)],
    ['createPatient', (i) => patientCreateBody(500_000 + i)],
    ['patients(search, 20)', (i) => patientSearchBody(prefixes[i % prefixes.length]!)],
  ];
  const N = Number(process.env.BENCH_STATEMENT_REQUESTS ?? 200);
  try {
    for (const [, body] of kinds) for (let i = 0; i < 20; i++) await post(body(i + 1_000));
    await settle();
    for (const [label, body] of kinds) {
      proxy.take();
      for (let i = 0; i < N; i++) await post(body(i));
      await settle();
      const c = proxy.take();
      const per = (x: number) => (x / N).toFixed(2);
      console.log(`\n## ${label}: per request (${N} requests, one at a time)`);
      console.log(`statements ${per(c.statements)} · BEGIN ${per(c.begins)} · COMMIT ${per(c.commits)} · ROLLBACK ${per(c.rollbacks)} · client writes ${per(c.roundTrips)}`);
      for (const [text, n] of [...c.byText].sort((a, b) => b[1] - a[1]).slice(0, 15)) console.log(`  ${per(n).padStart(6)}  ${text}`);
    }
  } finally {
    await server.stop();
    await proxy.close();
  }
}
