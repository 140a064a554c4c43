import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { answerHeader, HttpPharmacyNetwork, newMessageId } from '../../../src/modules/eprescribing/network/adapter.js';
import { checkScriptSignature, signScriptBody, SIGNATURE_HEADER } from '../../../src/modules/eprescribing/network/signature.js';
import { PharmacySimulator } from '../../../src/modules/eprescribing/pharmacy-simulator/server.js';
import { buildScriptMessage, parseScriptMessage, ScriptValidationError, type NewRxMessage, type ScriptMessage } from '../../../src/modules/eprescribing/script/index.js';
import { AppError } from '../../../src/platform/errors.js';
import { header, medication, patient, pharmacy, prescriber } from './script-fixtures.js';

const SECRET = 'network-test-secret-0123456789abcdef';

/** A stand-in for Carebase's inbound route: verifies the signature like the adapter, answers Status. */
async function startReceiver(network: HttpPharmacyNetwork) {
  const got: ScriptMessage[] = [];
  const refused: string[] = [];
  const server = http.createServer(async (req, res) => {
    let body = '';
    for await (const c of req) body += c;
    const problem = network.authenticateInbound(body, req.headers);
    if (problem) {
      refused.push(problem);
      res.writeHead(401).end();
      return;
    }
    const msg = parseScriptMessage(body);
    got.push(msg);
    res.writeHead(200, { 'content-type': 'application/xml' }).end(
      buildScriptMessage({
        type: 'Status',
        header: answerHeader(msg.header),
        code: '010',
      }),
    );
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/inbound`,
    got,
    refused,
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

function newRx(order: string, over: Partial<NewRxMessage> = {}): NewRxMessage {
  return {
    type: 'NewRx',
    header: header({ messageId: newMessageId(), prescriberOrderNumber: order }),
    patient,
    pharmacy,
    prescriber,
    medication,
    ...over,
  };
}

async function expectUnavailable(p: Promise<unknown>, reason: string) {
  const e = await p.then(
    () => undefined,
    (err: unknown) => err,
  );
  expect(e).toBeInstanceOf(AppError);
  expect((e as AppError).extensions).toMatchObject({
    code: 'PROVIDER_UNAVAILABLE',
    reason,
  });
}

describe('pharmacy network adapter against the pharmacy simulator', () => {
  let sim: PharmacySimulator;
  let network: HttpPharmacyNetwork;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;

  beforeAll(async () => {
    sim = await PharmacySimulator.start({ secret: SECRET });
    network = new HttpPharmacyNetwork({
      url: sim.url,
      secrets: [SECRET],
      kind: 'simulator',
    });
    receiver = await startReceiver(network);
    sim.callbackUrl = receiver.url;
  });
  afterAll(async () => {
    await sim?.close();
    await receiver?.close();
  });

  it('NewRx is answered with Status 010 relating to it; a retry of the same MessageID gets the same answer', async () => {
    const msg = newRx('ORDER-A');
    const first = await network.send(msg);
    expect(first.answer).toMatchObject({
      type: 'Status',
      code: '010',
      header: {
        relatesToMessageId: msg.header.messageId,
        prescriberOrderNumber: 'ORDER-A',
      },
    });
    expect(sim.prescriptions.get('ORDER-A')?.status).toBe('received');
    const again = await network.send(msg);
    expect(again.answerXml).toBe(first.answerXml);
    expect(sim.received.filter((m) => m.header.messageId === msg.header.messageId)).toHaveLength(1);
  });

  it('Error 900 for an unknown pharmacy or a duplicate order; a scripted refusal', async () => {
    const unknown = newRx('ORDER-B', {
      pharmacy: { ...pharmacy, ncpdpId: '9999999' },
      header: header({
        messageId: newMessageId(),
        prescriberOrderNumber: 'ORDER-B',
        to: { qualifier: 'P', id: '9999999' },
      }),
    });
    expect((await network.send(unknown)).answer).toMatchObject({
      type: 'Error',
      code: '900',
      description: 'Pharmacy not found on the network',
    });
    expect((await network.send(newRx('ORDER-A'))).answer).toMatchObject({
      type: 'Error',
      code: '900',
      description: 'Duplicate prescriber order number',
    });
    sim.failNext({ code: '601', description: 'Receiver unable to process' });
    expect((await network.send(newRx('ORDER-C'))).answer).toMatchObject({
      type: 'Error',
      code: '601',
    });
    expect(sim.prescriptions.has('ORDER-C')).toBe(false);
  });

  it('nothing leaves when the message is missing required elements', async () => {
    const before = sim.received.length;
    const bad = newRx('ORDER-D');
    bad.medication = { ...medication, sig: '' };
    await expect(network.send(bad)).rejects.toBeInstanceOf(ScriptValidationError);
    expect(sim.received.length).toBe(before);
  });

  it('an outage, a refused credential, an unreachable network: PROVIDER_UNAVAILABLE', async () => {
    sim.outageNext(503);
    await expectUnavailable(network.send(newRx('ORDER-E')), 'http_503');
    await expectUnavailable(
      new HttpPharmacyNetwork({
        url: sim.url,
        secrets: ['another-secret-0123456789abcdefghij'],
      }).send(newRx('ORDER-E')),
      'credentials_refused',
    );
    await expectUnavailable(
      new HttpPharmacyNetwork({
        url: 'http://127.0.0.1:1/script',
        secrets: [SECRET],
      }).send(newRx('ORDER-E')),
      'unreachable',
    );
    expect(sim.prescriptions.has('ORDER-E')).toBe(false);
  });

  it('the simulator refuses unsigned, badly signed, non-XML and invalid posts', async () => {
    const xml = buildScriptMessage(newRx('ORDER-F'));
    const post = (body: string, headers: Record<string, string>) => fetch(sim.url, { method: 'POST', headers, body });
    expect((await post(xml, { 'content-type': 'application/xml' })).status).toBe(401);
    expect(
      (
        await post(xml, {
          'content-type': 'application/xml',
          [SIGNATURE_HEADER]: signScriptBody(xml, 'wrong-secret-0123456789abcdefghijklmn'),
        })
      ).status,
    ).toBe(401);
    expect(
      (
        await post(xml, {
          'content-type': 'application/xml',
          [SIGNATURE_HEADER]: signScriptBody(xml.replace('ORDER-F', 'ORDER-G'), SECRET),
        })
      ).status,
    ).toBe(401);
    expect(
      (
        await post(xml, {
          'content-type': 'application/json',
          [SIGNATURE_HEADER]: signScriptBody(xml, SECRET),
        })
      ).status,
    ).toBe(415);
    const broken = xml.replace(/<Sig>.*<\/Sig>/, '');
    const res = await post(broken, {
      'content-type': 'application/xml',
      [SIGNATURE_HEADER]: signScriptBody(broken, SECRET),
    });
    expect(res.status).toBe(400);
    const answer = parseScriptMessage(await res.text());
    expect(answer).toMatchObject({ type: 'Error', code: '900' });
    expect(sim.prescriptions.has('ORDER-F')).toBe(false);
  });

  it('CancelRx: Status now, then a signed CancelRxResponse to the prescriber (approved before dispensing)', async () => {
    await network.send(newRx('ORDER-H'));
    const cancel: ScriptMessage = {
      type: 'CancelRx',
      header: header({
        messageId: newMessageId(),
        prescriberOrderNumber: 'ORDER-H',
      }),
      patient,
      pharmacy,
      prescriber,
      medication,
    };
    expect((await network.send(cancel)).answer).toMatchObject({
      type: 'Status',
      code: '010',
    });
    await sim.idle();
    const response = receiver.got.find((m) => m.type === 'CancelRxResponse' && m.header.relatesToMessageId === cancel.header.messageId);
    expect(response).toMatchObject({
      response: { status: 'Approved' },
      header: { prescriberOrderNumber: 'ORDER-H' },
    });
    expect(sim.prescriptions.get('ORDER-H')?.status).toBe('cancelled');
    await expect(sim.fill('ORDER-H')).rejects.toThrow(/cancelled/);
  });

  it('RxFill, refills counted down; renewal request and response answered with Verify', async () => {
    await network.send(newRx('ORDER-J', { medication: { ...medication, numberOfRefills: 1 } }));
    const first = await sim.fill('ORDER-J');
    expect(first).toMatchObject({
      type: 'RxFill',
      status: 200,
      answer: { type: 'Status', code: '010' },
    });
    const fill = receiver.got.at(-1)!;
    expect(fill).toMatchObject({
      type: 'RxFill',
      fillStatus: { status: 'Dispensed' },
      medicationDispensed: { numberOfRefills: 1 },
      header: {
        prescriberOrderNumber: 'ORDER-J',
        rxReferenceNumber: expect.stringMatching(/^RX\d+$/),
      },
    });
    await sim.fill('ORDER-J');
    expect(receiver.got.at(-1)).toMatchObject({
      type: 'RxFill',
      medicationDispensed: { numberOfRefills: 0 },
    });
    await expect(sim.fill('ORDER-J')).rejects.toThrow(/no fills remaining/);

    await sim.requestRenewal('ORDER-J');
    const request = receiver.got.at(-1)!;
    expect(request).toMatchObject({
      type: 'RxRenewalRequest',
      header: { prescriberOrderNumber: 'ORDER-J' },
    });
    const response: ScriptMessage = {
      type: 'RxRenewalResponse',
      header: {
        ...header({
          messageId: newMessageId(),
          prescriberOrderNumber: 'ORDER-J2',
        }),
        relatesToMessageId: request.header.messageId,
      },
      response: { status: 'Approved' },
      patient,
      pharmacy,
      prescriber,
      medication: { ...medication, numberOfRefills: 2 },
    };
    expect((await network.send(response)).answer).toMatchObject({
      type: 'Verify',
      code: '010',
    });
    expect(sim.prescriptions.get('ORDER-J2')).toMatchObject({
      status: 'received',
      fillsRemaining: 2,
    });
    // a response to no request is refused
    expect(
      (
        await network.send({
          ...response,
          header: { ...response.header, messageId: newMessageId() },
        })
      ).answer,
    ).toMatchObject({
      type: 'Error',
      description: 'Renewal request not found',
    });
  });

  it('the receiver refuses the simulator signing with another secret or not at all', async () => {
    await network.send(newRx('ORDER-K'));
    const rx = sim.prescriptions.get('ORDER-K')!;
    const fill = {
      type: 'Status',
      header: answerHeader(rx.newRx.header),
      code: '010',
    } as ScriptMessage;
    expect((await sim.deliver(fill, { unsigned: true })).status).toBe(401);
    expect(
      (
        await sim.deliver(fill, {
          secret: 'forged-secret-0123456789abcdefghijklm',
        })
      ).status,
    ).toBe(401);
    expect(receiver.refused.slice(-2)).toEqual(['missing', 'mismatch']);
  });
});

describe('X-Script-Signature', () => {
  const body = '<Message/>';
  const now = Date.UTC(2026, 11, 1, 12);
  it('verifies, refuses tampering, expiry, malformed headers; accepts a rotated secret', () => {
    const h = signScriptBody(body, SECRET, now);
    expect(h).toMatch(/^t=\d+,v1=[0-9a-f]{64}$/);
    expect(checkScriptSignature(body, h, [SECRET], now)).toBeUndefined();
    expect(checkScriptSignature(`${body} `, h, [SECRET], now)).toBe('mismatch');
    expect(checkScriptSignature(body, h, [SECRET], now + 301_000)).toBe('expired');
    expect(checkScriptSignature(body, undefined, [SECRET], now)).toBe('missing');
    expect(checkScriptSignature(body, 't=abc,v1=00', [SECRET], now)).toBe('malformed');
    expect(checkScriptSignature(body, ['a', 'b'], [SECRET], now)).toBe('malformed');
    const old = 'old-secret-0123456789abcdefghijklmnop';
    expect(checkScriptSignature(body, signScriptBody(body, old, now), [SECRET, old], now)).toBeUndefined();
    expect(checkScriptSignature(body, signScriptBody(body, [SECRET, old], now), [old], now)).toBeUndefined();
  });
});
