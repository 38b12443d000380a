// Formatting of DP answers: values with their 95% interval, changes
// against the previous period, and readable names for dimension values.

const int = new Intl.NumberFormat('en', { maximumFractionDigits: 0 });
const dec = new Intl.NumberFormat('en', { minimumFractionDigits: 2, maximumFractionDigits: 2 });
const pct1 = new Intl.NumberFormat('en', { maximumFractionDigits: 1 });

// Metrics shown as ratios rather than counts.
const RATIO = new Set(['views_per_visit', 'bounce_rate']);

// Half-width of a 95% interval [lo, hi] (the API's intervals are symmetric).
export function halfWidth(ci) {
  return ci ? (ci[1] - ci[0]) / 2 : 0;
}

// A value is "not available" when it carries no noise at all: every
// released or ad hoc number has a non-zero interval, so [0, 0] means the
// range has nothing released for that metric yet (for example visits
// today, before the day's release).
export function available(value, ci) {
  return !(value === 0 && ci && ci[0] === 0 && ci[1] === 0);
}

export function formatValue(metric, v) {
  if (metric === 'bounce_rate') return `${int.format(v)}%`;
  if (metric === 'views_per_visit') return dec.format(v);
  return int.format(Math.round(v));
}

export function formatPlusMinus(metric, ci) {
  const hw = halfWidth(ci);
  if (metric === 'bounce_rate') return `± ${pct1.format(hw)} pts`;
  if (metric === 'views_per_visit') return `± ${dec.format(hw)}`;
  return `± ${int.format(Math.round(hw))}`;
}

// Change from prev to cur, or null when the previous value is too uncertain
// to compare with (mostly noise: a period with little or no data). Both
// carry independent noise, so a change is only meaningful when it exceeds
// the half-width of their difference.
export function change(metric, cur, curCI, prev, prevCI) {
  if (halfWidth(prevCI) >= Math.abs(prev) / 2) return null;
  const diff = cur - prev;
  const hw = Math.hypot(halfWidth(curCI), halfWidth(prevCI));
  const noise = Math.abs(diff) <= hw;
  let text;
  if (RATIO.has(metric)) {
    text = metric === 'bounce_rate' ? `${diff >= 0 ? '+' : '−'}${pct1.format(Math.abs(diff))} pts` : `${diff >= 0 ? '+' : '−'}${dec.format(Math.abs(diff))}`;
  } else if (prev > 0) {
    text = `${diff >= 0 ? '+' : '−'}${int.format(Math.abs(Math.round((diff / prev) * 100)))}%`;
  } else {
    text = diff > 0 ? 'new' : '0%';
  }
  return { text, up: diff > 0, noise };
}

let regionNames;
function countryName(code) {
  if (!/^[A-Z]{2}$/.test(code)) return code;
  try {
    regionNames ??= new Intl.DisplayNames(['en'], { type: 'region' });
    return regionNames.of(code) || code;
  } catch {
    return code;
  }
}

// label returns what to show for a dimension value.
export function label(dim, value) {
  if (value === '' || value == null) return '(none)';
  if (dim === 'visit:country') return countryName(value);
  return value;
}

export function plural(n, word) {
  return `${int.format(n)} ${word}${n === 1 ? '' : 's'}`;
}

export function formatEpsilon(e) {
  if (!Number.isFinite(e)) return '–';
  // Three significant digits: spending shows even where ε, converted
  // from the ρ that actually adds up, moves only a little.
  return e >= 10 ? int.format(e) : e.toPrecision(3).replace(/(\.\d*?)0+$/, '$1').replace(/\.$/, '');
}

// formatTime shows an API time (RFC 3339) in UTC, like the rest of Veil.
export function formatTime(t) {
  const d = new Date(t);
  if (!t || Number.isNaN(d.getTime())) return '–';
  return `${d.toISOString().slice(0, 19).replace('T', ' ')} UTC`;
}

// formatDuration shows a length of time in its largest whole unit.
export function formatDuration(seconds) {
  const s = Math.abs(seconds);
  if (s >= 86400) return plural(Math.floor(s / 86400), 'day');
  if (s >= 3600) return plural(Math.floor(s / 3600), 'hour');
  return plural(Math.max(1, Math.floor(s / 60)), 'minute');
}
