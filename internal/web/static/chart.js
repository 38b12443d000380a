// The time-series chart: uPlot (vendored), loaded on first use so it never
// delays the first paint. The line is the DP value; the band around it is
// its 95% interval, the visible price of privacy.

let uPlotModule;
// loadUPlot starts loading uPlot; the dashboard calls it early so the
// download and parse overlap with its queries.
export const loadUPlot = () => (uPlotModule ??= import('./vendor/uPlot.esm.js').then((m) => m.default));

const charts = new Map(); // element -> { plot, observer, opts }

// Colours come from CSS variables: redraw when the colour scheme changes.
matchMedia('(prefers-color-scheme: dark)').addEventListener('change', () => {
  for (const [el, c] of charts) {
    if (el.isConnected) draw(el, c.opts);
    else charts.delete(el);
  }
});

function cssVar(name) {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

// Tick spacing and labels per bucket size (seconds).
const TICKS = {
  hour: { incrs: [3600, 7200, 10800, 21600, 43200], fmt: '{HH}:00' },
  day: { incrs: [86400, 2 * 86400, 7 * 86400, 14 * 86400, 28 * 86400], fmt: '{MMM} {D}' },
  month: { incrs: [28 * 86400, 2 * 28 * 86400, 3 * 28 * 86400], fmt: '{MMM} {YYYY}' },
};

// draw renders series { times, values, lo, hi } (seconds; null for gaps)
// into el, replacing an earlier chart there. The bucket at index partial,
// if any, is still open (today): it is drawn dashed, apart from the rest.
export async function draw(el, opts) {
  const { times, values, lo, hi, label, format, bucket, partial = -1 } = opts;
  const uPlot = await loadUPlot();
  charts.get(el)?.observer.disconnect();
  charts.get(el)?.plot.destroy();
  el.replaceChildren();
  const utc = (ts) => uPlot.tzDate(new Date(ts * 1000), 'Etc/UTC');
  const tick = TICKS[bucket];
  const tickFmt = uPlot.fmtDate(tick.fmt);
  const axis = { stroke: cssVar('--muted'), grid: { stroke: cssVar('--grid'), width: 1 }, ticks: { stroke: cssVar('--grid'), width: 1 } };
  const show = (u, v) => (v == null ? '–' : format(v));
  const whole = values.map((v, i) => (i === partial ? null : v));
  const open = values.map((v, i) => (i === partial || i === partial - 1 ? v : null));
  const height = 240;
  const plot = new uPlot({
    width: el.clientWidth || 600,
    height,
    // Buckets are UTC days and hours, like the API's.
    tzDate: utc,
    scales: { x: { time: true }, y: { range: (u, min, max) => [Math.min(0, min), max > 0 ? max * 1.1 : 1] } },
    series: [
      { value: (u, ts) => (ts == null ? '–' : uPlot.fmtDate(bucket === 'hour' ? '{YYYY}-{MM}-{DD} {HH}:00 UTC' : '{YYYY}-{MM}-{DD}')(utc(ts))) },
      { label, stroke: cssVar('--accent'), width: 2, value: show, points: { show: times.length <= 40 } },
      { label: 'low (95%)', stroke: cssVar('--band-edge'), width: 1, value: show, points: { show: false } },
      { label: 'high (95%)', stroke: cssVar('--band-edge'), width: 1, value: show, points: { show: false } },
      partial >= 0 && { label: 'so far (incomplete)', stroke: cssVar('--accent'), width: 2, dash: [6, 4], value: show, points: { show: false } },
    ].filter(Boolean),
    bands: [{ series: [3, 2], fill: cssVar('--band') }],
    axes: [{ ...axis, incrs: tick.incrs, values: (u, splits) => splits.map((ts) => tickFmt(utc(ts))) },
      { ...axis, size: 56, values: (u, ticks) => ticks.map(format) }],
    cursor: { drag: { x: false, y: false } },
  }, partial >= 0 ? [times, whole, lo, hi, open] : [times, whole, lo, hi], el);
  const observer = new ResizeObserver(() => {
    if (el.clientWidth && el.clientWidth !== plot.width) plot.setSize({ width: el.clientWidth, height });
  });
  observer.observe(el);
  charts.set(el, { plot, observer, opts });
}
