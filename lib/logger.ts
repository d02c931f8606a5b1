/** pino-compatible: the guard always calls `logger.level(fields, message)`. */
export interface Logger {
  debug(fields: Record<string, unknown>, message: string): void;
  info(fields: Record<string, unknown>, message: string): void;
  warn(fields: Record<string, unknown>, message: string): void;
  error(fields: Record<string, unknown>, message: string): void;
}

export type LogLevel = 'debug' | 'info' | 'warn' | 'error' | 'silent';
const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40, silent: 100 };

const noop = () => {};

/** One line per entry on stderr: `[guarded-llm] warn message {"field":1}`. */
export function consoleLogger(level: LogLevel): Logger {
  const at = (name: Exclude<LogLevel, 'silent'>) =>
    RANK[name] < RANK[level]
      ? noop
      : (fields: Record<string, unknown>, message: string) => {
          const extra = Object.keys(fields).length ? ' ' + safeJson(fields) : '';
          process.stderr.write(`[guarded-llm] ${name} ${message}${extra}\n`);
        };
  return { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') };
}

function safeJson(value: unknown): string {
  try {
    return JSON.stringify(value);
  } catch {
    return '[unserialisable]';
  }
}

export function isLogger(value: unknown): value is Logger {
  const l = value as Logger;
  return (
    typeof value === 'object' && value !== null && typeof l.debug === 'function' && typeof l.info === 'function' &&
    typeof l.warn === 'function' && typeof l.error === 'function'
  );
}
