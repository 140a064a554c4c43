import {
  CreateKeyCommand,
  DecryptCommand,
  DescribeKeyCommand,
  EncryptCommand,
  GenerateDataKeyCommand,
  KMSClient,
  ReEncryptCommand,
} from '@aws-sdk/client-kms';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { DEFAULT_ALIAS, KmsTestServer } from '../../../src/platform/crypto/index.js';
import { TEST_CREDENTIALS } from './helpers.js';

let server: KmsTestServer;
let kms: KMSClient;
const context = { tenantId: 't1', table: 'patients', column: 'ssn' };

beforeAll(async () => {
  server = await KmsTestServer.start();
  kms = new KMSClient({ region: 'us-east-1', endpoint: server.endpoint, credentials: TEST_CREDENTIALS, maxAttempts: 1 });
});
afterAll(async () => {
  kms.destroy();
  await server.close();
});
afterEach(() => {
  server.setDown(false);
  server.setLatency(0);
});

const errorName = (p: Promise<unknown>) => p.then(() => 'no error', (e: Error) => e.name);

describe('KMS test server (real @aws-sdk/client-kms over HTTP)', () => {
  it('GenerateDataKey returns a 32-byte key whose blob Decrypt unwraps with the same context', async () => {
    const gen = await kms.send(new GenerateDataKeyCommand({ KeyId: DEFAULT_ALIAS, KeySpec: 'AES_256', EncryptionContext: context }));
    expect(gen.KeyId).toBe(server.defaultKey.arn);
    expect(gen.Plaintext?.length).toBe(32);
    const dec = await kms.send(new DecryptCommand({ CiphertextBlob: gen.CiphertextBlob, EncryptionContext: context }));
    expect(Buffer.from(dec.Plaintext!).equals(Buffer.from(gen.Plaintext!))).toBe(true);
    expect(dec.KeyId).toBe(server.defaultKey.arn);
  });

  it('refuses a wrong or missing EncryptionContext with InvalidCiphertextException', async () => {
    const gen = await kms.send(new GenerateDataKeyCommand({ KeyId: server.defaultKey.keyId, KeySpec: 'AES_256', EncryptionContext: context }));
    const blob = gen.CiphertextBlob;
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: blob, EncryptionContext: { ...context, tenantId: 't2' } })))).toBe(
      'InvalidCiphertextException',
    );
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: blob })))).toBe('InvalidCiphertextException');
    const tampered = Buffer.from(blob!);
    tampered[20]! ^= 1;
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: tampered, EncryptionContext: context })))).toBe('InvalidCiphertextException');
  });

  it('Encrypt, ReEncrypt to another key, Decrypt; a mismatched KeyId is IncorrectKeyException', async () => {
    const other = server.createKey();
    const enc = await kms.send(new EncryptCommand({ KeyId: server.defaultKey.arn, Plaintext: Buffer.from('hello'), EncryptionContext: context }));
    const re = await kms.send(
      new ReEncryptCommand({
        CiphertextBlob: enc.CiphertextBlob,
        SourceEncryptionContext: context,
        DestinationKeyId: other.keyId,
        DestinationEncryptionContext: { purpose: 'moved' },
      }),
    );
    expect(re.SourceKeyId).toBe(server.defaultKey.arn);
    expect(re.KeyId).toBe(other.arn);
    const dec = await kms.send(new DecryptCommand({ CiphertextBlob: re.CiphertextBlob, KeyId: other.arn, EncryptionContext: { purpose: 'moved' } }));
    expect(Buffer.from(dec.Plaintext!).toString()).toBe('hello');
    expect(
      await errorName(kms.send(new DecryptCommand({ CiphertextBlob: re.CiphertextBlob, KeyId: server.defaultKey.arn, EncryptionContext: { purpose: 'moved' } }))),
    ).toBe('IncorrectKeyException');
  });

  it('DescribeKey resolves ids, ARNs and aliases; CreateKey and setAlias support rotation', async () => {
    const created = await kms.send(new CreateKeyCommand({ Description: 'next' }));
    const arn = created.KeyMetadata!.Arn!;
    expect(arn).toMatch(/^arn:aws:kms:us-east-1:000000000000:key\/[0-9a-f-]{36}$/);
    server.setAlias('alias/rotating', server.defaultKey.keyId);
    const before = await kms.send(new DescribeKeyCommand({ KeyId: 'alias/rotating' }));
    expect(before.KeyMetadata!.Arn).toBe(server.defaultKey.arn);
    server.setAlias('alias/rotating', arn);
    const after = await kms.send(new DescribeKeyCommand({ KeyId: 'arn:aws:kms:us-east-1:000000000000:alias/rotating' }));
    expect(after.KeyMetadata!.Arn).toBe(arn);
    expect(after.KeyMetadata!.Enabled).toBe(true);
    expect(await errorName(kms.send(new DescribeKeyCommand({ KeyId: 'alias/none' })))).toBe('NotFoundException');
  });

  it('injects AWS-style errors for the next n calls and counts calls per operation', async () => {
    server.resetCounts();
    server.failNext(2, 'ThrottlingException');
    server.failNext(1, 'AccessDeniedException', { operation: 'Decrypt' });
    const gen = () => kms.send(new GenerateDataKeyCommand({ KeyId: DEFAULT_ALIAS, KeySpec: 'AES_256' }));
    const err = await gen().catch((e: Error & { $metadata: { httpStatusCode: number } }) => e);
    expect(err).toMatchObject({ name: 'ThrottlingException', message: 'Rate exceeded', $metadata: { httpStatusCode: 400 } });
    expect(await errorName(gen())).toBe('ThrottlingException');
    const ok = await gen();
    expect(await errorName(kms.send(new DecryptCommand({ CiphertextBlob: ok.CiphertextBlob })))).toBe('AccessDeniedException');
    await kms.send(new DecryptCommand({ CiphertextBlob: ok.CiphertextBlob }));
    server.failNext(1, 'KMSInternalException');
    const internal = await gen().catch((e: { $metadata: { httpStatusCode: number } }) => e);
    expect(internal.$metadata.httpStatusCode).toBe(500);
    expect(server.callCount('GenerateDataKey')).toBe(4);
    expect(server.callCount('Decrypt')).toBe(2);
    expect(server.callCount()).toBe(6);
  });

  it('is unreachable while down, and serves again when back up', async () => {
    server.setDown(true);
    const err = await kms.send(new DescribeKeyCommand({ KeyId: DEFAULT_ALIAS })).catch((e: Error & { $metadata?: unknown }) => e);
    expect(err).toBeInstanceOf(Error);
    expect((err as { $metadata?: { httpStatusCode?: number } }).$metadata?.httpStatusCode).toBeUndefined();
    server.setDown(false);
    expect((await kms.send(new DescribeKeyCommand({ KeyId: DEFAULT_ALIAS }))).KeyMetadata?.Arn).toBe(server.defaultKey.arn);
  });

  it('delays responses by the configured latency', async () => {
    server.setLatency(120);
    const start = performance.now();
    await kms.send(new DescribeKeyCommand({ KeyId: DEFAULT_ALIAS }));
    expect(performance.now() - start).toBeGreaterThanOrEqual(110);
  });

  it('requires a SigV4 Authorization header and a known operation', async () => {
    const post = (headers: Record<string, string>) =>
      fetch(server.endpoint, { method: 'POST', headers: { 'content-type': 'application/x-amz-json-1.1', ...headers }, body: '{}' });
    const unsigned = await post({ 'x-amz-target': 'TrentService.DescribeKey' });
    expect(unsigned.status).toBe(400);
    expect(await unsigned.json()).toMatchObject({ __type: 'MissingAuthenticationTokenException' });
    const unknown = await post({ 'x-amz-target': 'TrentService.Nope', authorization: 'AWS4-HMAC-SHA256 Credential=test/...' });
    expect(unknown.headers.get('content-type')).toBe('application/x-amz-json-1.1');
    expect(await unknown.json()).toMatchObject({ __type: 'UnknownOperationException' });
  });

  it('keeps keys across restarts with a state file (mode 600)', async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kms-state-'));
    const stateFile = path.join(dir, 'kms.json');
    const first = await KmsTestServer.start({ stateFile });
    const client = new KMSClient({ region: 'us-east-1', endpoint: first.endpoint, credentials: TEST_CREDENTIALS, maxAttempts: 1 });
    const gen = await client.send(new GenerateDataKeyCommand({ KeyId: DEFAULT_ALIAS, KeySpec: 'AES_256', EncryptionContext: context }));
    client.destroy();
    await first.close();
    expect(fs.statSync(stateFile).mode & 0o777).toBe(0o600);

    const second = await KmsTestServer.start({ stateFile });
    const client2 = new KMSClient({ region: 'us-east-1', endpoint: second.endpoint, credentials: TEST_CREDENTIALS, maxAttempts: 1 });
    expect(second.defaultKey.arn).toBe(first.defaultKey.arn);
    const dec = await client2.send(new DecryptCommand({ CiphertextBlob: gen.CiphertextBlob, EncryptionContext: context }));
    expect(Buffer.from(dec.Plaintext!).equals(Buffer.from(gen.Plaintext!))).toBe(true);
    client2.destroy();
    await second.close();
    fs.rmSync(dir, { recursive: true });
  });
});
