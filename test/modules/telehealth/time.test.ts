import { describe, expect, it } from 'vitest';
import {
  availability,
  formatInZone,
  isTimeZone,
  localDatesBetween,
  localToInstant,
  openSlots,
  parseLocalTime,
  subtract,
  union,
  windowsForDate,
  withinAvailability,
} from '../../../src/modules/telehealth/time.js';

/**
 * The slot engine on its own (pure functions): local wall-clock rules in the
 * provider's IANA zone become instants per local date, so a daylight-saving
 * day is as long as it really is. America/New_York 2026: clocks spring
 * forward on Sunday 8 March at 02:00 (to 03:00) and fall back on Sunday
 * 1 November at 02:00 (to 01:00).
 */
const NY = 'America/New_York';
const H = 3_600_000;
const iso = (ms: number) => new Date(ms).toISOString();

describe('time zones and local times', () => {
  it('accepts IANA zones only', () => {
    expect(isTimeZone('America/New_York')).toBe(true);
    expect(isTimeZone('UTC')).toBe(true);
    for (const bad of ['EST', '+02:00', 'Mars/Olympus', '', 'America/New_York\u0000', 42, null]) expect(isTimeZone(bad), String(bad)).toBe(false);
  });

  it('parses HH:MM (and 24:00 as the end of a day)', () => {
    expect(parseLocalTime('09:30')).toBe('09:30');
    expect(parseLocalTime('09:30:00')).toBe('09:30');
    expect(parseLocalTime('24:00')).toBe('24:00');
    for (const bad of ['9:30', '25:00', '09:60', '09:30:15', 'noon']) expect(parseLocalTime(bad), bad).toBeUndefined();
  });

  it('turns a local time into an instant with that date\u2019s offset (a time in the spring gap moves forward)', () => {
    expect(iso(localToInstant('2026-03-07', '09:00', NY))).toBe('2026-03-07T14:00:00.000Z'); // EST, UTC-5
    expect(iso(localToInstant('2026-03-09', '09:00', NY))).toBe('2026-03-09T13:00:00.000Z'); // EDT, UTC-4
    expect(iso(localToInstant('2026-03-08', '02:30', NY))).toBe('2026-03-08T07:30:00.000Z'); // 02:30 does not exist: 03:30 EDT
    expect(iso(localToInstant('2026-03-08', '24:00', NY))).toBe('2026-03-09T04:00:00.000Z');
  });

  it('lists the local dates an interval touches', () => {
    expect(localDatesBetween(Date.parse('2026-03-08T03:00:00Z'), Date.parse('2026-03-09T05:00:00Z'), NY)).toEqual(['2026-03-07', '2026-03-08', '2026-03-09']);
  });
});

describe('intervals', () => {
  it('unions and subtracts', () => {
    expect(union([{ start: 5, end: 8 }, { start: 1, end: 3 }, { start: 2, end: 6 }])).toEqual([{ start: 1, end: 8 }]);
    expect(subtract([{ start: 0, end: 10 }], [{ start: 2, end: 3 }, { start: 8, end: 12 }])).toEqual([{ start: 0, end: 2 }, { start: 3, end: 8 }]);
    expect(withinAvailability([{ start: 0, end: 5 }, { start: 5, end: 10 }], 4, 6)).toBe(true);
    expect(withinAvailability([{ start: 0, end: 5 }], 4, 6)).toBe(false);
  });
});

describe('windows across daylight-saving changes', () => {
  const nineToFive = [1, 2, 3, 4, 5, 6, 7].map((weekday) => ({ weekday, startTime: '09:00', endTime: '17:00' }));
  const night = [7].map((weekday) => ({ weekday, startTime: '01:00', endTime: '04:00' }));

  it('09:00-17:00 stays 09:00 local (and 8 hours) the day before, of and after the change', () => {
    for (const [date, utcStart] of [
      ['2026-03-07', '2026-03-07T14:00:00.000Z'],
      ['2026-03-08', '2026-03-08T13:00:00.000Z'],
      ['2026-10-31', '2026-10-31T13:00:00.000Z'],
      ['2026-11-01', '2026-11-01T14:00:00.000Z'],
    ] as const) {
      const [w] = windowsForDate(date, NY, nineToFive, []);
      expect(iso(w!.start), date).toBe(utcStart);
      expect(w!.end - w!.start, date).toBe(8 * H);
    }
  });

  it('a night window is 2 hours on the spring-forward night and 4 on the fall-back night', () => {
    const [spring] = windowsForDate('2026-03-08', NY, night, []);
    expect(spring!.end - spring!.start).toBe(2 * H);
    const [fall] = windowsForDate('2026-11-01', NY, night, []);
    expect(fall!.end - fall!.start).toBe(4 * H);
    const [normal] = windowsForDate('2026-03-15', NY, night, []);
    expect(normal!.end - normal!.start).toBe(3 * H);
  });

  it('30-minute slots: 4 on the spring night (01:00, 01:30, 03:00, 03:30 local), 8 on the fall night (01:00 and 01:30 twice)', () => {
    const slots = (date: string) => {
      const from = Date.parse(`${date}T00:00:00Z`);
      const windows = availability(from, from + 24 * H, NY, night, []);
      return openSlots({ windows, busy: [], durationMinutes: 30, bufferMinutes: 0, from, to: from + 24 * H, notBefore: 0 }).map((s) => formatInZone(s.start, NY));
    };
    expect(slots('2026-03-08')).toEqual(['2026-03-08T01:00:00.000-05:00', '2026-03-08T01:30:00.000-05:00', '2026-03-08T03:00:00.000-04:00', '2026-03-08T03:30:00.000-04:00']);
    expect(slots('2026-11-01')).toEqual([
      '2026-11-01T01:00:00.000-04:00',
      '2026-11-01T01:30:00.000-04:00',
      '2026-11-01T01:00:00.000-05:00',
      '2026-11-01T01:30:00.000-05:00',
      '2026-11-01T02:00:00.000-05:00',
      '2026-11-01T02:30:00.000-05:00',
      '2026-11-01T03:00:00.000-05:00',
      '2026-11-01T03:30:00.000-05:00',
    ]);
  });

  it('exceptions: whole-day and partial time off, extra hours', () => {
    const w = windowsForDate('2026-03-10', NY, nineToFive, [
      { date: '2026-03-10', kind: 'unavailable', startTime: '12:00', endTime: '13:00' },
      { date: '2026-03-10', kind: 'available', startTime: '18:00', endTime: '19:00' },
    ]);
    expect(w.map((i) => [formatInZone(i.start, NY), formatInZone(i.end, NY)])).toEqual([
      ['2026-03-10T09:00:00.000-04:00', '2026-03-10T12:00:00.000-04:00'],
      ['2026-03-10T13:00:00.000-04:00', '2026-03-10T17:00:00.000-04:00'],
      ['2026-03-10T18:00:00.000-04:00', '2026-03-10T19:00:00.000-04:00'],
    ]);
    expect(windowsForDate('2026-03-10', NY, nineToFive, [{ date: '2026-03-10', kind: 'unavailable', startTime: null, endTime: null }])).toEqual([]);
  });

  it('open slots skip busy time including the buffer, the past, and what does not fit', () => {
    const from = Date.parse('2026-03-10T13:00:00Z'); // 09:00 EDT
    const windows = [{ start: from, end: from + 2 * H }];
    const busy = [{ start: from + 40 * 60_000, end: from + 80 * 60_000 }];
    const slots = openSlots({ windows, busy, durationMinutes: 30, bufferMinutes: 10, from, to: from + 2 * H, notBefore: from + 1 });
    // grid: 0, 40, 80 (min): 0 is before notBefore, 40 overlaps the busy range, 80 fits (80..110 + buffer 120)
    expect(slots.map((s) => (s.start - from) / 60_000)).toEqual([80]);
  });
});
