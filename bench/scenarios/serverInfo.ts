import { compare } from '../lib.js';

const BODY = JSON.stringify({ query: 'query Info { serverInfo { version } }' });

/** serverInfo through the full Carebase stack vs bare Apollo on the same stack. */
export async function run() {
  return compare([
    { name: 'bare Apollo (static resolver)', script: 'bench/servers/bare-apollo.ts', path: '/graphql', body: BODY },
    { name: 'Carebase serverInfo', script: 'bench/servers/carebase.ts', path: '/graphql', body: BODY },
  ]);
}
