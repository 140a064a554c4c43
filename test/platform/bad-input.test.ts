import net from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError, ErrorCode } from '../../src/platform/errors.js';
import type { ModuleManifest } from '../../src/schema/index.js';
import { startTestApp, type TestApp } from '../helpers/app.js';

let resolverCalls = 0;

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
    // every kind of string input, to show the shared input rule refuses NUL / unpaired surrogates before a resolver runs
    const Inner = builder.inputType('FixtureInner', { fields: (t) => ({ code: t.id() }) });
    const Input = builder.inputType('FixtureInput', {
      fields: (t) => ({ name: t.string(), tags: t.stringList(), inner: t.field({ type: Inner }) }),
    });
    builder.queryField('fixtureEcho', (t) =>
      t.string({
        authScopes: { public: true },
        args: { s: t.arg.string(), id: t.arg.id(), d: t.arg({ type: 'Date' }), input: t.arg({ type: Input }), list: t.arg.stringList() },
        resolve: () => {
          resolverCalls++;
          return 'ok';
        },
      }),
    );
    builder.mutationField('fixtureSave', (t) =>
      t.string({
        authScopes: { public: true },
        args: { input: t.arg({ type: Input, required: true }) },
        resolve: () => {
          resolverCalls++;
          return 'saved';
        },
      }),
    );
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

/** Sends raw bytes over TCP and returns everything the server answers before closing. */
function rawHttp(request: string): Promise<string> {
  const { port } = new URL(t.url);
  return new Promise<string>((resolve, reject) => {
    const s = net.connect(Number(port), '127.0.0.1', () => s.write(request));
    let out = '';
    s.on('data', (d) => (out += d));
    s.on('end', () => resolve(out));
    // the server closes right after answering a request it refused; what it sent is the answer
    s.on('error', (e) => (out ? resolve(out) : reject(e)));
  });
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

  describe('NUL bytes and unpaired surrogates in any string input are BAD_USER_INPUT before a resolver runs', () => {
    const NUL = 'a\u0000b';
    const LONE = ['\ud800', 'x\udc00y'];
    const refused = async (body: Record<string, unknown>) => {
      const before = resolverCalls;
      const r = await post(JSON.stringify(body));
      expect(r.status, r.text).toBe(400);
      expect(r.json.errors?.map((e) => e.extensions?.code)).toEqual(['BAD_USER_INPUT']);
      expect(r.text).not.toContain('INTERNAL_SERVER_ERROR');
      expect(resolverCalls).toBe(before);
      return r;
    };

    it('in variables: String, ID, a custom scalar, a nested input object, a list, an object key', async () => {
      const q = 'query($s: String, $id: ID, $d: Date, $in: FixtureInput, $l: [String!]) { fixtureEcho(s: $s, id: $id, d: $d, input: $in, list: $l) }';
      for (const bad of [NUL, ...LONE]) {
        for (const variables of [
          { s: bad },
          { id: bad },
          { d: bad },
          { in: { name: bad } },
          { in: { inner: { code: bad } } },
          { in: { tags: ['ok', bad] } },
          { l: ['ok', bad] },
          { in: { [bad]: 'x' } },
        ]) {
          await refused({ query: q, variables });
        }
      }
      const saved = await refused({ query: 'mutation($in: FixtureInput!) { fixtureSave(input: $in) }', variables: { in: { tags: [NUL] } } });
      expect(saved.json.errors?.[0]?.extensions?.field).toBe('$in.tags.0');
      // the path names the argument, never a client-chosen key (it may be a value)
      const keyed = await refused({ query: q, variables: { in: { '123-45-6789': NUL } } });
      expect(keyed.json.errors?.[0]?.extensions?.field).toBe('$in.*');
      expect(keyed.text).not.toContain('123-45-6789');
    });

    it('in literals: String, ID, a nested input object, a list, a variable default', async () => {
      for (const q of [
        '{ fixtureEcho(s: "a\\u0000b") }',
        '{ fixtureEcho(id: "\\u0000") }',
        '{ fixtureEcho(input: { inner: { code: "a\\u0000" } }) }',
        '{ fixtureEcho(list: ["ok", "\\u{0}"]) }',
        'mutation { fixtureSave(input: { name: "a\\u0000b" }) }',
        'query($s: String = "a\\u0000b") { fixtureEcho(s: $s) }',
      ]) {
        await refused({ query: q });
      }
      const r = await refused({ query: '{ fixtureEcho(input: { name: "\\u0000" }) }' });
      expect(r.json.errors?.[0]?.extensions?.field).toBe('fixtureEcho(input)');
    });

    it('a lone surrogate cannot even be written as a literal: GRAPHQL_PARSE_FAILED', async () => {
      for (const q of ['{ fixtureEcho(s: "\\ud800") }', '{ fixtureEcho(list: ["\ud800"]) }', '{ fixtureEcho(input: { name: "x\udc00" }) }']) {
        const r = await post(JSON.stringify({ query: q }));
        expect(r.status).toBe(400);
        expect(codeOf(r)).toBe('GRAPHQL_PARSE_FAILED');
      }
    });

    it('well-formed text (a surrogate pair, escapes, other control characters) still passes', async () => {
      const r = await post(
        JSON.stringify({
          query: 'query($in: FixtureInput) { fixtureEcho(s: "\\u{1F600} \\t", input: $in) }',
          variables: { in: { name: 'Zoë 😀\u0001', tags: ['\ud83d\ude00'] } },
        }),
      );
      expect(r.json).toEqual({ data: { fixtureEcho: 'ok' } });
    });
  });

  it('2,000-deep list and object literals (inside the token limit) are refused before parsing', async () => {
    for (const arg of [`${'['.repeat(2_000)}"x"${']'.repeat(2_000)}`, `${'{name:'.repeat(1_600)}"x"${'}'.repeat(1_600)}`]) {
      const r = await post(JSON.stringify({ query: `{ fixtureEcho(list: ${arg}) }` }));
      expect(r.status).toBe(400);
      expect(codeOf(r)).toBe('QUERY_TOO_COMPLEX');
      expect(r.text).not.toMatch(/call stack/i);
    }
    const get = await fetch(`${t.url}/graphql?query=${encodeURIComponent(`{ fixtureEcho(list: ${'['.repeat(2_000)}${']'.repeat(2_000)}) }`)}`);
    expect(get.status).toBe(400);
    expect(((await get.json()) as { errors: { extensions: { code: string } }[] }).errors[0]!.extensions.code).toBe('QUERY_TOO_COMPLEX');
  });

  it('persisted queries are not supported, with a stable code', async () => {
    const persistedQuery = { version: 1, sha256Hash: 'a'.repeat(64) };
    for (const body of [{ extensions: { persistedQuery } }, { query: '{ serverInfo { version } }', extensions: { persistedQuery } }]) {
      const r = await post(JSON.stringify(body));
      expect(r.status).toBe(200);
      expect(codeOf(r)).toBe('PERSISTED_QUERY_NOT_SUPPORTED');
    }
  });

  it('a subscription over HTTP is BAD_REQUEST', async () => {
    const r = await post(JSON.stringify({ query: 'subscription { __typename }' }));
    expect(r.status).toBe(400);
    expect(codeOf(r)).toBe('BAD_REQUEST');
  });

  it('1,000 unknown variables (top level or in an input object) get one BAD_USER_INPUT', async () => {
    const many = Object.fromEntries(Array.from({ length: 1_000 }, (_, i) => [`k${i}`, 'x']));
    for (const variables of [many, { in: many }]) {
      const r = await post(JSON.stringify({ query: 'query($in: FixtureInput) { fixtureEcho(input: $in) }', variables }));
      expect(r.status).toBe(400);
      expect(r.json.errors?.map((e) => e.extensions?.code)).toEqual(['BAD_USER_INPUT']);
    }
    // under the cap, graphql-js stops after 50 coercion errors with one of its own: coded too
    const some = Object.fromEntries(Array.from({ length: 100 }, (_, i) => [`k${i}`, 'x']));
    const r = await post(JSON.stringify({ query: 'query($in: FixtureInput) { fixtureEcho(input: $in) }', variables: { in: some } }));
    expect(r.status).toBe(400);
    expect(new Set(r.json.errors?.map((e) => e.extensions?.code))).toEqual(new Set(['BAD_USER_INPUT']));
  });

  it('1,000 aliases of __typename are QUERY_TOO_COMPLEX like any other field', async () => {
    const r = await post(JSON.stringify({ query: `{ ${Array.from({ length: 1_000 }, (_, i) => `a${i}: __typename`).join(' ')} }` }));
    expect(r.status).toBe(400);
    expect(codeOf(r)).toBe('QUERY_TOO_COMPLEX');
  });

  it('malformed HTTP, oversized URLs and bad URLs get a GraphQL-shaped coded error', async () => {
    const cases: [string, number, string][] = [
      ['GET /graphql HTTP/1.1 garbage\r\n\r\n', 400, 'BAD_REQUEST'],
      ['GET / HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n', 400, 'BAD_REQUEST'],
      // over Node's 16 KiB header limit, yet small enough to arrive whole (more unread bytes would make the close a reset)
      [`GET /graphql?query=${'a'.repeat(20_000)} HTTP/1.1\r\nHost: x\r\n\r\n`, 431, 'PAYLOAD_TOO_LARGE'],
      ['GET /%zz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n', 400, 'BAD_REQUEST'],
    ];
    for (const [request, status, code] of cases) {
      const raw = await rawHttp(request);
      expect(raw).toMatch(new RegExp(`^HTTP/1\\.1 ${status} `));
      const body = JSON.parse(raw.slice(raw.indexOf('\r\n\r\n') + 4)) as { errors: { extensions: { code: string } }[] };
      expect(body.errors[0]!.extensions.code).toBe(code);
    }
  });

  it('still serves after all of the above', async () => {
    const r = await t.gql<{ serverInfo: { version: string } }>('{ serverInfo { version } }');
    expect(r.status).toBe(200);
    expect(r.body.data?.serverInfo.version).toBeTruthy();
  });
});
