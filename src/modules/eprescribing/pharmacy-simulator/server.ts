import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { answerHeader, newMessageId } from '../network/adapter.js';
import { checkScriptSignature, signScriptBody, SIGNATURE_HEADER } from '../network/signature.js';
import {
  buildScriptMessage,
  MAX_SCRIPT_BYTES,
  parseScriptMessage,
  ScriptParseError,
  ScriptValidationError,
  type ChangeRequestCode,
  type ErrorMessage,
  type FillStatus,
  type NewRxMessage,
  type PAQuestionSet,
  type ScriptHeader,
  type ScriptMedication,
  type ScriptMessage,
  type ScriptMessageType,
  type ScriptPharmacy,
  type StatusMessage,
  type VerifyMessage,
} from '../script/index.js';

/**
 * A local pharmacy (and the network in front of it) for development and
 * tests. It speaks the same transport as a network (SCRIPT 2017071 XML over
 * HTTP POST, Content-Type application/xml, X-Script-Signature HMAC) in both
 * directions:
 *
 * - `POST /script` takes what Carebase sends and answers synchronously:
 *   NewRx and CancelRx -> Status 010 (or Error 900 for an unknown pharmacy,
 *   a duplicate order, an unknown prescription); RxRenewalResponse and
 *   RxChangeResponse -> Verify 010. An unsigned or badly signed post is 401;
 *   XML that is not a valid SCRIPT message is 400 with an Error 900.
 * - After a CancelRx it sends a CancelRxResponse (approved unless already
 *   dispensed) to Carebase's inbound URL.
 * - `fill()`, `requestRenewal()`, `requestChange()` (or `POST
 *   /simulator/fill|renewal|change` with JSON `{ "prescriberOrderNumber" }`)
 *   make the pharmacy send RxFill, RxRenewalRequest and RxChangeRequest.
 *
 * - It is also the payer (PBM) of electronic prior authorization: a message
 *   addressed to qualifier ZZ (PAInitiationRequest, PARequest,
 *   PAAppealRequest) is answered synchronously with Status 010 (Error 900 for
 *   an unknown PA reference or case), and the payer's decision follows on the
 *   inbound URL: a PAInitiationResponse Open with the question set
 *   (`PAYER_QUESTION_SET`), then for the answers a PAResponse (rules in
 *   `decide()`: Approved, Denied, or Pended with a follow-up question set),
 *   and for an appeal a PAAppealResponse (Approved). `payerNext()` scripts the
 *   next decision instead (Closed, Denied, Pended, Approved).
 *
 * It keeps what it received in memory. Never used in production.
 */

/** The payer's first question set (PAInitiationResponse Open). */
export const PAYER_QUESTION_SET: PAQuestionSet = {
  id: 'QS-STEP-1',
  questions: [
    { id: 'Q1', text: 'Has the patient tried and failed a formulary alternative?', type: 'Select', required: true, choices: [{ id: 'yes', text: 'Yes' }, { id: 'no', text: 'No' }] },
    { id: 'Q2', text: 'Diagnosis (ICD-10-CM code)', type: 'FreeText', required: true },
    { id: 'Q3', text: 'Date the formulary alternative was started', type: 'Date', required: false },
  ],
};
/** The follow-up question set of a Pended PAResponse (Q1 yes without Q3). */
export const PAYER_FOLLOW_UP_SET: PAQuestionSet = {
  id: 'QS-STEP-2',
  questions: [{ id: 'Q4', text: 'How many days was the formulary alternative taken?', type: 'Numeric', required: true }],
};
/** Denial reason codes the simulated payer uses. */
export const PAYER_DENIAL_CODES = { stepTherapy: 'ST', tooShort: 'TS', appeal: 'AD' } as const;

/** A decision `payerNext()` scripts for the next PA response (initiation: Open or Closed; determination; appeal). */
export type PayerDecision = { status: 'Approved'; note?: string } | { status: 'Denied'; reasonCode?: string; note?: string } | { status: 'Pended'; questionSet?: PAQuestionSet; note?: string } | { status: 'Closed'; reasonCode?: string; note?: string };

export interface SimPaCase {
  paReferenceId: string;
  caseId: string;
  prescriberOrderNumber: string;
  status: 'open' | 'pended' | 'approved' | 'denied' | 'appealed' | 'closed';
  /** the question set the payer is waiting answers to */
  openSet?: PAQuestionSet;
  answers: Record<string, string>;
  attachments: number;
}

export interface PharmacySimulatorOptions {
  /** shared secret: verifies what it receives, signs what it sends */
  secret: string;
  /** Carebase's inbound route (settable later: `callbackUrl`) */
  callbackUrl?: string;
  /** NCPDP ids it serves (default: TEST_PHARMACIES); a NewRx to another is refused with Error 900 */
  pharmacies?: readonly ScriptPharmacy[];
  host?: string;
  port?: number;
}

/** The pharmacies the simulator serves by default (synthetic NCPDP ids and NPIs with valid check digits). */
export const TEST_PHARMACIES: readonly ScriptPharmacy[] = [
  {
    ncpdpId: '1234567',
    npi: '1987654328',
    businessName: 'Carebase Simulated Pharmacy',
    address: {
      line1: '1 Main St',
      city: 'Springfield',
      state: 'IL',
      postalCode: '62701',
      country: 'US',
    },
    phone: '2175550111',
    fax: '2175550112',
  },
  {
    ncpdpId: '7654321',
    npi: '1555555550',
    businessName: 'Carebase Simulated Mail Order',
    address: {
      line1: '900 Warehouse Rd',
      city: 'Columbus',
      state: 'OH',
      postalCode: '43004',
      country: 'US',
    },
    phone: '6145550190',
  },
];

export interface SimPrescription {
  prescriberOrderNumber: string;
  /** the pharmacy's prescription number (RxReferenceNumber) */
  rxReferenceNumber: string;
  newRx: NewRxMessage;
  medication: ScriptMedication;
  status: 'received' | 'dispensed' | 'cancelled';
  /** fills left: 1 + refills at first, one less per dispensing */
  fillsRemaining: number;
  fills: number;
  lastFillDate?: string;
}

export interface SimDelivery {
  type: ScriptMessageType;
  messageId: string;
  /** the HTTP status Carebase answered, or 'error' when it could not be reached */
  status: number | 'error';
  /** Carebase's Status / Error answer, when it sent SCRIPT */
  answer?: ScriptMessage;
  /** the raw answer body (a JSON refusal, e.g.) */
  body?: string;
}

type Answer = StatusMessage | ErrorMessage | VerifyMessage;

const today = () => new Date().toISOString().slice(0, 10);

export class PharmacySimulator {
  readonly prescriptions = new Map<string, SimPrescription>();
  /** every valid message received, in order */
  readonly received: ScriptMessage[] = [];
  /** every message sent to Carebase, with its answer */
  readonly deliveries: SimDelivery[] = [];
  callbackUrl: string | undefined;
  url = '';
  private server!: http.Server;
  private readonly answers = new Map<string, { status: number; xml: string }>();
  private readonly renewalRequests = new Map<string, string>();
  private readonly changeRequests = new Map<string, string>();
  /** the payer's ePA cases by PAReferenceID */
  readonly paCases = new Map<string, SimPaCase>();
  private payerDecisions: PayerDecision[] = [];
  private nextCase = 1;
  /** a payer response to post once the synchronous answer is sent */
  private followUp: ScriptMessage | undefined;
  private readonly pharmacies: Map<string, ScriptPharmacy>;
  private queue: Promise<unknown> = Promise.resolve();
  private nextRx = 1000;
  private failures: {
    code: string;
    descriptionCode?: string;
    description: string;
  }[] = [];
  private outages: number[] = [];
  private waiters: {
    type: ScriptMessageType;
    resolve: (m: ScriptMessage) => void;
  }[] = [];

  private constructor(private readonly opts: PharmacySimulatorOptions) {
    this.callbackUrl = opts.callbackUrl;
    this.pharmacies = new Map((opts.pharmacies ?? TEST_PHARMACIES).map((p) => [p.ncpdpId, p]));
  }

  static async start(opts: PharmacySimulatorOptions): Promise<PharmacySimulator> {
    if (opts.secret.length < 32) throw new Error('pharmacy simulator: the shared secret must be at least 32 characters');
    const sim = new PharmacySimulator(opts);
    sim.server = http.createServer((req, res) => void sim.handle(req, res));
    await new Promise<void>((resolve, reject) => {
      sim.server.once('error', reject);
      sim.server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
    });
    const addr = sim.server.address() as AddressInfo;
    sim.url = `http://${opts.host ?? '127.0.0.1'}:${addr.port}/script`;
    return sim;
  }

  async close(): Promise<void> {
    await this.queue.catch(() => undefined);
    await new Promise<void>((resolve) => {
      this.server.close(() => resolve());
      this.server.closeAllConnections();
    });
  }

  /** The next received message of a type (already received ones do not count). */
  nextReceived<T extends ScriptMessageType>(type: T): Promise<Extract<ScriptMessage, { type: T }>> {
    return new Promise((resolve) =>
      this.waiters.push({
        type,
        resolve: resolve as (m: ScriptMessage) => void,
      }),
    );
  }

  /** Resolves when every message the simulator has queued for Carebase has been delivered (or failed). */
  async idle(): Promise<void> {
    let q: Promise<unknown>;
    do {
      q = this.queue;
      await q.catch(() => undefined);
    } while (q !== this.queue);
  }

  /** The next message received is refused with this SCRIPT Error (e.g. 601 receiver unable to process). */
  failNext(error: { code: '600' | '601' | '602' | '900'; descriptionCode?: string; description: string }): void {
    this.failures.push(error);
  }

  /** The payer's next PA response follows this decision instead of its rules. */
  payerNext(decision: PayerDecision): void {
    this.payerDecisions.push(decision);
  }

  /** The next post is answered with this HTTP status and no SCRIPT (an outage). */
  outageNext(status = 503): void {
    this.outages.push(status);
  }

  // ------------------------------------------------------------ inbound (Carebase -> pharmacy)

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    try {
      const path = (req.url ?? '/').split('?')[0];
      if (req.method === 'POST' && path === '/script') return await this.handleScript(req, res);
      if (req.method === 'POST' && path?.startsWith('/simulator/')) return await this.handleControl(path.slice('/simulator/'.length), req, res);
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }));
    } catch {
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'simulator failure' }));
    }
  }

  private async readBody(req: http.IncomingMessage): Promise<Buffer | undefined> {
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const c of req) {
      size += (c as Buffer).length;
      if (size > MAX_SCRIPT_BYTES) return undefined;
      chunks.push(c as Buffer);
    }
    return Buffer.concat(chunks);
  }

  private async handleScript(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const outage = this.outages.shift();
    if (outage) {
      res.writeHead(outage, { 'content-type': 'text/plain' }).end('unavailable');
      return;
    }
    const type = String(req.headers['content-type'] ?? '')
      .split(';')[0]!
      .trim()
      .toLowerCase();
    if (type !== 'application/xml' && type !== 'text/xml') {
      res.writeHead(415, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'SCRIPT is sent as application/xml' }));
      return;
    }
    const body = await this.readBody(req);
    if (!body) {
      res.writeHead(413, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'too large' }));
      return;
    }
    const problem = checkScriptSignature(body, req.headers[SIGNATURE_HEADER], [this.opts.secret]);
    if (problem) {
      res.writeHead(401, { 'content-type': 'application/json' }).end(JSON.stringify({ error: `signature ${problem}` }));
      return;
    }
    let msg: ScriptMessage;
    try {
      msg = parseScriptMessage(body);
    } catch (e) {
      if (!(e instanceof ScriptParseError || e instanceof ScriptValidationError)) throw e;
      const relates = /<MessageID>([\x21-\x3b\x3d-\x7e]{1,35})<\/MessageID>/.exec(body.toString('utf8'))?.[1] ?? 'unknown';
      const error: ErrorMessage = {
        type: 'Error',
        header: {
          to: { qualifier: 'D', id: 'unknown' },
          from: { qualifier: 'P', id: 'network' },
          messageId: newMessageId(),
          relatesToMessageId: relates,
          sentTime: new Date().toISOString(),
        },
        code: '900',
        descriptionCode: '008',
        description: e instanceof ScriptValidationError ? `Missing or invalid: ${[...e.missing, ...e.invalid].slice(0, 3).join(', ')}`.slice(0, 140) : 'Not a SCRIPT message',
      };
      res.writeHead(400, { 'content-type': 'application/xml' }).end(buildScriptMessage(error));
      return;
    }
    // the same MessageID again (a retry) gets the same answer
    const seen = this.answers.get(msg.header.messageId);
    if (seen) {
      res.writeHead(seen.status, { 'content-type': 'application/xml' }).end(seen.xml);
      return;
    }
    this.received.push(msg);
    const answer = this.answer(msg);
    const xml = buildScriptMessage(answer);
    this.answers.set(msg.header.messageId, { status: 200, xml });
    res.writeHead(200, { 'content-type': 'application/xml' }).end(xml);
    for (const w of this.waiters.filter((w) => w.type === msg.type)) w.resolve(msg);
    this.waiters = this.waiters.filter((w) => w.type !== msg.type);
    if (msg.type === 'CancelRx' && answer.type === 'Status') this.enqueue(() => this.answerCancel(msg));
    const followUp = this.followUp;
    this.followUp = undefined;
    if (followUp && answer.type === 'Status') void this.deliver(followUp).catch(() => undefined);
  }

  private status(to: ScriptHeader, code = '010', description = 'Accepted by pharmacy'): StatusMessage {
    return { type: 'Status', header: answerHeader(to), code, description };
  }
  private error(to: ScriptHeader, description: string, code = '900', descriptionCode = '008'): ErrorMessage {
    return {
      type: 'Error',
      header: answerHeader(to),
      code,
      descriptionCode,
      description,
    };
  }
  private verify(to: ScriptHeader): VerifyMessage {
    return {
      type: 'Verify',
      header: answerHeader(to),
      code: '010',
      description: 'Received and processed',
    };
  }

  private answer(msg: ScriptMessage): Answer {
    const failure = this.failures.shift();
    if (failure) return this.error(msg.header, failure.description, failure.code, failure.descriptionCode);
    switch (msg.type) {
      case 'NewRx': {
        if (!this.pharmacies.has(msg.pharmacy.ncpdpId) || msg.header.to.id !== msg.pharmacy.ncpdpId) return this.error(msg.header, 'Pharmacy not found on the network');
        const order = msg.header.prescriberOrderNumber!;
        if (this.prescriptions.has(order)) return this.error(msg.header, 'Duplicate prescriber order number');
        this.prescriptions.set(order, {
          prescriberOrderNumber: order,
          rxReferenceNumber: `RX${this.nextRx++}`,
          newRx: msg,
          medication: msg.medication,
          status: 'received',
          fillsRemaining: 1 + (msg.medication.numberOfRefills ?? 0),
          fills: 0,
        });
        return this.status(msg.header);
      }
      case 'CancelRx': {
        const rx = this.prescriptions.get(msg.header.prescriberOrderNumber!);
        if (!rx) return this.error(msg.header, 'Prescription not found');
        return this.status(msg.header, '010', 'Cancel request received');
      }
      case 'RxRenewalResponse': {
        const order = this.renewalRequests.get(msg.header.relatesToMessageId!);
        const rx = order ? this.prescriptions.get(order) : undefined;
        if (!rx) return this.error(msg.header, 'Renewal request not found');
        this.renewalRequests.delete(msg.header.relatesToMessageId!);
        if (msg.response.status === 'Approved' || msg.response.status === 'ApprovedWithChanges' || msg.response.status === 'Replace') {
          const newOrder = msg.header.prescriberOrderNumber ?? rx.prescriberOrderNumber;
          const fills = msg.medication.numberOfRefills ?? 0;
          if (newOrder === rx.prescriberOrderNumber) {
            rx.medication = msg.medication;
            rx.fillsRemaining = fills;
          } else {
            this.prescriptions.set(newOrder, {
              ...rx,
              prescriberOrderNumber: newOrder,
              rxReferenceNumber: `RX${this.nextRx++}`,
              medication: msg.medication,
              status: 'received',
              fillsRemaining: fills,
              fills: 0,
              lastFillDate: undefined,
            });
          }
        }
        return this.verify(msg.header);
      }
      case 'RxChangeResponse': {
        const order = this.changeRequests.get(msg.header.relatesToMessageId!);
        const rx = order ? this.prescriptions.get(order) : undefined;
        if (!rx) return this.error(msg.header, 'Change request not found');
        this.changeRequests.delete(msg.header.relatesToMessageId!);
        if (msg.response.status === 'Approved' || msg.response.status === 'ApprovedWithChanges') {
          rx.medication = msg.medication;
          rx.fillsRemaining = Math.max(rx.fillsRemaining, 1 + (msg.medication.numberOfRefills ?? 0) - rx.fills);
        }
        return this.verify(msg.header);
      }
      case 'PAInitiationRequest':
      case 'PARequest':
      case 'PAAppealRequest':
        return this.payer(msg);
      default:
        return this.error(msg.header, `${msg.type} is not accepted by this pharmacy`);
    }
  }

  // ------------------------------------------------------------ the payer (ePA)

  private payer(msg: Extract<ScriptMessage, { type: 'PAInitiationRequest' | 'PARequest' | 'PAAppealRequest' }>): Answer {
    if (msg.header.to.qualifier !== 'ZZ') return this.error(msg.header, 'Prior authorization messages go to the payer');
    const scripted = this.payerDecisions[0];
    const header = answerHeader(msg.header);
    if (msg.type === 'PAInitiationRequest') {
      if (this.paCases.has(msg.paReferenceId)) return this.error(msg.header, 'Duplicate PA reference');
      const order = msg.header.prescriberOrderNumber!;
      if (scripted?.status === 'Closed') {
        this.payerDecisions.shift();
        this.paCases.set(msg.paReferenceId, { paReferenceId: msg.paReferenceId, caseId: '', prescriberOrderNumber: order, status: 'closed', answers: {}, attachments: 0 });
        this.followUp = { type: 'PAInitiationResponse', header, paReferenceId: msg.paReferenceId, response: { status: 'Closed', reasonCode: scripted.reasonCode ?? 'NR', note: scripted.note ?? 'No prior authorization required for this medication' } };
        return this.status(msg.header, '010', 'Received by payer');
      }
      const c: SimPaCase = { paReferenceId: msg.paReferenceId, caseId: `CASE${this.nextCase++}`, prescriberOrderNumber: order, status: 'open', openSet: PAYER_QUESTION_SET, answers: {}, attachments: 0 };
      this.paCases.set(msg.paReferenceId, c);
      this.followUp = { type: 'PAInitiationResponse', header, paReferenceId: c.paReferenceId, response: { status: 'Open', caseId: c.caseId, questionSet: PAYER_QUESTION_SET } };
      return this.status(msg.header, '010', 'Received by payer');
    }
    const c = this.paCases.get(msg.paReferenceId);
    if (!c || c.caseId !== msg.caseId) return this.error(msg.header, 'Prior authorization case not found');
    if (msg.type === 'PARequest') {
      if ((c.status !== 'open' && c.status !== 'pended') || !c.openSet) return this.error(msg.header, 'The case is not waiting for answers');
      if (msg.questionSet.id !== c.openSet.id) return this.error(msg.header, 'Answers to another question set');
      for (const q of msg.questionSet.questions) if (q.answer !== undefined) c.answers[q.id] = q.answer;
      const missing = c.openSet.questions.filter((q) => q.required && c.answers[q.id] === undefined);
      if (missing.length) return this.error(msg.header, `Required question ${missing[0]!.id} not answered`);
      c.attachments += msg.attachments.length;
      const d = this.payerDecisions.shift() ?? this.decide(c);
      this.followUp = { type: 'PAResponse', header, paReferenceId: c.paReferenceId, caseId: c.caseId, response: this.determination(c, d) };
      return this.status(msg.header, '010', 'Received by payer');
    }
    // PAAppealRequest
    if (c.status !== 'denied') return this.error(msg.header, 'Only a denied case can be appealed');
    c.attachments += msg.attachments.length;
    const d = this.payerDecisions.shift();
    const r = this.determination(c, d?.status === 'Denied' ? d : { status: 'Approved', note: d?.note ?? 'Approved on appeal' });
    this.followUp = { type: 'PAAppealResponse', header, paReferenceId: c.paReferenceId, caseId: c.caseId, response: r as Extract<typeof r, { status: 'Approved' | 'Denied' }> };
    return this.status(msg.header, '010', 'Received by payer');
  }

  /**
   * The payer's rules: no formulary alternative tried (Q1 no) -> Denied ST (step therapy); tried, with the start date
   * (Q3) -> Approved; tried without it -> Pended with the follow-up set (Q4: days taken): 30 or more -> Approved, else
   * Denied TS.
   */
  private decide(c: SimPaCase): PayerDecision {
    if (c.answers.Q1 === 'no') return { status: 'Denied', reasonCode: PAYER_DENIAL_CODES.stepTherapy, note: 'A formulary alternative must be tried first' };
    if (c.answers.Q4 !== undefined) return Number(c.answers.Q4) >= 30 ? { status: 'Approved' } : { status: 'Denied', reasonCode: PAYER_DENIAL_CODES.tooShort, note: 'The alternative was not taken for 30 days' };
    if (c.answers.Q3 === undefined) return { status: 'Pended', questionSet: PAYER_FOLLOW_UP_SET, note: 'More information needed' };
    return { status: 'Approved' };
  }

  private determination(c: SimPaCase, d: PayerDecision): Extract<ScriptMessage, { type: 'PAResponse' }>['response'] {
    const start = today();
    const end = new Date(Date.parse(`${start}T00:00:00Z`) + 364 * 86_400_000).toISOString().slice(0, 10);
    switch (d.status) {
      case 'Approved':
        c.status = 'approved';
        c.openSet = undefined;
        return { status: 'Approved', effectiveDate: start, expirationDate: end, note: d.note ?? 'Approved for 12 months' };
      case 'Denied':
        c.status = 'denied';
        c.openSet = undefined;
        return { status: 'Denied', reasonCode: d.reasonCode ?? PAYER_DENIAL_CODES.appeal, ...(d.note ? { note: d.note } : {}) };
      case 'Pended':
        c.status = 'pended';
        c.openSet = d.questionSet ?? PAYER_FOLLOW_UP_SET;
        return { status: 'Pended', questionSet: c.openSet, ...(d.note ? { note: d.note } : {}) };
      case 'Closed':
        c.status = 'closed';
        c.openSet = undefined;
        return { status: 'Closed', reasonCode: d.reasonCode ?? 'CL', ...(d.note ? { note: d.note } : {}) };
    }
  }

  // ------------------------------------------------------------ outbound (pharmacy -> Carebase)

  private enqueue<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.queue.then(fn, fn);
    this.queue = run.catch(() => undefined);
    return run;
  }

  private replyHeader(rx: SimPrescription, over: Partial<ScriptHeader> = {}): ScriptHeader {
    const h = rx.newRx.header;
    return {
      to: h.from,
      from: h.to,
      messageId: newMessageId(),
      sentTime: new Date().toISOString(),
      rxReferenceNumber: rx.rxReferenceNumber,
      prescriberOrderNumber: rx.prescriberOrderNumber,
      ...over,
    };
  }

  /** Posts one message to Carebase's inbound URL, signed; records and returns the delivery. */
  async deliver(msg: ScriptMessage, opts: { secret?: string; unsigned?: boolean; rawXml?: string } = {}): Promise<SimDelivery> {
    return this.enqueue(() => this.post(msg, opts));
  }

  private async post(msg: ScriptMessage, opts: { secret?: string; unsigned?: boolean; rawXml?: string } = {}): Promise<SimDelivery> {
    if (!this.callbackUrl) throw new Error('pharmacy simulator: no callback URL to deliver to');
    const xml = opts.rawXml ?? buildScriptMessage(msg);
    const headers: Record<string, string> = {
      'content-type': 'application/xml; charset=utf-8',
    };
    if (!opts.unsigned) headers[SIGNATURE_HEADER] = signScriptBody(xml, opts.secret ?? this.opts.secret);
    const delivery: SimDelivery = {
      type: msg.type,
      messageId: msg.header.messageId,
      status: 'error',
    };
    try {
      const res = await fetch(this.callbackUrl, {
        method: 'POST',
        headers,
        body: xml,
        signal: AbortSignal.timeout(30_000),
      });
      delivery.status = res.status;
      delivery.body = await res.text();
      if ((res.headers.get('content-type') ?? '').includes('xml')) {
        try {
          delivery.answer = parseScriptMessage(delivery.body);
        } catch {
          /* not SCRIPT: kept as body */
        }
      }
    } catch {
      delivery.status = 'error';
    }
    this.deliveries.push(delivery);
    return delivery;
  }

  private async answerCancel(cancel: Extract<ScriptMessage, { type: 'CancelRx' }>): Promise<SimDelivery> {
    const rx = this.prescriptions.get(cancel.header.prescriberOrderNumber!)!;
    const approved = rx.status !== 'dispensed' && rx.fills === 0;
    if (approved) rx.status = 'cancelled';
    // already on the queue: post directly
    return this.post({
      type: 'CancelRxResponse',
      header: this.replyHeader(rx, {
        relatesToMessageId: cancel.header.messageId,
      }),
      response: approved ? { status: 'Approved', note: 'Cancelled before dispensing' } : { status: 'Denied', reasonCode: 'AP', reason: 'Already dispensed' },
    });
  }

  private rx(order: string): SimPrescription {
    const rx = this.prescriptions.get(order);
    if (!rx) throw new Error('pharmacy simulator: no such prescription');
    return rx;
  }

  /** The pharmacy dispenses (or reports not dispensing) a prescription it received: RxFill to Carebase. */
  async fill(order: string, opts: { status?: FillStatus; note?: string; quantity?: string } = {}): Promise<SimDelivery> {
    const rx = this.rx(order);
    const status = opts.status ?? 'Dispensed';
    const dispensing = status === 'Dispensed' || status === 'PartiallyDispensed';
    if (dispensing) {
      if (rx.status === 'cancelled') throw new Error('pharmacy simulator: the prescription was cancelled');
      if (rx.fillsRemaining < 1) throw new Error('pharmacy simulator: no fills remaining');
      if (status === 'Dispensed') {
        rx.fillsRemaining -= 1;
        rx.fills += 1;
      }
      rx.status = 'dispensed';
      rx.lastFillDate = today();
    }
    const dispensed: ScriptMedication = {
      ...rx.medication,
      ...(opts.quantity ? { quantity: { ...rx.medication.quantity, value: opts.quantity } } : {}),
      numberOfRefills: Math.max(0, rx.fillsRemaining - (rx.fills === 0 ? 1 : 0)),
      ...(rx.lastFillDate ? { lastFillDate: rx.lastFillDate } : {}),
    };
    return this.deliver({
      type: 'RxFill',
      header: this.replyHeader(rx, {
        relatesToMessageId: rx.newRx.header.messageId,
      }),
      fillStatus: { status, ...(opts.note ? { note: opts.note } : {}) },
      patient: rx.newRx.patient,
      pharmacy: rx.newRx.pharmacy,
      prescriber: rx.newRx.prescriber,
      medicationPrescribed: rx.medication,
      medicationDispensed: dispensed,
    });
  }

  /** The pharmacy asks the prescriber to renew: RxRenewalRequest to Carebase. */
  async requestRenewal(order: string, opts: { note?: string } = {}): Promise<SimDelivery> {
    const rx = this.rx(order);
    const header = this.replyHeader(rx);
    this.renewalRequests.set(header.messageId, order);
    return this.deliver({
      type: 'RxRenewalRequest',
      header,
      patient: rx.newRx.patient,
      pharmacy: rx.newRx.pharmacy,
      prescriber: rx.newRx.prescriber,
      medicationDispensed: {
        ...rx.medication,
        numberOfRefills: 0,
        lastFillDate: rx.lastFillDate ?? today(),
        ...(opts.note ? { note: opts.note } : {}),
      },
      medicationPrescribed: rx.medication,
    });
  }

  /** The pharmacy asks for a change (generic/therapeutic substitution, prior authorization, ...): RxChangeRequest. */
  async requestChange(order: string, code: ChangeRequestCode, requested: ScriptMedication[] = []): Promise<SimDelivery> {
    const rx = this.rx(order);
    const header = this.replyHeader(rx);
    this.changeRequests.set(header.messageId, order);
    return this.deliver({
      type: 'RxChangeRequest',
      header,
      requestCode: code,
      patient: rx.newRx.patient,
      pharmacy: rx.newRx.pharmacy,
      prescriber: rx.newRx.prescriber,
      medication: rx.medication,
      requested,
    });
  }

  private async handleControl(action: string, req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await this.readBody(req);
    let input: {
      prescriberOrderNumber?: unknown;
      status?: unknown;
      code?: unknown;
    };
    try {
      input = JSON.parse(body?.toString('utf8') || '{}');
    } catch {
      res.writeHead(400, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'JSON body expected' }));
      return;
    }
    const order = typeof input.prescriberOrderNumber === 'string' ? input.prescriberOrderNumber : '';
    if (!this.prescriptions.has(order)) {
      res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'no such prescription' }));
      return;
    }
    let delivery: SimDelivery;
    try {
      if (action === 'fill')
        delivery = await this.fill(order, {
          status: typeof input.status === 'string' ? (input.status as FillStatus) : undefined,
        });
      else if (action === 'renewal') delivery = await this.requestRenewal(order);
      else if (action === 'change') delivery = await this.requestChange(order, (typeof input.code === 'string' ? input.code : 'G') as ChangeRequestCode);
      else {
        res.writeHead(404, { 'content-type': 'application/json' }).end(JSON.stringify({ error: 'not found' }));
        return;
      }
    } catch (e) {
      res.writeHead(409, { 'content-type': 'application/json' }).end(JSON.stringify({ error: (e as Error).message }));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(
      JSON.stringify({
        type: delivery.type,
        messageId: delivery.messageId,
        status: delivery.status,
        answer: delivery.answer?.type,
      }),
    );
  }
}
