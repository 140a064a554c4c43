import type { ApolloServerPlugin, BaseContext, GraphQLRequestContext } from '@apollo/server';
import type { Logger } from '../logger.js';
import { AppError, ErrorCode } from '../errors.js';
import { dbAppError } from '../db/errors.js';
import { beginAuditRequest, writeAuditRequest, type AuditableContext } from './request.js';
import { isPurposeOfUse, type PurposeOfUse } from './types.js';
import type { AuditWriter } from './writer.js';

export const PURPOSE_OF_USE_HEADER = 'x-purpose-of-use';

/**
 * Writes each GraphQL request's audit trail when execution ends, before any
 * willSendResponse hook runs (so before the transaction plugin commits and
 * before a byte of the response is sent):
 *  - a mutation that succeeded: its events go into the request transaction
 *    as its last statements, sent with COMMIT (RequestTransaction.beforeCommit;
 *    saved, or not, together with the change: if they fail, the commit fails
 *    and the transaction plugin answers AUDIT_UNAVAILABLE);
 *  - everything else (queries, denials, failed mutations): group-committed
 *    through the AuditWriter, awaited.
 * If the trail cannot be written the response carries no data, only an
 * AUDIT_UNAVAILABLE error (HTTP 503), and a mutation rolls back.
 */
export function auditApolloPlugin<C extends BaseContext & AuditableContext>(writer: AuditWriter, log: Logger): ApolloServerPlugin<C> {
  return {
    async requestDidStart({ contextValue, request }) {
      const raw = request.http?.headers.get(PURPOSE_OF_USE_HEADER)?.trim().toUpperCase();
      const badPurpose = !!raw && !isPurposeOfUse(raw);
      const audit = beginAuditRequest(contextValue, writer, raw && !badPurpose ? (raw as PurposeOfUse) : undefined);
      let executed = false;
      return {
        async didResolveOperation({ operationName }) {
          audit.operationName = operationName ?? null;
          if (badPurpose) {
            throw new AppError(ErrorCode.BAD_USER_INPUT, 'X-Purpose-Of-Use is not a known purpose of use', {
              field: 'X-Purpose-Of-Use',
              http: { status: 400 },
            });
          }
        },
        // refused before execution (e.g. by the input rules) with events recorded, such as the refusal itself:
        // written before the response like any denial (nothing was disclosed, so a failure is only logged)
        async didEncounterErrors() {
          if (executed || audit.isEmpty) return;
          await writeAuditRequest(audit, false).catch((e: { code?: string; name?: string }) =>
            log.error({ reqId: contextValue.requestId, pgCode: e?.code, errorName: e?.name }, 'audit write failed'),
          );
        },
        async executionDidStart(rc: GraphQLRequestContext<C>) {
          executed = true;
          return {
            async executionDidEnd() {
              if (audit.isEmpty) return;
              const body = rc.response.body;
              const result = body?.kind === 'single' ? body.singleResult : body?.kind === 'incremental' ? body.initialResult : undefined;
              const commitWithRequest = rc.operation?.operation === 'mutation' && !result?.errors?.length;
              try {
                await writeAuditRequest(audit, commitWithRequest);
              } catch (e) {
                const err = e as { code?: string; name?: string };
                log.error({ reqId: contextValue.requestId, pgCode: err?.code, errorName: err?.name }, 'audit write failed: response withheld');
                // the whole database is down, not just the audit log: the client gets the outage's code
                const down = e instanceof AppError ? e : dbAppError(e);
                const outage = down?.code === ErrorCode.DATABASE_UNAVAILABLE ? down : undefined;
                if (result) {
                  result.data = null;
                  result.errors = [
                    {
                      message: outage?.message ?? 'The audit log is unavailable; no data was returned',
                      extensions: { code: outage?.code ?? ErrorCode.AUDIT_UNAVAILABLE, requestId: contextValue.requestId },
                    },
                  ];
                }
                rc.response.http.status = 503;
              }
            },
          };
        },
      };
    },
  };
}
