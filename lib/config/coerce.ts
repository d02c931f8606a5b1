import { parseBudgetWindow } from '../internal/windows';
import type { SettingType } from './settings';

/** What a value that does not fit its setting's type coerces to. */
export type Bad = { bad: true };
export const BAD: Bad = { bad: true };

/** Parses and checks one value; `fromEnv` values are strings and get lenient parsing. */
export function coerce(type: SettingType, value: unknown, fromEnv: boolean): unknown {
  switch (type.kind) {
    case 'boolean': {
      if (typeof value === 'boolean') return value;
      if (!fromEnv || typeof value !== 'string') return BAD;
      const v = value.trim().toLowerCase();
      return v === 'true' || v === '1' || v === 'yes' || v === 'on' ? true : v === 'false' || v === '0' || v === 'no' || v === 'off' ? false : BAD;
    }
    case 'integer':
    case 'number': {
      let n: number;
      if (typeof value === 'number') n = value;
      else if (fromEnv && typeof value === 'string' && /^\s*-?(\d+\.?\d*|\.\d+)(e[+-]?\d+)?\s*$/i.test(value)) n = Number(value);
      else return BAD;
      if (!Number.isFinite(n) || (type.kind === 'integer' && !Number.isInteger(n))) return BAD;
      const tooLow = type.kind === 'number' && type.exclusiveMin ? n <= type.min : n < type.min;
      return tooLow || n > type.max ? BAD : n;
    }
    case 'enum': {
      if (typeof value !== 'string') return BAD;
      const v = fromEnv ? value.trim().toLowerCase() : value;
      return type.values.includes(v) ? v : BAD;
    }
    case 'string': {
      if (typeof value !== 'string' || value.trim() === '') return BAD;
      const v = value.trim();
      return type.pattern && !type.pattern.test(v) ? BAD : v;
    }
    case 'budget':
    case 'quota': {
      if (typeof value === 'string' && value.trim().toLowerCase() === 'none') return null;
      const n = typeof value === 'number' ? value : fromEnv && typeof value === 'string' && value.trim() !== '' ? Number(value) : NaN;
      return Number.isFinite(n) && n > 0 ? n : BAD;
    }
    case 'window':
      return parseBudgetWindow(value) ?? BAD;
  }
}
