import type { FastifyRequest } from 'fastify';
import { AppError, ErrorCode, notFound } from '../../platform/errors.js';
import { defineRoute } from '../../platform/scope/index.js';
import type { ModuleDeps, Principal } from '../../schema/index.js';
import { TELEHEALTH, type TelehealthInstance } from './common.js';
import { applyWebhook, lookupRoom, roomOfEvent } from './video.js';

/**
 * LiveKit webhooks: `POST /telehealth/livekit/webhook`, body
 * `application/webhook+json` kept raw, `Authorization` a JWT signed with the
 * API secret whose sha256 claim is the body's digest. The module's
 * authenticate hook verifies it with the SDK's WebhookReceiver (a bad
 * signature is 401 and nothing runs) and turns the room into its tenant
 * (an unknown room is 404); the route then runs in that tenant's scope as
 * the system principal `system:livekit-webhook`, which holds only
 * telehealth:webhook. Not idempotent by key: the event id deduplicates.
 */
export const WEBHOOK_PATH = '/telehealth/livekit/webhook';
export const WEBHOOK_PERMISSION = 'telehealth:webhook';
export const WEBHOOK_CONTENT_TYPE = 'application/webhook+json';

const signatureRefused = () => new AppError(ErrorCode.UNAUTHENTICATED, 'The webhook signature is not valid');

function rawBody(req: FastifyRequest): string {
  if (typeof req.body !== 'string') throw new AppError(ErrorCode.BAD_REQUEST, `A webhook is sent as ${WEBHOOK_CONTENT_TYPE}`);
  return req.body;
}

/** The manifest's authenticate hook: undefined for every other request. */
export async function authenticateWebhook(req: FastifyRequest, deps: ModuleDeps): Promise<Principal | undefined> {
  if (req.routeOptions?.url !== WEBHOOK_PATH || req.method !== 'POST') return undefined;
  const inst = deps.instances.get<TelehealthInstance>(TELEHEALTH);
  const auth = req.headers.authorization;
  let event;
  try {
    event = await inst.video.receiveWebhook(rawBody(req), typeof auth === 'string' ? auth : undefined);
  } catch (e) {
    if (e instanceof AppError) throw e;
    throw signatureRefused();
  }
  const room = roomOfEvent(event);
  const rows = room ? await deps.database.sql<{ tenant_id: string }[]>`select tenant_id from telehealth_room_lookup(${room})` : [];
  if (!rows[0]) throw notFound('Room');
  // a system principal of the room's tenant (the Principal type names users and API keys; the scope accepts system)
  return { kind: 'system', id: 'system:livekit-webhook', tenantId: rows[0].tenant_id, roles: [], permissions: new Set([WEBHOOK_PERMISSION]) } as unknown as Principal;
}

export const webhookRoute = defineRoute({
  method: 'POST',
  url: WEBHOOK_PATH,
  permission: WEBHOOK_PERMISSION,
  idempotent: false,
  operationName: 'livekit:webhook',
  handler: async (scope, req) => {
    const inst = scope.module<TelehealthInstance>(TELEHEALTH);
    // verified again on the raw body (authenticate already refused a bad signature): the event applied is the one signed
    const auth = req.headers.authorization;
    const event = await inst.video.receiveWebhook(rawBody(req), typeof auth === 'string' ? auth : undefined).catch(() => {
      throw signatureRefused();
    });
    const room = roomOfEvent(event);
    if (!room || !(await lookupRoom(await scope.db(), room))) throw notFound('Room');
    return applyWebhook(scope, event);
  },
});
