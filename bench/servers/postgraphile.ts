/**
 * The peer of issue 19: PostGraphile 5 (postgraphile/presets/amber, grafserv)
 * over a plain `patients` table of Carebase's shape — no auth, no RLS, no
 * audit, no encryption — in its own database on the PostgreSQL that the
 * Carebase bench server uses.
 *
 * Env:
 *   PGL_OWNER_URL    owner URL of that PostgreSQL (the seeded server's BENCH_INFO `pg.url`; else DATABASE_URL)
 *   PGL_SOCKET_DIR   connect the pool through the Unix socket in this directory, as Carebase's pools do on
 *                    the embedded server (empty: TCP, as Carebase on DATABASE_URL)
 *   PGL_DATABASE     database to (re)create the table in, default carebase_bench_postgraphile (if the owner
 *                    may not create databases: a schema of that name in the owner's database)
 *   BENCH_PATIENTS   rows seeded (default 10,000); the table is dropped and re-seeded at every start
 *   DATABASE_POOL_MAX  pool size, default 20 (Carebase's request pool default)
 *   BENCH_PGL_HTTP   fastify (default: grafserv/fastify/v5, the HTTP framework of Carebase and of the
 *                    bare Apollo baselines) or node (grafserv/node on node:http, what the postgraphile CLI serves)
 *
 * Production settings: no GraphiQL (nor its GET route), no watch mode, no explain, GraphQL over POST only.
 *
 * Prints `BENCH_INFO <json>` ({ ids (up to 2,000), tenantId, database, schema, seedMs, pg: { url, database } })
 * and then `BENCH_URL <url>`. The GraphQL endpoint is POST /graphql.
 */
import http from 'node:http';
import Fastify from 'fastify';
import pg from 'pg';
import postgres from 'postgres';
import { postgraphile } from 'postgraphile';
import { PostGraphileAmberPreset } from 'postgraphile/presets/amber';
import { makePgService } from 'postgraphile/adaptors/pg';

const ownerUrl = process.env.PGL_OWNER_URL || process.env.DATABASE_URL;
if (!ownerUrl) throw new Error('postgraphile bench server: PGL_OWNER_URL (or DATABASE_URL) is required');
const socketDir = process.env.PGL_SOCKET_DIR || null;
const name = process.env.PGL_DATABASE ?? 'carebase_bench_postgraphile';
if (!/^[a-z_][a-z0-9_]*$/.test(name)) throw new Error(`PGL_DATABASE must be a plain identifier: ${name}`);
const count = Number(process.env.BENCH_PATIENTS ?? 10_000);
const poolMax = Number(process.env.DATABASE_POOL_MAX ?? 20);
/** the one tenant of the table (a column of the same shape; nothing checks it) */
const TENANT = '00000000-0000-4000-8000-000000000001';

// ---------------------------------------------------------------- database: own database (or schema), plain table

const started = Date.now();
let dbUrl = ownerUrl;
let schema = 'public';
{
  const admin = postgres(ownerUrl, { max: 1, onnotice: () => undefined });
  try {
    const [exists] = await admin`select 1 from pg_database where datname = ${name}`;
    if (!exists) await admin.unsafe(`create database ${name}`);
    const u = new URL(ownerUrl);
    u.pathname = `/${name}`;
    dbUrl = u.toString();
  } catch (e) {
    // no CREATEDB: a schema of the owner's database instead
    process.stderr.write(`postgraphile bench: cannot create database ${name} (${(e as Error).message}); using schema ${name}\n`);
    schema = name;
  } finally {
    await admin.end({ timeout: 5 });
  }
}

const setup = postgres(dbUrl, { max: 1, onnotice: () => undefined });
await setup.begin(async (tx) => {
  await tx.unsafe(`create schema if not exists ${schema}`);
  await tx.unsafe(`set local search_path = ${schema}, public`);
  // the search keys are generated columns over the same function as Carebase's (unaccent is a trusted extension)
  await tx.unsafe(`create extension if not exists unaccent with schema public`);
  // (in a schema PostGraphile does not expose)
  await tx.unsafe(`create schema if not exists bench_private`);
  await tx.unsafe(`
    create or replace function bench_private.bench_search_norm(value text) returns text
      language sql immutable parallel safe strict
      return regexp_replace(lower(public.unaccent('public.unaccent'::regdictionary, value)), '[^[:alnum:]]+', '', 'g')`);
  await tx.unsafe(`drop table if exists ${schema}.patients`);
  await tx.unsafe(`drop sequence if exists ${schema}.patients_mrn_seq`);
  await tx.unsafe(`create sequence ${schema}.patients_mrn_seq`);
  // the columns, checks and indexes of Carebase's patients (migrations/*_patients), without RLS, the tenants/users
  // foreign keys or triggers; the MRN comes from a sequence (Carebase: a per-tenant counter + Luhn digit)
  await tx.unsafe(`
    create table ${schema}.patients (
      id uuid primary key default gen_random_uuid(),
      tenant_id uuid not null default '${TENANT}',
      mrn text not null default 'P' || lpad(nextval('${schema}.patients_mrn_seq')::text, 9, '0'),
      given_name text not null,
      family_name text not null,
      preferred_name text,
      given_norm text collate "C" generated always as (bench_private.bench_search_norm(given_name)) stored,
      family_norm text collate "C" generated always as (bench_private.bench_search_norm(family_name)) stored,
      date_of_birth date not null,
      sex_at_birth text,
      gender_identity text,
      email text,
      phones jsonb default '[]' not null,
      phone_digits text[] default '{}'::text[] not null,
      address jsonb,
      language text,
      emergency_contact jsonb,
      insurance jsonb,
      ssn bytea,
      ssn_last4 bytea,
      ssn_index bytea,
      status text default 'active' not null,
      deceased_date date,
      merged_into uuid,
      merged_at timestamptz,
      user_id uuid,
      version integer default 1 not null,
      created_by uuid,
      updated_by uuid,
      created_at timestamptz default now() not null,
      updated_at timestamptz default now() not null,
      constraint patients_tenant_id_id_key unique (tenant_id, id),
      constraint patients_tenant_mrn_key unique (tenant_id, mrn),
      constraint patients_version_check check (version > 0),
      constraint patients_merged_check check ((status = 'merged') = (merged_into is not null)),
      constraint patients_deceased_check check (deceased_date is null or status in ('deceased', 'merged')),
      constraint patients_ssn_check check ((ssn is null) = (ssn_index is null) and (ssn is null) = (ssn_last4 is null)),
      constraint patients_merged_into_fkey foreign key (tenant_id, merged_into) references ${schema}.patients (tenant_id, id)
    )`);
  for (const ddl of [
    `create unique index patients_tenant_user_key on ${schema}.patients (tenant_id, user_id) where user_id is not null`,
    `create index patients_name_idx on ${schema}.patients (tenant_id, family_norm, given_norm, id)`,
    `create index patients_given_name_idx on ${schema}.patients (tenant_id, given_norm, family_norm, id)`,
    `create index patients_dob_idx on ${schema}.patients (tenant_id, date_of_birth, family_norm, given_norm, id)`,
    `create index patients_ssn_index_idx on ${schema}.patients (tenant_id, ssn_index) where ssn_index is not null`,
    `create index patients_phone_digits_idx on ${schema}.patients using gin (phone_digits)`,
    `create index patients_merged_into_idx on ${schema}.patients (tenant_id, merged_into) where merged_into is not null`,
  ])
    await tx.unsafe(ddl);
  // seeded like bench/scenarios/patients.ts (names, dates, one mobile phone, an SSN on every row), in plain bytes
  await tx.unsafe(
    `
    insert into ${schema}.patients (given_name, family_name, date_of_birth, phones, phone_digits, ssn, ssn_last4, ssn_index)
    select g, f, make_date(1930 + i % 80, i % 12 + 1, i % 28 + 1),
           jsonb_build_array(jsonb_build_object('use', 'mobile', 'number', '+' || pd)), array[pd],
           convert_to(s, 'UTF8'), convert_to(right(s, 4), 'UTF8'), sha256(convert_to(s, 'UTF8'))
      from (select i,
                   (array['Ana','Álvaro','Beatriz','Bruno','Carla','Cécile','Dario','Elena','Émile','Farah'])[i % 10 + 1] as g,
                   initcap(substr(md5(i::text), 1, 3) || (array['bé','dó','ìn','nø','sán'])[i % 5 + 1] || substr(md5(i::text), 4, 3)) as f,
                   '1212' || lpad((5550000 + i % 1000000)::text, 7, '0') as pd,
                   lpad((i % 899 + 1)::text, 3, '0') || lpad((i % 99 + 1)::text, 2, '0') || lpad((i % 9999 + 1)::text, 4, '0') as s
              from generate_series(0, $1::int - 1) as i) as v`,
    [count],
  );
});
await setup.unsafe(`analyze ${schema}.patients`);
const idRows = await setup.unsafe<{ id: string }[]>(`select id from ${schema}.patients order by random() limit 2000`);
await setup.end({ timeout: 5 });
const seedMs = Date.now() - started;

// ---------------------------------------------------------------- PostGraphile

const dbu = new URL(dbUrl);
const pool = new pg.Pool({
  connectionString: dbUrl,
  ...(socketDir ? { host: socketDir } : {}),
  max: poolMax,
  application_name: 'postgraphile-bench',
});
// an idle connection closed by the server (e.g. PostgreSQL stopping at the end of a run) must not crash the process
pool.on('error', (e) => process.stderr.write(`postgraphile bench: pool: ${e.message}\n`));

const preset: GraphileConfig.Preset = {
  extends: [PostGraphileAmberPreset],
  pgServices: [makePgService({ pool, schemas: [schema] })],
  grafserv: { graphiql: false, graphiqlOnGraphQLGET: false, graphqlOverGET: false, watch: false, websockets: false },
  grafast: { explain: false },
};
const pgl = postgraphile(preset);
await pgl.getSchema();

let url: string;
let close: () => Promise<void>;
if ((process.env.BENCH_PGL_HTTP ?? 'fastify') === 'node') {
  const { grafserv } = await import('postgraphile/grafserv/node');
  const serv = pgl.createServ(grafserv);
  const server = http.createServer();
  serv.addTo(server);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const addr = server.address();
  url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  close = () => new Promise((r) => server.close(() => r()));
} else {
  const { grafserv } = await import('postgraphile/grafserv/fastify/v5');
  const serv = pgl.createServ(grafserv);
  const app = Fastify();
  await serv.addTo(app);
  await app.listen({ port: 0, host: '127.0.0.1' });
  const addr = app.server.address();
  url = `http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`;
  close = () => app.close();
}

console.log(
  `BENCH_INFO ${JSON.stringify({ ids: idRows.map((r) => r.id), tenantId: TENANT, database: dbu.pathname.slice(1), schema, seedMs, pg: { url: dbUrl, database: dbu.pathname.slice(1) } })}`,
);
console.log(`BENCH_URL ${url}`);
const stop = () =>
  void close()
    .then(() => pgl.release())
    .then(() => pool.end())
    .finally(() => process.exit(0));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
