import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError, ErrorCode } from '../../src/platform/errors.js';
import type { ModuleManifest } from '../../src/schema/index.js';
import { startTestApp, type TestApp } from '../helpers/app.js';

/** A fixture module whose fields fail in the ways real code can. */
const failing: ModuleManifest = {
  name: 'failing',
  phase: 0,
  description: 'test fixture',
  dependsOn: [],
  schema: (builder) => {
    builder.queryField('boom', (t) =>
      t.string({
        authScopes: { public: true },
        resolve: () => {
          throw new Error('relation "patients" does not exist: SELECT ssn FROM patients WHERE ssn = \'123-45-6789\'');
        },
      }),
    );
    builder.queryField('typed', (t) =>
      t.string({
        authScopes: { public: true },
        resolve: () => {
          throw new AppError(ErrorCode.CONFLICT, 'Version mismatch');
        },
      }),
    );
    builder.queryField('sqlError', (t) =>
      t.string({
        authScopes: { public: true },
        resolve: async (_r, _a, ctx) => {
          const db = await ctx.db();
          await db.execute('select * from no_such_table_for_secret_ssn');
          return 'unreachable';
        },
      }),
    );
    builder.queryField('echoDate', (t) =>
      t.string({
        authScopes: { public: true },
        args: { d: t.arg({ type: 'Date', required: true }) },
        resolve: (_r, args) => args.d,
      }),
    );
    interface TreeNode {
      id: number;
    }
    const Tree = builder.objectRef<TreeNode>('FixtureTree');
    Tree.implement({
      fields: (t) => ({
        id: t.exposeInt('id'),
        child: t.field({ type: Tree, resolve: (n) => ({ id: n.id + 1 }) }),
      }),
    });
    builder.queryField('tree', (t) => t.field({ type: Tree, authScopes: { public: true }, resolve: () => ({ id: 0 }) }));
    const Color = builder.enumType('FixtureColor', { values: ['RED', 'GREEN'] as const });
    builder.queryField('color', (t) =>
      t.string({ authScopes: { public: true }, args: { c: t.arg({ type: Color, required: true }) }, resolve: (_r, a) => a.c }),
    );
  },
};

let t: TestApp;
beforeAll(async () => {
  t = await startTestApp({ modules: [failing] });
});
afterAll(async () => {
  await t?.close();
});

async function post(body: string | Buffer, headers: Record<string, string> = { 'content-type': 'application/json' }) {
  const res = await fetch(`${t.url}/graphql`, { method: 'POST', headers, body });
  const text = await res.text();
  return { status: res.status, text, json: JSON.parse(text) as { errors?: { message: string; extensions?: Record<string, unknown> }[]; data?: unknown } };
}

function codeOf(r: { json: { errors?: { extensions?: Record<string, unknown> }[] } }) {
  return r.json.errors?.[0]?.extensions?.code;
}

describe('bad input gets a 4xx or a typed GraphQL error, and the server keeps serving', () => {
  it('malformed JSON', async () => {
    const r = await post('{"query": "{ serverInfo { version } }"');
    expect(r.status).toBe(400);
    expect(codeOf(r)).toBe('BAD_REQUEST');
    expect(r.text).not.toMatch(/at .*\.js|stack/i);
  });

  it('unknown field, without schema suggestions', async () => {
    const r = await post(JSON.stringify({ query: '{ serverInf { version } }' }));
    expect(r.status).toBe(400);
    expect(codeOf(r)).toBe('GRAPHQL_VALIDATION_FAILED');
    expect(r.text).not.toContain('Did you mean');
  });

  it('invalid enum value in a variable does not suggest values', async () => {
    const r = await post(JSON.stringify({ query: 'query($c: FixtureColor!) { color(c: $c) }', variables: { c: 'REDD' } }));
    expect(r.status).toBe(400);
    expect(codeOf(r)).toBe('BAD_USER_INPUT');
    expect(r.text).not.toContain('Did you mean');
    expect(r.text).not.toContain('RED');
  });

  it('an invalid variable value is not echoed back (it may be PHI)', async () => {
    const r = await post(JSON.stringify({ query: 'query($d: Date!) { echoDate(d: $d) }', variables: { d: '123-45-6789' } }));
    expect(r.status).toBe(400);
    expect(codeOf(r)).toBe('BAD_USER_INPUT');
    expect(r.text).not.toContain('123-45-6789');
  });

  it('depth bomb', async () => {
    const depth = (n: number) => `{ tree { ${'child { '.repeat(n)}id${' }'.repeat(n)} } }`;
    expect((await post(JSON.stringify({ query: depth(5) }))).status).toBe(200);
    const r = await post(JSON.stringify({ query: depth(30) }));
    expect(r.status).toBe(400);
    expect(codeOf(r)).toBe('QUERY_TOO_COMPLEX');
  });

  it('alias bomb', async () => {
    const aliases = Array.from({ length: 200 }, (_, i) => `a${i}: serverInfo { version }`).join(' ');
    const r = await post(JSON.stringify({ query: `{ ${aliases} }` }));
    expect(r.status).toBe(400);
    expect(codeOf(r)).toBe('QUERY_TOO_COMPLEX');
  });

  it('directive bomb', async () => {
    const r = await post(JSON.stringify({ query: `{ serverInfo ${'@include(if: true) '.repeat(50)} { version } }` }));
    expect(r.status).toBe(400);
    expect(codeOf(r)).toBe('QUERY_TOO_COMPLEX');
  });

  it('a token bomb is refused at parse time', async () => {
    const r = await post(JSON.stringify({ query: `{ ${'serverInfo '.repeat(6_000)} }` }));
    expect(r.status).toBe(400);
    expect(codeOf(r)).toBe('GRAPHQL_PARSE_FAILED');
  });

  it('10,000-deep nesting is refused before parsing, in the query and in the variables', async () => {
    const deep = `{ ${'a { '.repeat(10_000)}b${' }'.repeat(10_000)} }`;
    const r = await post(JSON.stringify({ query: deep }));
    expect(r.status).toBe(400);
    expect(codeOf(r)).toBe('QUERY_TOO_COMPLEX');
    const deepJson = `{"query":"{ serverInfo { version } }","variables":{"v":${'['.repeat(10_000)}${']'.repeat(10_000)}}}`;
    const r2 = await post(deepJson);
    expect(r2.status).toBe(400);
    expect(codeOf(r2)).toBe('BAD_USER_INPUT');
  });

  it('text/plain POST (CSRF simple request) is blocked', async () => {
    const r = await post(JSON.stringify({ query: '{ serverInfo { version } }' }), { 'content-type': 'text/plain' });
    expect(r.status).toBe(400);
    expect(r.text).toContain('Cross-Site Request Forgery');
  });

  it('form-encoded POST is refused with 415', async () => {
    const r = await post('query=%7B%20serverInfo%20%7B%20version%20%7D%20%7D', { 'content-type': 'application/x-www-form-urlencoded' });
    expect(r.status).toBe(415);
    expect(codeOf(r)).toBe('BAD_REQUEST');
  });

  it('a 10 MB body is refused with 413', async () => {
    const big = JSON.stringify({ query: '{ serverInfo { version } }', variables: { pad: 'x'.repeat(10 * 1024 * 1024) } });
    const r = await post(big);
    expect(r.status).toBe(413);
    expect(codeOf(r)).toBe('PAYLOAD_TOO_LARGE');
  });

  it('batched requests are refused', async () => {
    const r = await post(JSON.stringify([{ query: '{ serverInfo { version } }' }, { query: '{ serverInfo { version } }' }]));
    expect(r.status).toBe(400);
  });

  it('a request without a Host header gets 400, not 500', async () => {
    const { port } = new URL(t.url);
    const raw = await new Promise<string>((resolve, reject) => {
      const s = net.connect(Number(port), '127.0.0.1', () => {
        s.write('POST /graphql HTTP/1.0\r\ncontent-type: application/json\r\ncontent-length: 2\r\n\r\n{}');
      });
      let out = '';
      s.on('data', (d) => (out += d));
      s.on('end', () => resolve(out));
      s.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.[01] 400/);
  });

  it('unknown routes get a JSON 404', async () => {
    const r = await fetch(`${t.url}/nope`);
    expect(r.status).toBe(404);
    expect(((await r.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code).toBe('NOT_FOUND');
  });

  it('typed errors keep their code and message', async () => {
    const r = await post(JSON.stringify({ query: '{ typed }' }));
    expect(codeOf(r)).toBe('CONFLICT');
    expect(r.json.errors?.[0]?.message).toBe('Version mismatch');
  });

  it('unexpected errors are masked with a request id, logged once, without SQL or values', async () => {
    const before = t.logs.length;
    const res = await fetch(`${t.url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', 'x-request-id': 'req-boom-1' },
      body: JSON.stringify({ query: '{ boom }' }),
    });
    const text = await res.text();
    const body = JSON.parse(text) as { errors: { message: string; extensions: Record<string, unknown> }[] };
    expect(body.errors[0]!.message).toBe('Internal server error');
    expect(body.errors[0]!.extensions).toEqual({ code: 'INTERNAL_SERVER_ERROR', requestId: 'req-boom-1' });
    expect(text).not.toMatch(/SELECT|patients|123-45-6789|stack/i);
    const logged = t.logs.slice(before).filter((l) => l.msg === 'unexpected GraphQL error' && l.reqId === 'req-boom-1');
    expect(logged).toHaveLength(1);
    expect(t.logText()).not.toContain('123-45-6789');
    expect(t.logText()).not.toContain('SELECT ssn');
  });

  it('database errors are masked too', async () => {
    const r = await post(JSON.stringify({ query: '{ sqlError }' }));
    expect(codeOf(r)).toBe('INTERNAL_SERVER_ERROR');
    expect(r.text).not.toMatch(/no_such_table|relation|select/i);
    expect(t.logText()).not.toContain('no_such_table_for_secret_ssn');
  });

  it('still serves after all of the above', async () => {
    const r = await t.gql<{ serverInfo: { version: string } }>('{ serverInfo { version } }');
    expect(r.status).toBe(200);
    expect(r.body.data?.serverInfo.version).toBeTruthy();
  });
});
