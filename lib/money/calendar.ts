/** Calendar budget windows (UTC): a period starts at a boundary and everything resets at the next. */
export type CalendarKind = 'day' | 'week' | 'month';

const DAY = 86_400_000;

/** The period `now` falls in: [start, end) in epoch ms. Weeks start on Monday (ISO 8601). */
export function calendarPeriod(kind: CalendarKind, now: number): { start: number; end: number } {
  if (kind === 'day') {
    const start = Math.floor(now / DAY) * DAY;
    return { start, end: start + DAY };
  }
  if (kind === 'week') {
    const day = Math.floor(now / DAY);
    // 1970-01-01 was a Thursday: (day + 3) % 7 is the days since Monday.
    const start = (day - ((day + 3) % 7)) * DAY;
    return { start, end: start + 7 * DAY };
  }
  const date = new Date(now);
  const start = Date.UTC(date.getUTCFullYear(), date.getUTCMonth(), 1);
  return { start, end: Date.UTC(date.getUTCFullYear(), date.getUTCMonth() + 1, 1) };
}

/** A calendar window's name as a setting: 'calendar-day', 'calendar-week', 'calendar-month'. */
export const CALENDAR_WINDOWS: Readonly<Record<string, CalendarKind>> = { 'calendar-day': 'day', 'calendar-week': 'week', 'calendar-month': 'month' };
