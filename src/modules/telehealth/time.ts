import { DateTime, IANAZone } from 'luxon';

/**
 * The slot engine: pure functions over instants (epoch ms) and local
 * wall-clock rules. Weekly hours and exceptions are local times in the
 * provider's IANA time zone; each local date is turned into instants with
 * that date's own UTC offset (luxon), so a window on a daylight-saving day
 * is as long as it really is (09:00-17:00 stays 8 hours; 01:00-04:00 on a
 * spring-forward night is 2 hours, on a fall-back night 4). Slots step in
 * real time from the window start, then are shown in the caller's zone.
 */

export interface Interval {
  start: number;
  end: number;
}

export interface WeeklyRule {
  /** ISO weekday, 1 = Monday */
  weekday: number;
  /** HH:MM or HH:MM:SS local */
  startTime: string;
  endTime: string;
}

export interface DateException {
  /** YYYY-MM-DD, the provider's local date */
  date: string;
  kind: 'unavailable' | 'available';
  /** null both: the whole day */
  startTime: string | null;
  endTime: string | null;
}

const TIME = /^([01]\d|2[0-3]):([0-5]\d)(?::([0-5]\d))?$/;
const DATE = /^\d{4}-\d{2}-\d{2}$/;
const MINUTE = 60_000;

/** A real IANA zone name (UTC included); offsets like +02:00 and abbreviations like EST are refused. */
export function isTimeZone(tz: unknown): tz is string {
  return typeof tz === 'string' && tz.length <= 64 && /^[A-Za-z][A-Za-z0-9_+\-/]*$/.test(tz) && IANAZone.isValidZone(tz) && (tz.includes('/') || tz === 'UTC');
}

/** HH:MM[:SS] (seconds 00; 24:00 = end of day) -> normalised HH:MM, or undefined. */
export function parseLocalTime(v: unknown): string | undefined {
  if (typeof v !== 'string') return undefined;
  if (/^24:00(:00)?$/.test(v)) return '24:00'; // end of the day (an end time only)
  const m = TIME.exec(v);
  if (!m || (m[3] && m[3] !== '00')) return undefined;
  return `${m[1]}:${m[2]}`;
}

export function isLocalDate(v: unknown): v is string {
  return typeof v === 'string' && DATE.test(v) && DateTime.fromISO(v, { zone: 'UTC' }).isValid;
}

/**
 * The instant of a local wall-clock time on a local date in `tz`. A time in
 * a DST gap moves forward, as clocks do; a time that happens twice (the
 * fall-back hour) is its first occurrence for a start (`earlier`, the
 * default) and its second for an end (`later`), so a window covers the
 * whole repeated hour.
 */
export function localToInstant(date: string, time: string, tz: string, prefer: 'earlier' | 'later' = 'earlier'): number {
  if (time.startsWith('24:00')) return DateTime.fromISO(date, { zone: tz }).plus({ days: 1 }).startOf('day').toMillis();
  const wall = `${date}T${time.slice(0, 5)}`;
  const base = DateTime.fromISO(wall, { zone: tz }).toMillis();
  // the same wall time may also be 30, 60 or 120 minutes earlier or later (zones shift by those amounts)
  const same = [-120, -60, -30, 0, 30, 60, 120]
    .map((m) => base + m * MINUTE)
    .filter((ms) => DateTime.fromMillis(ms, { zone: tz }).toFormat("yyyy-MM-dd'T'HH:mm") === wall);
  if (!same.length) return base; // in a gap: luxon's forward shift
  return prefer === 'earlier' ? Math.min(...same) : Math.max(...same);
}

/** ISO weekday (1 = Monday) of a local date. */
export function weekdayOf(date: string): number {
  return DateTime.fromISO(date, { zone: 'UTC' }).weekday;
}

/** Local dates (YYYY-MM-DD) in `tz` that overlap [from, to). */
export function localDatesBetween(from: number, to: number, tz: string): string[] {
  const out: string[] = [];
  let d = DateTime.fromMillis(from, { zone: tz }).startOf('day');
  const end = DateTime.fromMillis(Math.max(from, to - 1), { zone: tz }).startOf('day');
  while (d <= end) {
    out.push(d.toISODate()!);
    d = d.plus({ days: 1 }).startOf('day');
  }
  return out;
}

/** Start of a local date in `tz` (midnight, or the first instant of the day when midnight does not exist). */
export function startOfLocalDate(date: string, tz: string): number {
  return DateTime.fromISO(date, { zone: tz }).startOf('day').toMillis();
}

/** Sorted union of intervals. */
export function union(list: readonly Interval[]): Interval[] {
  const sorted = list.filter((i) => i.end > i.start).sort((a, b) => a.start - b.start);
  const out: Interval[] = [];
  for (const i of sorted) {
    const last = out[out.length - 1];
    if (last && i.start <= last.end) last.end = Math.max(last.end, i.end);
    else out.push({ ...i });
  }
  return out;
}

/** `base` minus every interval of `cut`. */
export function subtract(base: readonly Interval[], cut: readonly Interval[]): Interval[] {
  let out = union(base);
  for (const c of union(cut)) {
    const next: Interval[] = [];
    for (const i of out) {
      if (c.end <= i.start || c.start >= i.end) next.push(i);
      else {
        if (c.start > i.start) next.push({ start: i.start, end: c.start });
        if (c.end < i.end) next.push({ start: c.end, end: i.end });
      }
    }
    out = next;
  }
  return out;
}

/**
 * The provider's available intervals (instants) on one of their local dates:
 * the weekly hours of that weekday plus `available` exceptions, minus
 * `unavailable` ones (a whole day when they have no times).
 */
export function windowsForDate(date: string, tz: string, weekly: readonly WeeklyRule[], exceptions: readonly DateException[]): Interval[] {
  const weekday = weekdayOf(date);
  const open: Interval[] = weekly
    .filter((r) => r.weekday === weekday)
    .map((r) => ({ start: localToInstant(date, r.startTime, tz), end: localToInstant(date, r.endTime, tz, 'later') }));
  const closed: Interval[] = [];
  for (const e of exceptions) {
    if (e.date !== date) continue;
    if (e.kind === 'available' && e.startTime && e.endTime) open.push({ start: localToInstant(date, e.startTime, tz), end: localToInstant(date, e.endTime, tz, 'later') });
    if (e.kind === 'unavailable') {
      closed.push(
        e.startTime && e.endTime
          ? { start: localToInstant(date, e.startTime, tz), end: localToInstant(date, e.endTime, tz, 'later') }
          : { start: startOfLocalDate(date, tz), end: DateTime.fromISO(date, { zone: tz }).plus({ days: 1 }).startOf('day').toMillis() },
      );
    }
  }
  return subtract(open, closed);
}

/** Available intervals of the provider over [from, to) (instants), across all local dates it touches. */
export function availability(from: number, to: number, tz: string, weekly: readonly WeeklyRule[], exceptions: readonly DateException[]): Interval[] {
  // one day of margin on both sides: a local day may start before `from` in UTC and still overlap it
  const dates = localDatesBetween(from - 24 * 60 * MINUTE, to + 24 * 60 * MINUTE, tz);
  return union(dates.flatMap((d) => windowsForDate(d, tz, weekly, exceptions)));
}

export interface SlotQuery {
  /** the provider's available intervals (availability()) */
  windows: readonly Interval[];
  /** time already taken: [starts_at, blocked_until) of live appointments */
  busy: readonly Interval[];
  durationMinutes: number;
  bufferMinutes: number;
  /** only slots starting in [from, to) and not before `notBefore` */
  from: number;
  to: number;
  notBefore: number;
}

/**
 * Open slots: every start on the grid (window start, then every duration +
 * buffer) whose visit fits in the window and whose [start, end + buffer)
 * overlaps no busy range (the same rule as the exclusion constraint).
 */
export function openSlots(q: SlotQuery): Interval[] {
  const len = q.durationMinutes * MINUTE;
  const step = (q.durationMinutes + q.bufferMinutes) * MINUTE;
  const blocked = (q.durationMinutes + q.bufferMinutes) * MINUTE;
  const busy = union(q.busy);
  const out: Interval[] = [];
  for (const w of q.windows) {
    for (let s = w.start; s + len <= w.end; s += step) {
      if (s < q.from || s >= q.to || s < q.notBefore) continue;
      const e = s + blocked;
      if (busy.some((b) => b.start < e && s < b.end)) continue;
      out.push({ start: s, end: s + len });
    }
  }
  return out.sort((a, b) => a.start - b.start);
}

/** True when [start, end) lies within one available interval. */
export function withinAvailability(windows: readonly Interval[], start: number, end: number): boolean {
  return union(windows).some((w) => w.start <= start && end <= w.end);
}

/** ISO 8601 with the offset of `tz` at that instant, e.g. 2026-03-08T03:00:00.000-04:00. */
export function formatInZone(ms: number, tz: string): string {
  return DateTime.fromMillis(ms, { zone: tz }).toISO()!;
}

/** The local date (YYYY-MM-DD) of an instant in `tz`. */
export function localDateOf(ms: number, tz: string): string {
  return DateTime.fromMillis(ms, { zone: tz }).toISODate()!;
}
