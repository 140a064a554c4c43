import { XMLBuilder, XMLParser, XMLValidator } from 'fast-xml-parser';
import { AppError, ErrorCode } from '../../../platform/errors.js';
import { fromTree, toTree } from './codec.js';
import { SCRIPT_MESSAGE_TYPES, SCRIPT_NAMESPACE, SCRIPT_SCHEMA_VERSION, type ScriptMessage, type ScriptMessageType } from './model.js';
import { messageSpec, orderTree, validateTree, type SpecIssue, type XmlElement, type XmlNode } from './spec.js';

export * from './model.js';
export { isValidNpi, isValidDeaNumber, isCalendarDate, messageSpec, type SpecIssue } from './spec.js';

/**
 * NCPDP SCRIPT 2017071: build (validated before it leaves) and parse
 * (validated before anything acts on it) the messages of the prescription
 * lifecycle, with fast-xml-parser.
 *
 * Errors are AppErrors with code BAD_USER_INPUT and a stable
 * `extensions.reason`:
 *   SCRIPT_INVALID        required elements missing / values malformed (`missing`, `invalid`: element paths)
 *   SCRIPT_MALFORMED      not well-formed XML, a DOCTYPE, not a Message
 *   SCRIPT_UNSUPPORTED    a Body transaction this module does not handle
 *   SCRIPT_TOO_LARGE      over MAX_SCRIPT_BYTES
 * Neither the message nor the paths carry a value (values are PHI).
 */

export const MAX_SCRIPT_BYTES = 256 * 1024;

export class ScriptValidationError extends AppError {
  readonly missing: string[];
  readonly invalid: string[];
  constructor(
    readonly messageType: ScriptMessageType,
    issues: readonly SpecIssue[],
  ) {
    const missing = issues.filter((i) => i.problem === 'missing').map((i) => i.path);
    const invalid = issues.filter((i) => i.problem !== 'missing').map((i) => i.path);
    super(ErrorCode.BAD_USER_INPUT, `SCRIPT ${messageType} is not valid: ${missing.length} required element(s) missing, ${invalid.length} malformed`, {
      reason: 'SCRIPT_INVALID',
      messageType,
      missing,
      invalid,
    });
    this.missing = missing;
    this.invalid = invalid;
  }
}

export type ScriptParseReason = 'SCRIPT_MALFORMED' | 'SCRIPT_UNSUPPORTED' | 'SCRIPT_TOO_LARGE';
export class ScriptParseError extends AppError {
  constructor(
    readonly reason: ScriptParseReason,
    message: string,
  ) {
    super(ErrorCode.BAD_USER_INPUT, message, { reason });
  }
}

/** Elements that may repeat: always arrays, also when there is one. */
const REPEATED = new Set(['MedicationRequested', 'Question', 'Choice', 'Attachment']);

const builder = new XMLBuilder({ ignoreAttributes: false, attributeNamePrefix: '@_', textNodeName: '#text', suppressEmptyNode: true, format: false, processEntities: true });
const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '@_',
  textNodeName: '#text',
  parseTagValue: false,
  parseAttributeValue: false,
  trimValues: true,
  removeNSPrefix: true,
  ignoreDeclaration: true,
  ignorePiTags: true,
  htmlEntities: true,
  isArray: (name) => REPEATED.has(name),
});

/** Rules across elements that a structure cannot say (21 CFR 1306 / 1311, SCRIPT implementation guide). */
function crossChecks(m: ScriptMessage): SpecIssue[] {
  const issues: SpecIssue[] = [];
  const base = `Message/Body/${m.type}`;
  const prescriberSends = m.type === 'NewRx' || m.type === 'CancelRx' || m.type === 'RxRenewalResponse' || m.type === 'RxChangeResponse';
  if (prescriberSends && m.medication.deaSchedule) {
    // a controlled substance names the prescriber's DEA registration
    if (!m.prescriber.deaNumber) issues.push({ path: `${base}/Prescriber/NonVeterinarian/Identification/DEANumber`, problem: 'missing' });
    // no refills on schedule II (21 CFR 1306.12(a))
    if (m.medication.deaSchedule === 'CII' && (m.medication.numberOfRefills ?? 0) > 0) issues.push({ path: `${base}/MedicationPrescribed/NumberOfRefills`, problem: 'invalid' });
  }
  if ((m.type === 'NewRx' || m.type === 'RxRenewalResponse') && m.header.digitalSignature?.indicator && !m.header.digitalSignature.signatureValue) {
    issues.push({ path: 'Message/Header/DigitalSignature/SignatureValue', problem: 'missing' });
  }
  return issues;
}

function messageTree(m: ScriptMessage): XmlElement {
  const { header, body } = toTree(m);
  return {
    '@_DatatypesVersion': SCRIPT_SCHEMA_VERSION,
    '@_TransportVersion': SCRIPT_SCHEMA_VERSION,
    '@_TransactionDomain': 'SCRIPT',
    '@_TransactionVersion': SCRIPT_SCHEMA_VERSION,
    '@_StructuresVersion': SCRIPT_SCHEMA_VERSION,
    '@_ECLVersion': SCRIPT_SCHEMA_VERSION,
    Header: header,
    Body: body,
  };
}

/** Every missing required element and malformed value of a message, as element paths (empty: valid). */
export function validateScriptMessage(m: ScriptMessage): SpecIssue[] {
  if (!SCRIPT_MESSAGE_TYPES.includes(m?.type)) return [{ path: 'Message/Body', problem: 'choice' }];
  const spec = messageSpec(m.type);
  const tree = orderTree(spec, messageTree(m)) as XmlElement;
  return [...validateTree(spec, tree, 'Message'), ...crossChecks(m)];
}

/** The message as SCRIPT 2017071 XML; ScriptValidationError (nothing built) when a required element is missing or malformed. */
export function buildScriptMessage(m: ScriptMessage): string {
  const spec = messageSpec(m.type);
  const tree = orderTree(spec, messageTree(m)) as XmlElement;
  const issues = [...validateTree(spec, tree, 'Message'), ...crossChecks(m)];
  if (issues.length) throw new ScriptValidationError(m.type, issues);
  return builder.build({ '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' }, Message: { '@_xmlns': SCRIPT_NAMESPACE, ...tree } }) as string;
}

/** The message type of a SCRIPT document without validating it (routing); undefined when it is not one. */
export function peekMessageType(xml: string): ScriptMessageType | undefined {
  const m = /<(?:\w+:)?Body\b[^>]*>\s*<(?:\w+:)?(\w+)/.exec(xml);
  const t = m?.[1] as ScriptMessageType | undefined;
  return t && SCRIPT_MESSAGE_TYPES.includes(t) ? t : undefined;
}

/**
 * A SCRIPT 2017071 message from XML: well-formed, no DOCTYPE, a Message with
 * one known Body transaction, every required element present and valid.
 */
export function parseScriptMessage(input: string | Buffer): ScriptMessage {
  const bytes = typeof input === 'string' ? Buffer.byteLength(input) : input.length;
  if (bytes > MAX_SCRIPT_BYTES) throw new ScriptParseError('SCRIPT_TOO_LARGE', `SCRIPT message is larger than ${MAX_SCRIPT_BYTES} bytes`);
  const xml = typeof input === 'string' ? input : input.toString('utf8');
  // SCRIPT never uses a DTD: refusing one closes entity expansion and external entities
  if (/<!DOCTYPE|<!ENTITY/i.test(xml)) throw new ScriptParseError('SCRIPT_MALFORMED', 'SCRIPT message must not contain a DOCTYPE or ENTITY declaration');
  if (!xml.trim()) throw new ScriptParseError('SCRIPT_MALFORMED', 'SCRIPT message is empty');
  const wellFormed = XMLValidator.validate(xml);
  if (wellFormed !== true) throw new ScriptParseError('SCRIPT_MALFORMED', `SCRIPT message is not well-formed XML (line ${wellFormed.err.line}, column ${wellFormed.err.col})`);
  let doc: Record<string, unknown>;
  try {
    doc = parser.parse(xml) as Record<string, unknown>;
  } catch {
    throw new ScriptParseError('SCRIPT_MALFORMED', 'SCRIPT message is not well-formed XML');
  }
  const roots = Object.keys(doc);
  const message = doc.Message;
  if (roots.length !== 1 || !message || typeof message !== 'object' || Array.isArray(message)) throw new ScriptParseError('SCRIPT_MALFORMED', 'SCRIPT document root must be one Message element');
  const body = (message as XmlElement).Body;
  if (!body || typeof body !== 'object' || Array.isArray(body)) throw new ScriptParseError('SCRIPT_MALFORMED', 'SCRIPT Message must have one Body element');
  const transactions = Object.keys(body).filter((k) => !k.startsWith('@_') && k !== '#text');
  if (transactions.length !== 1) throw new ScriptParseError('SCRIPT_MALFORMED', 'SCRIPT Body must hold exactly one transaction');
  const type = transactions[0] as ScriptMessageType;
  if (!SCRIPT_MESSAGE_TYPES.includes(type)) throw new ScriptParseError('SCRIPT_UNSUPPORTED', `SCRIPT transaction ${type.slice(0, 40).replace(/[^A-Za-z]/g, '')} is not supported`);
  const spec = messageSpec(type);
  const issues = validateTree(spec, message as XmlNode, 'Message');
  if (issues.length) throw new ScriptValidationError(type, issues);
  const header = (message as XmlElement).Header as XmlNode;
  const parsed = fromTree(type, header, (body as XmlElement)[type] as XmlNode);
  const cross = crossChecks(parsed);
  if (cross.length) throw new ScriptValidationError(type, cross);
  return parsed;
}
