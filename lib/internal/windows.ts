import parseDuration from 'parse-duration';

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
