import type { ApolloServerOptions, BaseContext } from '@apollo/server';
import type { Logger } from '../logger.js';

type ApolloLogger = NonNullable<ApolloServerOptions<BaseContext>['logger']>;

/** Apollo's own fixed wording before the first ':' ("Unexpected error processing request"); the rest may be an error's text. */
const HEAD = /^([A-Za-z][A-Za-z ,.'()-]{0,99})(?::|$)/;

/**
 * Apollo's logger (by default the console, outside the JSON log): its lines go
 * to our logger with Apollo's fixed wording only, never the text that follows
 * it, which can be an error message with SQL or input values in it ("Unexpected
 * error processing request: DrizzleQueryError: Failed query: insert into ...").
 */
export function apolloLogger(log: Logger): ApolloLogger {
  const line = (level: 'debug' | 'info' | 'warn' | 'error') => (message?: unknown) => {
    const head = typeof message === 'string' ? HEAD.exec(message)?.[1] : undefined;
    log[level]({ component: 'apollo', apollo: head?.trim() ?? 'message withheld' }, 'apollo server');
  };
  return { debug: line('debug'), info: line('info'), warn: line('warn'), error: line('error') };
}
