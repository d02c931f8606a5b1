/**
 * `createAdminHandler(guarded, { token })`: an admin endpoint for node:http and Express, mounted
 * where the application wants it — GET <mount>/status reads the live status, POST <mount>/config
 * changes settings through `updateConfig` (validated: a bad patch changes nothing and answers
 * 400 with the reason). Every request needs `Authorization: Bearer <token>`.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { GuardConfigError, describeValue, isGuardError } from './errors';
import type { GuardOptions } from './config/options';
import type { GuardStatus } from './status';

/** What the handler needs of a guarded client or fetch: its controller. */
export interface AdminTarget {
  readonly guard: { status(): GuardStatus; updateConfig(patch: GuardOptions): void };
}

export interface AdminOptions {
  /** The bearer token callers must send; at least 16 characters. */
  token: string;
  /** A config patch larger than this is refused (413) before it is parsed. Default 64 KiB. */
  maxBodyBytes?: number;
}

export type AdminHandler = (req: IncomingMessage, res: ServerResponse, next?: (error?: unknown) => void) => void;

const MIN_TOKEN_LENGTH = 16;

/** Compares in constant time (hashes first, so lengths never leak either). */
function sameSecret(given: string, expected: Buffer): boolean {
  return timingSafeEqual(createHash('sha256').update(given).digest(), expected);
}

function send(res: ServerResponse, status: number, body: unknown, headers: Record<string, string> = {}): void {
  if (res.headersSent) return;
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'cache-control': 'no-store', ...headers });
  res.end(JSON.stringify(body));
}

export function createAdminHandler(target: AdminTarget, options: AdminOptions): AdminHandler {
  if (typeof target?.guard?.status !== 'function') throw new GuardConfigError('guarded', describeValue(target), 'a client or fetch made by createGuardedClient / createGuardedFetch', 'argument');
  const token = options?.token;
  if (typeof token !== 'string' || token.length < MIN_TOKEN_LENGTH) {
    // The value itself is a secret: only its length is named.
    throw new GuardConfigError('token', typeof token === 'string' ? `a string of ${token.length} characters` : describeValue(token), `a secret of at least ${MIN_TOKEN_LENGTH} characters`, 'argument');
  }
  const maxBody = options.maxBodyBytes ?? 64 * 1024;
  if (!Number.isInteger(maxBody) || maxBody < 1) throw new GuardConfigError('maxBodyBytes', describeValue(maxBody), 'a positive integer (bytes)', 'argument');
  const expected = createHash('sha256').update(token).digest();

  return (req, res, next) => {
    const path = (req.url ?? '/').split('?')[0]!.replace(/\/+$/, '');
    const route = path.endsWith('/status') ? 'status' : path.endsWith('/config') ? 'config' : undefined;
    const auth = req.headers.authorization;
    if (typeof auth !== 'string' || !auth.startsWith('Bearer ') || !sameSecret(auth.slice(7), expected)) {
      return send(res, 401, { error: 'unauthorized', message: 'Send Authorization: Bearer <admin token>.' }, { 'www-authenticate': 'Bearer' });
    }
    if (route === 'status' && req.method === 'GET') return send(res, 200, target.guard.status());
    if (route === 'config' && req.method === 'POST') return void updateConfig(target, req, res, maxBody).catch((error: unknown) => (next ? next(error) : send(res, 500, { error: 'internal' })));
    send(res, 404, { error: 'not_found', message: 'GET <mount>/status or POST <mount>/config.' });
  };
}

/** Reads a JSON patch (at most `maxBody` bytes), applies it, answers with the new status. */
async function updateConfig(target: AdminTarget, req: IncomingMessage & { body?: unknown }, res: ServerResponse, maxBody: number): Promise<void> {
  let patch: unknown;
  if (req.body !== undefined && typeof req.body === 'object' && req.body !== null && !Buffer.isBuffer(req.body)) {
    patch = req.body; // already parsed (express.json())
  } else {
    const declared = Number(req.headers['content-length']);
    if (Number.isFinite(declared) && declared > maxBody) return tooLarge(req, res, maxBody);
    const chunks: Buffer[] = [];
    let size = 0;
    for await (const chunk of req) {
      size += (chunk as Buffer).length;
      if (size > maxBody) return tooLarge(req, res, maxBody);
      chunks.push(chunk as Buffer);
    }
    try {
      patch = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    } catch (error) {
      return send(res, 400, { error: 'invalid_json', message: `The body is not valid JSON: ${(error as Error).message}` });
    }
  }
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return send(res, 400, { error: 'invalid_config', message: 'The body must be a JSON object of settings (a GuardOptions patch).' });
  try {
    target.guard.updateConfig(patch as GuardOptions);
  } catch (error) {
    if (isGuardError(error)) return send(res, 400, { error: 'invalid_config', message: (error as Error).message });
    throw error;
  }
  send(res, 200, target.guard.status());
}

function tooLarge(req: IncomingMessage, res: ServerResponse, maxBody: number): void {
  send(res, 413, { error: 'too_large', message: `A config patch is at most ${maxBody} bytes.` }, { connection: 'close' });
  req.resume(); // drop the rest unread
}
