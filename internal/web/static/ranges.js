// Date ranges as the Stats API resolves them (UTC days, keywords ending
// today), the previous period each is compared with, and the chart's
// time granularity.

const DAY = 86400000;

export const RANGES = [
  { id: 'day', label: 'Today' },
  { id: '7d', label: '7 days' },
  { id: '30d', label: '30 days' },
  { id: 'month', label: 'This month' },
  { id: '12mo', label: '12 months' },
  { id: 'custom', label: 'Custom' },
];

export const iso = (t) => new Date(t).toISOString().slice(0, 10);
const day = (s) => Date.parse(`${s}T00:00:00Z`);

export function today(now = new Date()) {
  return Date.UTC(now.getUTCFullYear(), now.getUTCMonth(), now.getUTCDate());
}

// resolve returns the first and last day (inclusive, ms since the epoch).
export function resolve(state) {
  const t = today();
  const d = new Date(t);
  switch (state.range) {
    case 'day': return [t, t];
    case '7d': return [t - 6 * DAY, t];
    case '30d': return [t - 29 * DAY, t];
    case 'month': return [Date.UTC(d.getUTCFullYear(), d.getUTCMonth(), 1), t];
    case '12mo': return [Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 11, 1), t];
    default: return [day(state.from), day(state.to)];
  }
}

export function dayCount([from, to]) {
  return Math.round((to - from) / DAY) + 1;
}

// previous is the period a range is compared with: the same number of days
// just before it; a month to date compares with the same days of the
// previous month, twelve months with the twelve before.
export function previous(state, [from, to]) {
  const f = new Date(from);
  if (state.range === 'month') {
    const start = Date.UTC(f.getUTCFullYear(), f.getUTCMonth() - 1, 1);
    return [start, Math.min(start + (to - from), from - DAY)];
  }
  if (state.range === '12mo') return [Date.UTC(f.getUTCFullYear() - 1, f.getUTCMonth(), 1), from - DAY];
  return [from - dayCount([from, to]) * DAY, from - DAY];
}

// apiRange is the date_range of a query for state.
export function apiRange(state) {
  return state.range === 'custom' ? [state.from, state.to] : state.range;
}

export function explicit([from, to]) {
  return [iso(from), iso(to)];
}

// timeDim picks the chart's buckets. Hours are released only as site
// totals, so a filtered (ad hoc) chart of one day uses its day.
export function timeDim(days, adHoc) {
  if (days === 1) return adHoc ? 'time:day' : 'time:hour';
  return days > 92 ? 'time:month' : 'time:day';
}

// bucketTime turns a time dimension value into seconds since the epoch.
export function bucketTime(v) {
  if (v.length === 7) return Date.parse(`${v}-01T00:00:00Z`) / 1000;
  if (v.length === 10) return Date.parse(`${v}T00:00:00Z`) / 1000;
  return Date.parse(`${v.replace(' ', 'T')}Z`) / 1000;
}

// buckets lists every bucket of a range, so gaps (nothing released yet)
// show as gaps rather than being skipped.
export function buckets([from, to], dim) {
  const out = [];
  if (dim === 'time:hour') {
    const end = Math.min(to + DAY, Date.now());
    for (let t = from; t < end; t += 3600000) out.push(t / 1000);
  } else if (dim === 'time:month') {
    const f = new Date(from);
    for (let m = 0; ; m++) {
      const t = Date.UTC(f.getUTCFullYear(), f.getUTCMonth() + m, 1);
      if (t > to) break;
      out.push(t / 1000);
    }
  } else {
    for (let t = from; t <= to; t += DAY) out.push(t / 1000);
  }
  return out;
}

export function validCustom(from, to) {
  const f = day(from), t = day(to);
  return Number.isFinite(f) && Number.isFinite(t) && f <= t && t <= today() + DAY;
}
