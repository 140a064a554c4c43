import { createCipheriv, createDecipheriv, randomBytes, randomUUID } from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { contextBytes } from './types.js';

/**
 * A local stand-in for AWS KMS that speaks its wire protocol (JSON 1.1:
 * POST /, X-Amz-Target: TrentService.<Operation>, base64 blobs, errors as
 * {"__type": ..., "message": ...}), so tests and developers run the real
 * @aws-sdk/client-kms against it. SigV4 headers are required but not verified.
 *
 * Operations: GenerateDataKey, Decrypt, Encrypt, ReEncrypt, DescribeKey, CreateKey.
 * Its ciphertext blobs are its own: key uuid (16 bytes) | nonce (12) |
 * AES-256-GCM ciphertext | tag (16), with the encryption context as AAD, so
 * a wrong context is refused with InvalidCiphertextException as KMS does.
 *
 * Test controls: failNext(), setLatency(), setDown(), callCount(), createKey(), setAlias().
 */

export type KmsTestOperation = 'GenerateDataKey' | 'Decrypt' | 'Encrypt' | 'ReEncrypt' | 'DescribeKey' | 'CreateKey';

export interface KmsTestServerOptions {
  /** 0 (default) = any free port */
  port?: number;
  host?: string;
  region?: string;
  /** keep keys and aliases in this file (mode 600) so data survives restarts */
  stateFile?: string;
}

export interface TestKey {
  keyId: string;
  arn: string;
}

interface StoredKey extends TestKey {
  secret: Buffer;
  createdAt: number;
  description: string;
}

interface State {
  keys: Array<{ keyId: string; secret: string; createdAt: number; description: string }>;
  aliases: Record<string, string>;
  defaultKeyId: string;
}

class KmsError extends Error {
  constructor(
    readonly type: string,
    message: string,
  ) {
    super(message);
  }
}

const ACCOUNT = '000000000000';
export const DEFAULT_ALIAS = 'alias/carebase';
const SERVER_ERRORS: Record<string, number> = { KMSInternalException: 500, DependencyTimeoutException: 503 };

export class KmsTestServer {
  private readonly keys = new Map<string, StoredKey>();
  private readonly aliases = new Map<string, string>();
  private readonly failures: Array<{ remaining: number; type: string; operation?: string; message: string }> = [];
  private readonly counts = new Map<string, number>();
  private latencyMs = 0;
  private down = false;
  private defaultKeyId = '';
  private readonly region: string;
  private readonly server: http.Server;

  private constructor(private readonly opts: KmsTestServerOptions) {
    this.region = opts.region ?? 'us-east-1';
    this.server = http.createServer((req, res) => void this.handle(req, res));
    this.server.on('connection', (socket) => {
      if (this.down) socket.destroy();
    });
  }

  static async start(opts: KmsTestServerOptions = {}): Promise<KmsTestServer> {
    const s = new KmsTestServer(opts);
    s.loadOrInit();
    await new Promise<void>((resolve, reject) => {
      s.server.once('error', reject);
      s.server.listen(opts.port ?? 0, opts.host ?? '127.0.0.1', () => resolve());
    });
    return s;
  }

  get endpoint(): string {
    const a = this.server.address() as AddressInfo;
    const host = a.family === 'IPv6' ? `[${a.address}]` : a.address === '0.0.0.0' ? '127.0.0.1' : a.address;
    return `http://${host}:${a.port}`;
  }

  /** The key created at start (also reachable as alias/carebase). */
  get defaultKey(): TestKey {
    const k = this.keys.get(this.defaultKeyId)!;
    return { keyId: k.keyId, arn: k.arn };
  }

  createKey(opts: { alias?: string; description?: string } = {}): TestKey {
    const keyId = randomUUID();
    const key: StoredKey = { keyId, arn: this.arn(keyId), secret: randomBytes(32), createdAt: Math.floor(Date.now() / 1000), description: opts.description ?? '' };
    this.keys.set(keyId, key);
    if (opts.alias) this.aliases.set(opts.alias, keyId);
    this.save();
    return { keyId, arn: key.arn };
  }

  /** Points an alias ("alias/name") at a key, as `aws kms update-alias` would. */
  setAlias(alias: string, keyId: string): void {
    if (!alias.startsWith('alias/')) throw new Error('alias names start with alias/');
    this.aliases.set(alias, this.resolve(keyId).keyId);
    this.save();
  }

  /** The next `n` requests (of `operation`, or any) fail with a 4xx/5xx AWS error of `type`. */
  failNext(n: number, type = 'ThrottlingException', opts: { operation?: KmsTestOperation; message?: string } = {}): void {
    this.failures.push({ remaining: n, type, operation: opts.operation, message: opts.message ?? (type === 'ThrottlingException' ? 'Rate exceeded' : 'Injected failure') });
  }

  /** Delay every response by `ms`. */
  setLatency(ms: number): void {
    this.latencyMs = ms;
  }

  /** Down: open connections are closed and new ones reset, as if the service were unreachable. */
  setDown(down: boolean): void {
    this.down = down;
    if (down) this.server.closeAllConnections();
  }

  /** Requests received (including failed ones) for one operation, or in total. */
  callCount(operation?: KmsTestOperation): number {
    if (operation) return this.counts.get(operation) ?? 0;
    return [...this.counts.values()].reduce((a, b) => a + b, 0);
  }

  resetCounts(): void {
    this.counts.clear();
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    if (this.down) {
      req.socket.destroy();
      return;
    }
    let body: Buffer;
    try {
      body = await readBody(req);
    } catch {
      req.socket.destroy();
      return;
    }
    const target = String(req.headers['x-amz-target'] ?? '');
    const operation = target.startsWith('TrentService.') ? target.slice('TrentService.'.length) : '';
    this.counts.set(operation, (this.counts.get(operation) ?? 0) + 1);
    if (this.latencyMs > 0) await new Promise((r) => setTimeout(r, this.latencyMs));
    if (this.down) {
      req.socket.destroy();
      return;
    }
    let status = 200;
    let payload: unknown;
    try {
      if (req.method !== 'POST') throw new KmsError('UnknownOperationException', 'POST only');
      if (!String(req.headers.authorization ?? '').startsWith('AWS4-HMAC-SHA256 ')) {
        throw new KmsError('MissingAuthenticationTokenException', 'Missing Authentication Token');
      }
      const failure = this.failures.find((f) => f.remaining > 0 && (!f.operation || f.operation === operation));
      if (failure) {
        failure.remaining--;
        throw new KmsError(failure.type, failure.message);
      }
      let input: Record<string, unknown>;
      try {
        input = JSON.parse(body.toString('utf8') || '{}') as Record<string, unknown>;
      } catch {
        throw new KmsError('SerializationException', 'Malformed JSON');
      }
      payload = this.dispatch(operation, input);
    } catch (err) {
      const e = err instanceof KmsError ? err : new KmsError('KMSInternalException', 'Internal error');
      status = SERVER_ERRORS[e.type] ?? 400;
      payload = { __type: e.type, message: e.message };
      res.setHeader('x-amzn-ErrorType', e.type);
    }
    const out = JSON.stringify(payload);
    res.writeHead(status, {
      'content-type': 'application/x-amz-json-1.1',
      'content-length': Buffer.byteLength(out),
      'x-amzn-RequestId': randomUUID(),
    });
    res.end(out);
  }

  private dispatch(operation: string, input: Record<string, unknown>): unknown {
    switch (operation) {
      case 'GenerateDataKey': {
        const key = this.resolve(str(input, 'KeyId'));
        const bytes = input.NumberOfBytes !== undefined ? Number(input.NumberOfBytes) : keySpecBytes(input.KeySpec);
        if (!Number.isInteger(bytes) || bytes < 1 || bytes > 1024) throw new KmsError('ValidationException', 'NumberOfBytes must be 1..1024');
        const plaintext = randomBytes(bytes);
        return { KeyId: key.arn, Plaintext: plaintext.toString('base64'), CiphertextBlob: this.wrap(key, plaintext, ctxOf(input, 'EncryptionContext')).toString('base64') };
      }
      case 'Encrypt': {
        const key = this.resolve(str(input, 'KeyId'));
        const plaintext = blob(input, 'Plaintext');
        if (plaintext.length > 4096) throw new KmsError('ValidationException', 'Plaintext is longer than 4096 bytes');
        return { KeyId: key.arn, CiphertextBlob: this.wrap(key, plaintext, ctxOf(input, 'EncryptionContext')).toString('base64'), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
      }
      case 'Decrypt': {
        const { key, plaintext } = this.unwrap(blob(input, 'CiphertextBlob'), ctxOf(input, 'EncryptionContext'), input.KeyId);
        return { KeyId: key.arn, Plaintext: plaintext.toString('base64'), EncryptionAlgorithm: 'SYMMETRIC_DEFAULT' };
      }
      case 'ReEncrypt': {
        const source = this.unwrap(blob(input, 'CiphertextBlob'), ctxOf(input, 'SourceEncryptionContext'), input.SourceKeyId);
        const dest = this.resolve(str(input, 'DestinationKeyId'));
        return {
          SourceKeyId: source.key.arn,
          KeyId: dest.arn,
          CiphertextBlob: this.wrap(dest, source.plaintext, ctxOf(input, 'DestinationEncryptionContext')).toString('base64'),
          SourceEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
          DestinationEncryptionAlgorithm: 'SYMMETRIC_DEFAULT',
        };
      }
      case 'DescribeKey':
        return { KeyMetadata: this.metadata(this.resolve(str(input, 'KeyId'))) };
      case 'CreateKey': {
        const { keyId } = this.createKey({ description: typeof input.Description === 'string' ? input.Description : '' });
        return { KeyMetadata: this.metadata(this.keys.get(keyId)!) };
      }
      default:
        throw new KmsError('UnknownOperationException', 'Unknown operation');
    }
  }

  private wrap(key: StoredKey, plaintext: Buffer, context: Record<string, string>): Buffer {
    const nonce = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', key.secret, nonce);
    cipher.setAAD(contextBytes(context));
    const ct = Buffer.concat([cipher.update(plaintext), cipher.final()]);
    return Buffer.concat([Buffer.from(key.keyId.replace(/-/g, ''), 'hex'), nonce, ct, cipher.getAuthTag()]);
  }

  private unwrap(ciphertext: Buffer, context: Record<string, string>, expectedKeyId: unknown): { key: StoredKey; plaintext: Buffer } {
    if (ciphertext.length < 16 + 12 + 16) throw new KmsError('InvalidCiphertextException', '');
    const hex = ciphertext.subarray(0, 16).toString('hex');
    const keyId = `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
    const key = this.keys.get(keyId);
    if (!key) throw new KmsError('InvalidCiphertextException', '');
    if (expectedKeyId !== undefined && this.resolve(String(expectedKeyId)).keyId !== keyId) {
      throw new KmsError('IncorrectKeyException', 'The key ID in the request does not identify the key that encrypted the ciphertext');
    }
    try {
      const decipher = createDecipheriv('aes-256-gcm', key.secret, ciphertext.subarray(16, 28));
      decipher.setAAD(contextBytes(context));
      decipher.setAuthTag(ciphertext.subarray(ciphertext.length - 16));
      return { key, plaintext: Buffer.concat([decipher.update(ciphertext.subarray(28, ciphertext.length - 16)), decipher.final()]) };
    } catch {
      throw new KmsError('InvalidCiphertextException', '');
    }
  }

  /** Key id, key ARN, alias name or alias ARN → key; NotFoundException otherwise. */
  private resolve(id: string): StoredKey {
    const arn = /^arn:aws:kms:[^:]+:\d{12}:(key\/.+|alias\/.+)$/.exec(id);
    const ref = arn ? arn[1]! : id;
    const keyId = ref.startsWith('alias/') ? this.aliases.get(ref) : ref.replace(/^key\//, '');
    const key = keyId ? this.keys.get(keyId) : undefined;
    if (!key) throw new KmsError('NotFoundException', `Key '${id}' does not exist`);
    return key;
  }

  private metadata(k: StoredKey) {
    return {
      AWSAccountId: ACCOUNT,
      KeyId: k.keyId,
      Arn: k.arn,
      CreationDate: k.createdAt,
      Enabled: true,
      Description: k.description,
      KeyUsage: 'ENCRYPT_DECRYPT',
      KeyState: 'Enabled',
      Origin: 'AWS_KMS',
      KeyManager: 'CUSTOMER',
      KeySpec: 'SYMMETRIC_DEFAULT',
      CustomerMasterKeySpec: 'SYMMETRIC_DEFAULT',
      EncryptionAlgorithms: ['SYMMETRIC_DEFAULT'],
    };
  }

  private arn(keyId: string): string {
    return `arn:aws:kms:${this.region}:${ACCOUNT}:key/${keyId}`;
  }

  private loadOrInit(): void {
    const file = this.opts.stateFile;
    if (file && fs.existsSync(file)) {
      const state = JSON.parse(fs.readFileSync(file, 'utf8')) as State;
      for (const k of state.keys) {
        this.keys.set(k.keyId, { keyId: k.keyId, arn: this.arn(k.keyId), secret: Buffer.from(k.secret, 'base64'), createdAt: k.createdAt, description: k.description });
      }
      for (const [alias, keyId] of Object.entries(state.aliases)) this.aliases.set(alias, keyId);
      this.defaultKeyId = state.defaultKeyId;
      return;
    }
    this.defaultKeyId = this.createKey({ alias: DEFAULT_ALIAS, description: 'carebase default test key' }).keyId;
    this.save();
  }

  private save(): void {
    const file = this.opts.stateFile;
    if (!file || !this.defaultKeyId) return;
    const state: State = {
      keys: [...this.keys.values()].map((k) => ({ keyId: k.keyId, secret: k.secret.toString('base64'), createdAt: k.createdAt, description: k.description })),
      aliases: Object.fromEntries(this.aliases),
      defaultKeyId: this.defaultKeyId,
    };
    const tmp = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(tmp, JSON.stringify(state), { mode: 0o600 });
    fs.renameSync(tmp, file);
  }
}

function readBody(req: http.IncomingMessage): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > 1024 * 1024) reject(new Error('too large'));
      else chunks.push(c);
    });
    req.on('end', () => resolve(Buffer.concat(chunks)));
    req.on('error', reject);
  });
}

function str(input: Record<string, unknown>, field: string): string {
  const v = input[field];
  if (typeof v !== 'string' || v.length === 0) throw new KmsError('ValidationException', `${field} is required`);
  return v;
}

function blob(input: Record<string, unknown>, field: string): Buffer {
  const b = Buffer.from(str(input, field), 'base64');
  if (b.length === 0) throw new KmsError('ValidationException', `${field} must be base64`);
  return b;
}

function ctxOf(input: Record<string, unknown>, field: string): Record<string, string> {
  const v = input[field] ?? {};
  if (typeof v !== 'object' || v === null || Object.values(v).some((x) => typeof x !== 'string')) {
    throw new KmsError('ValidationException', `${field} must map strings to strings`);
  }
  return v as Record<string, string>;
}

function keySpecBytes(spec: unknown): number {
  if (spec === 'AES_256') return 32;
  if (spec === 'AES_128') return 16;
  throw new KmsError('ValidationException', 'KeySpec or NumberOfBytes is required');
}
