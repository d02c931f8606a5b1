import { createHash } from 'node:crypto';
import type { Redis } from 'ioredis';

/** A Lua script with its SHA, run by EVALSHA. */
export interface RedisScript {
  readonly text: string;
  readonly sha: string;
}

export const redisScript = (text: string): RedisScript => ({ text, sha: createHash('sha1').update(text).digest('hex') });

/** Runs a script by its SHA, loading it on the first NOSCRIPT (after a restart or a flush). */
export async function runScript(client: Redis, script: RedisScript, keys: string[], args: string[]): Promise<unknown> {
  try {
    return await client.evalsha(script.sha, keys.length, ...keys, ...args);
  } catch (error) {
    if (!(error instanceof Error) || !/NOSCRIPT/.test(error.message)) throw error;
    return client.eval(script.text, keys.length, ...keys, ...args);
  }
}
