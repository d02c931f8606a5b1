import parseDuration from 'parse-duration';
import { CALENDAR_WINDOWS, type CalendarKind } from '../money/calendar';

/** A budget's window: a sliding length (Infinity: never resets), or a calendar period (UTC). */
export interface BudgetWindowValue {
  ms: number;
  calendar?: CalendarKind;
}

const NOMINAL_MS: Record<CalendarKind, number> = { day: 86_400_000, week: 7 * 86_400_000, month: 30 * 86_400_000 };

/** A budget window: 'calendar-day' | 'calendar-week' | 'calendar-month', or a sliding one (parseWindow). */
export function parseBudgetWindow(value: unknown): BudgetWindowValue | undefined {
  if (typeof value === 'string') {
    const calendar = CALENDAR_WINDOWS[value.trim().toLowerCase()];
    if (calendar) return { ms: NOMINAL_MS[calendar], calendar };
  }
  const ms = parseWindow(value);
  return ms === undefined ? undefined : { ms };
}

/** A budget window for people: 'calendar-day', '1h', 'none'. */
export function budgetWindowText(window: BudgetWindowValue): string {
  return window.calendar ? `calendar-${window.calendar}` : windowText(window.ms);
}

/** A budget window in ms: a duration string, a number of ms (≥ 1 s), or 'none' (Infinity). */
export function parseWindow(value: unknown): number | undefined {
  if (value === 'none' || value === Infinity) return Infinity;
  let ms: number | null;
  if (typeof value === 'number') ms = value;
  else if (typeof value === 'string' && value.trim() !== '') {
    const text = value.trim().toLowerCase();
    ms = text === 'none' ? Infinity : /^\d+$/.test(text) ? Number(text) : parseDuration(text);
  } else return undefined;
  return ms !== null && Number.isFinite(ms) && ms >= 1000 ? ms : ms === Infinity ? Infinity : undefined;
}

/** A window for people: '1h', '30d', '90s', 'none'. */
export function windowText(ms: number): string {
  if (ms === Infinity) return 'none';
  const units: Array<[number, string]> = [[86_400_000, 'd'], [3_600_000, 'h'], [60_000, 'm'], [1000, 's']];
  for (const [size, unit] of units) if (ms % size === 0) return `${ms / size}${unit}`;
  return `${ms}ms`;
}
