import { randomBytes } from 'node:crypto';
import { AppError, ErrorCode } from '../../../platform/errors.js';
import { buildScriptMessage, parseScriptMessage, type ErrorMessage, type ScriptHeader, type ScriptMessage, type StatusMessage, type VerifyMessage } from '../script/index.js';
import { checkScriptSignature, signScriptBody, SIGNATURE_HEADER, type SignatureProblem } from './signature.js';

/**
 * The pharmacy-network adapter: how Carebase hands a SCRIPT message to the
 * network and how it authenticates what the network sends back.
 *
 * Contract (what a real network's implementation, e.g. Surescripts, must do):
 * - `send(message)` transmits one validated SCRIPT message and resolves with
 *   the network's synchronous answer: a Status (accepted / delivered), a
 *   Verify (a response was received and processed) or an Error (refused,
 *   with its code) whose RelatesToMessageID is the sent MessageID. It throws
 *   PROVIDER_UNAVAILABLE when no answer came (timeout, connection refused,
 *   5xx, a refused credential): the caller changes nothing it cannot retry.
 * - `authenticateInbound(rawBody, headers)` accepts or refuses a message the
 *   network posted to Carebase (`POST /eprescribing/network/inbound`) before
 *   anything reads it. The built-in transport signs with HMAC-SHA256
 *   (signature.ts); Surescripts authenticates its HTTPS posts with mutual
 *   TLS and a per-partner password instead, checked here.
 * - Asynchronous messages from pharmacies (RxFill, RxRenewalRequest,
 *   RxChangeRequest, CancelRxResponse) arrive on the inbound route; the
 *   route answers each with a Status (or an Error) in the HTTP response.
 */
export interface PharmacyNetwork {
  /** 'simulator' (the in-repo pharmacy, development and tests) or 'http' (a network URL) */
  readonly kind: 'simulator' | 'http';
  send(message: ScriptMessage): Promise<NetworkExchange>;
  authenticateInbound(rawBody: string, headers: Record<string, string | string[] | undefined>): InboundRefusal | undefined;
  close(): Promise<void>;
}

export type InboundRefusal = SignatureProblem;

export interface NetworkExchange {
  /** the XML that was sent */
  sentXml: string;
  /** the network's synchronous answer */
  answer: StatusMessage | ErrorMessage | VerifyMessage;
  answerXml: string;
}

/** A SCRIPT MessageID: 32 hex characters (the standard allows 35). */
export const newMessageId = (): string => randomBytes(16).toString('hex');

/** The header of an answer to `to` (Status / Error / Verify, and the *Response messages). */
export function answerHeader(to: ScriptHeader, messageId = newMessageId(), now = new Date()): ScriptHeader {
  return {
    to: to.from,
    from: to.to,
    messageId,
    relatesToMessageId: to.messageId,
    sentTime: now.toISOString(),
    ...(to.rxReferenceNumber ? { rxReferenceNumber: to.rxReferenceNumber } : {}),
    ...(to.prescriberOrderNumber ? { prescriberOrderNumber: to.prescriberOrderNumber } : {}),
  };
}

export const unavailable = (reason: string) => new AppError(ErrorCode.PROVIDER_UNAVAILABLE, 'The pharmacy network did not answer; nothing was sent', { reason });

/**
 * SCRIPT over HTTP: `POST <url>` with the XML (Content-Type
 * application/xml) and the HMAC signature header; the answer is the
 * network's Status / Verify / Error XML. The built-in simulator and any
 * network speaking this transport use it.
 */
export class HttpPharmacyNetwork implements PharmacyNetwork {
  readonly kind: 'simulator' | 'http';
  private readonly secrets: string[];

  constructor(
    private readonly opts: {
      url: string;
      secrets: readonly string[];
      kind?: 'simulator' | 'http';
      timeoutMs?: number;
      now?: () => number;
    },
  ) {
    if (!opts.secrets.length) throw new Error('pharmacy network: a shared secret is required');
    this.secrets = [...opts.secrets];
    this.kind = opts.kind ?? 'http';
  }

  get url(): string {
    return this.opts.url;
  }

  async send(message: ScriptMessage): Promise<NetworkExchange> {
    const sentXml = buildScriptMessage(message); // ScriptValidationError: nothing leaves
    const now = this.opts.now?.() ?? Date.now();
    let res: Response;
    let body: string;
    try {
      res = await fetch(this.opts.url, {
        method: 'POST',
        headers: {
          'content-type': 'application/xml; charset=utf-8',
          accept: 'application/xml',
          [SIGNATURE_HEADER]: signScriptBody(sentXml, this.secrets[0]!, now),
        },
        body: sentXml,
        signal: AbortSignal.timeout(this.opts.timeoutMs ?? 15_000),
      });
      body = await res.text();
    } catch {
      throw unavailable('unreachable');
    }
    if (res.status === 401 || res.status === 403) throw unavailable('credentials_refused');
    if (res.status >= 500 || res.status === 429) throw unavailable(`http_${res.status}`);
    let answer: ScriptMessage;
    try {
      answer = parseScriptMessage(body);
    } catch {
      throw unavailable('answer_not_script');
    }
    if (answer.type !== 'Status' && answer.type !== 'Error' && answer.type !== 'Verify') throw unavailable('answer_not_status');
    if (answer.header.relatesToMessageId !== message.header.messageId) throw unavailable('answer_unrelated');
    return { sentXml, answer, answerXml: body };
  }

  authenticateInbound(rawBody: string, headers: Record<string, string | string[] | undefined>): InboundRefusal | undefined {
    return checkScriptSignature(rawBody, headers[SIGNATURE_HEADER], this.secrets, this.opts.now?.() ?? Date.now());
  }

  async close(): Promise<void> {}
}
