import { XMLParser } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import {
  buildScriptMessage,
  isValidDeaNumber,
  isValidNpi,
  parseScriptMessage,
  peekMessageType,
  SCRIPT_MESSAGE_TYPES,
  ScriptParseError,
  ScriptValidationError,
  validateScriptMessage,
  type NewRxMessage,
  type ScriptMessage,
} from '../../../src/modules/eprescribing/script/index.js';
import { controlled, sampleMessages } from './script-fixtures.js';

const plain = new XMLParser({ ignoreAttributes: false, parseTagValue: false });

function expectInvalid(fn: () => unknown): ScriptValidationError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ScriptValidationError);
    expect((e as ScriptValidationError).extensions.code).toBe('BAD_USER_INPUT');
    expect((e as ScriptValidationError).extensions.reason).toBe('SCRIPT_INVALID');
    return e as ScriptValidationError;
  }
  throw new Error('expected a ScriptValidationError');
}

function expectParseError(fn: () => unknown, reason: string) {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ScriptParseError);
    expect((e as ScriptParseError).extensions.reason).toBe(reason);
    return;
  }
  throw new Error('expected a ScriptParseError');
}

describe('NCPDP SCRIPT 2017071 messages', () => {
  const samples = sampleMessages();

  it('has a sample of every supported message type', () => {
    expect(Object.keys(samples).sort()).toEqual([...SCRIPT_MESSAGE_TYPES].sort());
  });

  for (const type of SCRIPT_MESSAGE_TYPES) {
    it(`${type}: builds valid 2017071 XML and parses back to the same message`, () => {
      const msg = samples[type];
      expect(validateScriptMessage(msg)).toEqual([]);
      const xml = buildScriptMessage(msg);
      expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?><Message xmlns="http://www.ncpdp.org/schema/SCRIPT"')).toBe(true);
      const doc = plain.parse(xml);
      expect(doc.Message['@_TransactionVersion']).toBe('20170715');
      expect(doc.Message['@_TransactionDomain']).toBe('SCRIPT');
      expect(Object.keys(doc.Message.Body)).toEqual([type]);
      expect(peekMessageType(xml)).toBe(type);
      expect(parseScriptMessage(xml)).toEqual(msg);
      // a second trip is byte-identical (stable element order)
      expect(buildScriptMessage(parseScriptMessage(xml))).toBe(xml);
    });
  }

  it('NewRx follows the standard element structure and order', () => {
    const xml = buildScriptMessage(samples.NewRx);
    const doc = plain.parse(xml).Message;
    expect(Object.keys(doc.Header)).toEqual(['To', 'From', 'MessageID', 'SentTime', 'SenderSoftware', 'PrescriberOrderNumber']);
    expect(doc.Header.To).toEqual({ '#text': '1234567', '@_Qualifier': 'P' });
    expect(doc.Header.From).toEqual({ '#text': '1234567893', '@_Qualifier': 'D' });
    const body = doc.Body.NewRx;
    expect(Object.keys(body)).toEqual(['Patient', 'Pharmacy', 'Prescriber', 'MedicationPrescribed', 'ProhibitRenewalRequest']);
    expect(Object.keys(body.Patient.HumanPatient)).toEqual(['Identification', 'Name', 'Gender', 'DateOfBirth', 'Address', 'CommunicationNumbers']);
    expect(body.Patient.HumanPatient.DateOfBirth).toEqual({ Date: '1961-04-12' });
    expect(body.Prescriber.NonVeterinarian.Identification).toEqual({ StateLicenseNumber: 'IL-036-123456', DEANumber: 'AB1234563', NPI: '1234567893' });
    expect(body.Pharmacy.Identification).toEqual({ NCPDPID: '1234567', NPI: '1987654328' });
    const med = body.MedicationPrescribed;
    expect(Object.keys(med)).toEqual(['DrugDescription', 'DrugCoded', 'Quantity', 'DaysSupply', 'WrittenDate', 'Substitutions', 'NumberOfRefills', 'Note', 'Sig']);
    expect(med.DrugCoded).toEqual({ ProductCode: { Code: '00093111001', Qualifier: 'ND' }, DrugDBCode: { Code: '314076', Qualifier: 'SCD' } });
    expect(med.Quantity).toEqual({ Value: '30', CodeListQualifier: '38', QuantityUnitOfMeasure: { Code: 'C48542' } });
    expect(med.Sig).toEqual({ SigText: 'Take 1 tablet by mouth once daily' });
  });

  it('a controlled substance carries DEASchedule as its NCI code; response choices are empty elements', () => {
    const xml = buildScriptMessage({ ...(samples.NewRx as NewRxMessage), medication: controlled });
    expect(xml).toContain('<DEASchedule><Code>C48675</Code></DEASchedule>');
    expect(buildScriptMessage({ ...samples.CancelRxResponse, response: { status: 'Approved' } } as ScriptMessage)).toContain('<Response><Approved/></Response>');
  });

  it('refuses to build a message with a missing required element, listing every one by path', () => {
    const bad = structuredClone(samples.NewRx) as NewRxMessage;
    bad.prescriber.npi = '';
    bad.medication.sig = '';
    bad.patient.name.first = undefined;
    bad.header.prescriberOrderNumber = undefined;
    const err = expectInvalid(() => buildScriptMessage(bad));
    expect(err.extensions.messageType).toBe('NewRx');
    expect(err.missing.sort()).toEqual(
      [
        'Message/Header/PrescriberOrderNumber',
        'Message/Body/NewRx/Patient/HumanPatient/Name/FirstName',
        'Message/Body/NewRx/Prescriber/NonVeterinarian/Identification/NPI',
        'Message/Body/NewRx/MedicationPrescribed/Sig/SigText',
      ].sort(),
    );
    // the error names elements, never values (PHI)
    expect(err.message).not.toContain('Testpatient');
    expect(JSON.stringify(err.extensions)).not.toContain('Avery');
  });

  it('checks required elements per message type (relates-to on answers, order numbers, response choice)', () => {
    const status = { ...samples.Status, header: { ...samples.Status.header, relatesToMessageId: undefined } } as ScriptMessage;
    expect(expectInvalid(() => buildScriptMessage(status)).missing).toEqual(['Message/Header/RelatesToMessageID']);
    const renewal = structuredClone(samples.RxRenewalRequest);
    renewal.header.rxReferenceNumber = undefined;
    expect(expectInvalid(() => buildScriptMessage(renewal)).missing).toEqual(['Message/Header/RxReferenceNumber']);
    const newRx = structuredClone(samples.NewRx) as NewRxMessage;
    newRx.medication.numberOfRefills = undefined;
    expect(expectInvalid(() => buildScriptMessage(newRx)).missing).toEqual(['Message/Body/NewRx/MedicationPrescribed/NumberOfRefills']);
  });

  it('refuses malformed values: check digits, dates, codes, lengths, control characters', () => {
    const bad = structuredClone(samples.NewRx) as NewRxMessage;
    bad.prescriber.npi = '1234567890'; // wrong check digit
    bad.prescriber.deaNumber = 'AB1234560';
    bad.patient.birthDate = '1961-02-30';
    bad.patient.gender = 'X' as 'M';
    bad.medication.quantity.value = '-1';
    bad.medication.ndc = '123';
    bad.medication.description = 'x'.repeat(106);
    bad.medication.sig = 'take \u0001 daily';
    bad.header.to.qualifier = 'Q' as 'P';
    const err = expectInvalid(() => buildScriptMessage(bad));
    expect(err.invalid.sort()).toEqual(
      [
        'Message/Header/To/@Qualifier',
        'Message/Body/NewRx/Patient/HumanPatient/Gender',
        'Message/Body/NewRx/Patient/HumanPatient/DateOfBirth/Date',
        'Message/Body/NewRx/Prescriber/NonVeterinarian/Identification/DEANumber',
        'Message/Body/NewRx/Prescriber/NonVeterinarian/Identification/NPI',
        'Message/Body/NewRx/MedicationPrescribed/DrugDescription',
        'Message/Body/NewRx/MedicationPrescribed/DrugCoded/ProductCode/Code',
        'Message/Body/NewRx/MedicationPrescribed/Quantity/Value',
        'Message/Body/NewRx/MedicationPrescribed/Sig/SigText',
      ].sort(),
    );
  });

  it('a controlled substance needs the prescriber DEA number; schedule II has no refills', () => {
    const noDea = structuredClone(samples.NewRx) as NewRxMessage;
    noDea.medication = { ...controlled };
    noDea.prescriber.deaNumber = undefined;
    expect(expectInvalid(() => buildScriptMessage(noDea)).missing).toEqual(['Message/Body/NewRx/Prescriber/NonVeterinarian/Identification/DEANumber']);
    const refills = structuredClone(samples.NewRx) as NewRxMessage;
    refills.medication = { ...controlled, numberOfRefills: 1 };
    expect(expectInvalid(() => buildScriptMessage(refills)).invalid).toEqual(['Message/Body/NewRx/MedicationPrescribed/NumberOfRefills']);
    const schedIV = structuredClone(samples.NewRx) as NewRxMessage;
    schedIV.medication = { ...controlled, deaSchedule: 'CIV', numberOfRefills: 5 };
    expect(validateScriptMessage(schedIV)).toEqual([]);
  });

  it('an EPCS signature indicator needs the signature value', () => {
    const m = structuredClone(samples.NewRx) as NewRxMessage;
    m.medication = { ...controlled };
    m.header.digitalSignature = { version: '1.1', indicator: true, digestMethod: 'SHA256', digestValue: 'abc=' };
    expect(expectInvalid(() => buildScriptMessage(m)).missing).toEqual(['Message/Header/DigitalSignature/SignatureValue']);
    m.header.digitalSignature.signatureValue = 'c2lnbmF0dXJl';
    expect(parseScriptMessage(buildScriptMessage(m))).toEqual(m);
  });

  it('escapes markup in values', () => {
    const m = structuredClone(samples.NewRx) as NewRxMessage;
    m.medication.sig = 'Take <1> tablet & "water" \'daily\'';
    const xml = buildScriptMessage(m);
    expect(xml).toContain('Take &lt;1&gt; tablet &amp; &quot;water&quot; &apos;daily&apos;');
    expect((parseScriptMessage(xml) as NewRxMessage).medication.sig).toBe(m.medication.sig);
  });

  describe('parsing inbound XML', () => {
    const good = buildScriptMessage(samples.RxFill);

    it('accepts a namespace prefix, whitespace and a DateTime written date', () => {
      const pretty = good
        .replace('<Message xmlns="http://www.ncpdp.org/schema/SCRIPT"', '<s:Message xmlns:s="http://www.ncpdp.org/schema/SCRIPT"')
        .replace(/<(\/?)(?!\?|s:Message|\/s:Message)([A-Za-z])/g, '<$1s:$2')
        .replace('</Message>', '</s:Message>')
        .replace(/></g, '>\n  <')
        .replace('<s:WrittenDate>\n  <s:Date>2026-12-01</s:Date>', '<s:WrittenDate>\n  <s:DateTime>2026-12-01T09:00:00Z</s:DateTime>');
      const parsed = parseScriptMessage(pretty);
      expect(parsed.type).toBe('RxFill');
      expect(parsed).toMatchObject({ fillStatus: { status: 'Dispensed' }, medicationDispensed: { writtenDate: '2026-12-01' } });
    });

    it('refuses XML that is not well-formed, a DOCTYPE, or not a Message', () => {
      expectParseError(() => parseScriptMessage(good.slice(0, -20)), 'SCRIPT_MALFORMED');
      expectParseError(() => parseScriptMessage(''), 'SCRIPT_MALFORMED');
      expectParseError(() => parseScriptMessage('not xml at all'), 'SCRIPT_MALFORMED');
      expectParseError(() => parseScriptMessage('<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaa">]><Message>&a;</Message>'), 'SCRIPT_MALFORMED');
      expectParseError(() => parseScriptMessage('<Other><Body><Status/></Body></Other>'), 'SCRIPT_MALFORMED');
      expectParseError(() => parseScriptMessage('<Message><Header/></Message>'), 'SCRIPT_MALFORMED');
      expectParseError(() => parseScriptMessage(good.replace('<Body>', '<Body><Status><Code>000</Code></Status>')), 'SCRIPT_MALFORMED');
    });

    it('refuses a transaction it does not handle, and an oversized message', () => {
      expectParseError(() => parseScriptMessage(good.replace(/RxFill/g, 'RxHistoryRequest')), 'SCRIPT_UNSUPPORTED');
      expectParseError(() => parseScriptMessage(good.replace('</Message>', `<!--${'x'.repeat(300 * 1024)}--></Message>`)), 'SCRIPT_TOO_LARGE');
    });

    it('refuses an inbound message missing required elements, naming them', () => {
      const noSig = good.replace(/<Sig><SigText>[^<]*<\/SigText><\/Sig>/g, '');
      expect(expectInvalid(() => parseScriptMessage(noSig)).missing).toEqual([
        'Message/Body/RxFill/MedicationPrescribed/Sig',
        'Message/Body/RxFill/MedicationDispensed/Sig',
      ]);
      const twoStatuses = good.replace('<FillStatus><Dispensed>', '<FillStatus><NotDispensed/><Dispensed>');
      expect(expectInvalid(() => parseScriptMessage(twoStatuses)).invalid).toEqual(['Message/Body/RxFill/FillStatus']);
      const wrongVersion = good.replace(/TransactionVersion="20170715"/, 'TransactionVersion="20230111"');
      expect(expectInvalid(() => parseScriptMessage(wrongVersion)).invalid).toEqual(['Message/@TransactionVersion']);
      const twoHeaders = good.replace(/<Header>.*<\/Header>/, (h) => h + h);
      expect(expectInvalid(() => parseScriptMessage(twoHeaders)).invalid).toContain('Message/Header');
    });
  });

  it('check digits: NPI (Luhn with 80840) and DEA registration numbers', () => {
    expect(isValidNpi('1234567893')).toBe(true);
    expect(isValidNpi('1234567890')).toBe(false);
    expect(isValidNpi('123456789')).toBe(false);
    expect(isValidDeaNumber('AB1234563')).toBe(true);
    expect(isValidDeaNumber('AB1234564')).toBe(false);
    expect(isValidDeaNumber('A11234563')).toBe(false);
  });
});

describe('electronic prior authorization (ePA) messages', () => {
  const samples = sampleMessages();
  type PA<T extends ScriptMessage['type']> = Extract<ScriptMessage, { type: T }>;
  const roundTrip = (m: ScriptMessage) => {
    expect(validateScriptMessage(m)).toEqual([]);
    const xml = buildScriptMessage(m);
    expect(parseScriptMessage(xml)).toEqual(m);
    return xml;
  };

  it('PARequest: the element structure and order, question set with answers, attachment metadata', () => {
    const doc = plain.parse(buildScriptMessage(samples.PARequest)).Message;
    expect(doc.Header.To).toEqual({ '#text': 'PAYER01', '@_Qualifier': 'ZZ' });
    const body = doc.Body.PARequest;
    expect(Object.keys(body)).toEqual(['PAReferenceID', 'PACaseID', 'Patient', 'Prescriber', 'MedicationPrescribed', 'QuestionSet', 'Attachment']);
    expect(body.QuestionSet.QuestionSetID).toBe('QS-1');
    expect(body.QuestionSet.Question[0]).toEqual({ QuestionID: 'Q1', QuestionText: 'Has the patient tried and failed a formulary alternative?', QuestionType: 'Select', Required: 'true', Choice: [{ ChoiceID: 'yes', ChoiceText: 'Yes' }, { ChoiceID: 'no', ChoiceText: 'No' }], Answer: 'yes' });
    expect(body.QuestionSet.Question[1]).toEqual({ QuestionID: 'Q2', QuestionText: 'Diagnosis (ICD-10)', QuestionType: 'FreeText', Required: 'true', Answer: 'I10' });
    expect(body.Attachment).toEqual({ AttachmentControlNumber: 'a'.repeat(64), FileName: 'notes.pdf', MIMEType: 'application/pdf', Size: '52311', Description: 'Chart notes' });
  });

  it('every response choice round-trips: initiation Open/Closed, determination Approved/Denied/Pended/Closed, appeal Approved/Denied', () => {
    const init = samples.PAInitiationResponse as PA<'PAInitiationResponse'>;
    expect(roundTrip({ ...init, response: { status: 'Closed', reasonCode: 'NR', note: 'No PA required' } })).toContain('<Response><Closed><ReasonCode>NR</ReasonCode><PANote>No PA required</PANote></Closed></Response>');
    const det = samples.PAResponse as PA<'PAResponse'>;
    // one question with one choice stays a list when parsed back
    const oneQuestion = { id: 'QS-2', questions: [{ id: 'Q4', text: 'Days on the alternative', type: 'Select' as const, required: true, choices: [{ id: '30', text: '30 days or more' }] }] };
    for (const response of [
      { status: 'Approved' as const, effectiveDate: '2026-12-01', expirationDate: '2027-11-30' },
      { status: 'Denied' as const, reasonCode: 'ST', note: 'Step therapy required' },
      { status: 'Pended' as const, questionSet: oneQuestion, note: 'More information needed' },
      { status: 'Closed' as const, reasonCode: 'CL' },
    ]) {
      const xml = roundTrip({ ...det, response });
      expect(Object.keys(plain.parse(xml).Message.Body.PAResponse.Response)).toEqual([response.status]);
    }
    const appeal = samples.PAAppealResponse as PA<'PAAppealResponse'>;
    expect(roundTrip({ ...appeal, response: { status: 'Approved', effectiveDate: '2026-12-01', expirationDate: '2027-05-31', note: 'Approved on appeal' } })).toContain('<EffectiveDate><Date>2026-12-01</Date></EffectiveDate>');
    const req = samples.PAAppealRequest as PA<'PAAppealRequest'>;
    roundTrip({ ...req, attachments: [{ controlNumber: 'b'.repeat(64), fileName: 'allergy.png', mimeType: 'image/png', sizeBytes: 1 }] });
  });

  it('refuses PA messages without their required elements or with malformed values, naming the paths', () => {
    const noCase = structuredClone(samples.PARequest) as PA<'PARequest'>;
    noCase.caseId = '';
    noCase.questionSet.questions[1]!.text = '';
    expect(expectInvalid(() => buildScriptMessage(noCase)).missing.sort()).toEqual(['Message/Body/PARequest/PACaseID', 'Message/Body/PARequest/QuestionSet/Question[2]/QuestionText'].sort());
    const badAttachment = structuredClone(samples.PARequest) as PA<'PARequest'>;
    badAttachment.attachments[0]!.controlNumber = 'not-a-digest';
    expect(expectInvalid(() => buildScriptMessage(badAttachment)).invalid).toEqual(['Message/Body/PARequest/Attachment/AttachmentControlNumber']);
    const badType = structuredClone(samples.PAInitiationResponse) as PA<'PAInitiationResponse'>;
    (badType.response as { questionSet: { questions: { type: string }[] } }).questionSet.questions[0]!.type = 'Essay';
    expect(expectInvalid(() => buildScriptMessage(badType)).invalid).toEqual(['Message/Body/PAInitiationResponse/Response/Open/QuestionSet/Question[1]/QuestionType']);
    const noQuestions = structuredClone(samples.PAInitiationResponse) as PA<'PAInitiationResponse'>;
    (noQuestions.response as { questionSet: { questions: unknown[] } }).questionSet.questions = [];
    expect(expectInvalid(() => buildScriptMessage(noQuestions)).missing).toEqual(['Message/Body/PAInitiationResponse/Response/Open/QuestionSet/Question']);
    const noReason = { ...samples.PAAppealRequest, reason: '' } as ScriptMessage;
    expect(expectInvalid(() => buildScriptMessage(noReason)).missing).toEqual(['Message/Body/PAAppealRequest/AppealReason']);
    // an answer must relate to the request (relates-to), and a response names its PA reference
    const unrelated = { ...samples.PAResponse, header: { ...samples.PAResponse.header, relatesToMessageId: undefined } } as ScriptMessage;
    expect(expectInvalid(() => buildScriptMessage(unrelated)).missing).toEqual(['Message/Header/RelatesToMessageID']);
  });

  it('parses an inbound PAResponse whose Response has no choice as invalid (nothing applied)', () => {
    const xml = buildScriptMessage(samples.PAResponse).replace(/<Response>.*<\/Response>/, '<Response></Response>');
    expect(() => parseScriptMessage(xml)).toThrow(ScriptValidationError);
  });
});
