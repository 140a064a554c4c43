/**
 * The baseline of DESIGN.md: a static-resolver Apollo Server on the same
 * stack (Fastify 5 + @as-integrations/fastify), no database, no plugins.
 * Prints `BENCH_URL <url>` when listening.
 */
import { ApolloServer } from '@apollo/server';
import fastifyApollo, { fastifyApolloDrainPlugin } from '@as-integrations/fastify';
import Fastify from 'fastify';

const typeDefs = `
  type ServerInfo { version: String! enabledModules: [String!]! phase: Int! }
  type Query { serverInfo: ServerInfo! }
`;
const resolvers = { Query: { serverInfo: () => ({ version: '0.0.0', enabledModules: [], phase: 0 }) } };

const app = Fastify();
const apollo = new ApolloServer({ typeDefs, resolvers, plugins: [fastifyApolloDrainPlugin(app)] });
await apollo.start();
await app.register(fastifyApollo(apollo));
await app.listen({ port: 0, host: '127.0.0.1' });
const addr = app.server.address();
console.log(`BENCH_URL http://127.0.0.1:${typeof addr === 'object' && addr ? addr.port : 0}`);
process.on('SIGTERM', () => void app.close().then(() => process.exit(0)));
