import { createHash, timingSafeEqual } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Sha256 } from '@smithy/core/checksum';
import { SignatureV4 } from '@smithy/signature-v4';

/**
 * A local S3-compatible server for tests and development: the REST subset the blob store uses (path-style
 * `PUT`/`GET`/`HEAD`/`DELETE /<bucket>/<key>`), S3's XML error bodies (NoSuchKey, NoSuchBucket, AccessDenied,
 * SignatureDoesNotMatch, XAmzContentSHA256Mismatch) and AWS Signature V4 verified on every request: the simulator signs
 * the request it received again with the secret of the access key named in the credential scope (`@smithy/signature-v4`,
 * the AWS SDK's own signer) and compares, and checks the body against `x-amz-content-sha256`. Objects live in memory.
 */
export interface S3SimulatorOptions {
  accessKeyId: string;
  secretAccessKey: string;
  bucket: string;
  region?: string;
}

interface Stored {
  body: Buffer;
  contentType: string;
  etag: string;
}

const xmlError = (code: string, message: string, resource: string) =>
  `<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>${code}</Code><Message>${message}</Message><Resource>${resource.replace(/[<>&]/g, '')}</Resource><RequestId>carebase-s3-simulator</RequestId></Error>`;

/** `20261204T051500Z` -> Date */
function amzDate(v: string | undefined): Date | undefined {
  const m = v && /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(v);
  return m ? new Date(Date.UTC(+m[1]!, +m[2]! - 1, +m[3]!, +m[4]!, +m[5]!, +m[6]!)) : undefined;
}

export class S3Simulator {
  readonly objects = new Map<string, Stored>();
  /** every request the simulator refused, by S3 error code (tests) */
  readonly refusals: string[] = [];

  private constructor(
    private readonly server: http.Server,
    readonly url: string,
    private readonly opts: Required<S3SimulatorOptions>,
  ) {}

  static async start(options: S3SimulatorOptions): Promise<S3Simulator> {
    const opts = { region: 'us-east-1', ...options };
    let sim!: S3Simulator;
    const server = http.createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        sim.handle(req, Buffer.concat(chunks)).then(
          ({ status, headers, body }) => {
            res.writeHead(status, headers);
            res.end(req.method === 'HEAD' ? undefined : body);
          },
          () => {
            res.writeHead(500, { 'content-type': 'application/xml' });
            res.end(xmlError('InternalError', 'We encountered an internal error.', req.url ?? ''));
          },
        );
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    const { port } = server.address() as AddressInfo;
    sim = new S3Simulator(server, `http://127.0.0.1:${port}`, opts);
    return sim;
  }

  async close(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((r) => this.server.close(() => r()));
  }

  private refuse(status: number, code: string, message: string, resource: string) {
    this.refusals.push(code);
    return { status, headers: { 'content-type': 'application/xml' }, body: xmlError(code, message, resource) as string | Buffer };
  }

  /** Verifies the request's Signature V4; undefined when it holds, else the S3 error code. */
  private async verify(req: http.IncomingMessage, url: URL, body: Buffer): Promise<string | undefined> {
    const auth = req.headers.authorization;
    const m = typeof auth === 'string' ? /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request, ?SignedHeaders=([a-z0-9;-]+), ?Signature=([0-9a-f]{64})$/.exec(auth) : null;
    if (!m) return 'AccessDenied';
    const [, accessKeyId, , region, signedHeaders] = m;
    if (accessKeyId !== this.opts.accessKeyId) return 'InvalidAccessKeyId';
    const declared = req.headers['x-amz-content-sha256'];
    if (typeof declared !== 'string') return 'AccessDenied';
    if (declared !== 'UNSIGNED-PAYLOAD' && declared !== createHash('sha256').update(body).digest('hex')) return 'XAmzContentSHA256Mismatch';
    const signingDate = amzDate(req.headers['x-amz-date'] as string | undefined);
    if (!signingDate || Math.abs(Date.now() - signingDate.getTime()) > 15 * 60_000) return 'RequestTimeTooSkewed';
    const headers: Record<string, string> = {};
    for (const name of signedHeaders!.split(';')) {
      const v = req.headers[name];
      if (v === undefined) return 'SignatureDoesNotMatch';
      headers[name] = Array.isArray(v) ? v.join(',') : v;
    }
    const query: Record<string, string> = {};
    for (const [k, v] of url.searchParams) query[k] = v;
    const signer = new SignatureV4({ service: 's3', region: region!, credentials: { accessKeyId: this.opts.accessKeyId, secretAccessKey: this.opts.secretAccessKey }, sha256: Sha256, uriEscapePath: false, applyChecksum: true });
    const signed = await signer.sign(
      { method: req.method!, protocol: 'http:', hostname: url.hostname, port: Number(url.port) || undefined, path: url.pathname, query, headers, body },
      { signingDate, signingRegion: region, signingService: 's3' },
    );
    const expected = Buffer.from(String(signed.headers.authorization ?? signed.headers.Authorization ?? ''));
    const got = Buffer.from(auth!);
    return expected.length === got.length && timingSafeEqual(expected, got) ? undefined : 'SignatureDoesNotMatch';
  }

  private async handle(req: http.IncomingMessage, body: Buffer) {
    const url = new URL(req.url ?? '/', 'http://127.0.0.1');
    const refused = await this.verify(req, url, body);
    if (refused) return this.refuse(403, refused, 'The request signature we calculated does not match the signature you provided.', url.pathname);
    const [, bucket, ...rest] = url.pathname.split('/');
    const key = rest.map(decodeURIComponent).join('/');
    if (bucket !== this.opts.bucket) return this.refuse(404, 'NoSuchBucket', 'The specified bucket does not exist', url.pathname);
    if (!key) return this.refuse(400, 'InvalidRequest', 'This simulator serves objects only', url.pathname);
    switch (req.method) {
      case 'PUT': {
        const etag = `"${createHash('md5').update(body).digest('hex')}"`;
        this.objects.set(key, { body, contentType: String(req.headers['content-type'] ?? 'binary/octet-stream'), etag });
        return { status: 200, headers: { etag }, body: '' as string | Buffer };
      }
      case 'GET':
      case 'HEAD': {
        const obj = this.objects.get(key);
        if (!obj) return this.refuse(404, 'NoSuchKey', 'The specified key does not exist.', url.pathname);
        return { status: 200, headers: { 'content-type': obj.contentType, 'content-length': String(obj.body.length), etag: obj.etag }, body: obj.body };
      }
      case 'DELETE':
        this.objects.delete(key);
        return { status: 204, headers: {}, body: '' };
      default:
        return this.refuse(405, 'MethodNotAllowed', 'The specified method is not allowed against this resource.', url.pathname);
    }
  }
}
