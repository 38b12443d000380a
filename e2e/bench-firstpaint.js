// First paint of a site dashboard (BENCHMARKS.md), measured in chromium:
// signs in once, then loads the dashboard RUNS times, each in a fresh page,
// and records first-contentful-paint and "ready" (every released panel
// rendered: the app's performance mark veil-ready). As a baseline from the
// same run, it loads the server's static sign-in page the same way.
// Prints one JSON line with medians (ms from navigation start).
//
//   VEIL_URL=… VEIL_TOKEN=… VEIL_SITE=… node bench-firstpaint.js RUNS [RANGE]

import { SITE, VEIL, launch, median, signIn } from './lib.js';

const runs = Number(process.argv[2] || 10);
const range = process.argv[3] || '30d';

async function measure(context, url, waitReady) {
  const page = await context.newPage();
  await page.goto(url, { waitUntil: 'load' });
  if (waitReady) await page.waitForSelector('body[data-ready="1"]', { timeout: 60000 });
  else await page.waitForFunction(() => performance.getEntriesByName('first-contentful-paint').length > 0);
  const m = await page.evaluate(() => ({
    fcp: performance.getEntriesByName('first-contentful-paint')[0]?.startTime ?? null,
    ready: performance.getEntriesByName('veil-ready').at(-1)?.startTime ?? null,
  }));
  await page.close();
  return m;
}

const b = await launch();
try {
  const page = await b.context.newPage();
  await signIn(page);
  await page.close();
  const url = `${VEIL}/app/sites/${encodeURIComponent(SITE)}?range=${range}`;
  // One unmeasured load of each fills the browser's cache of the
  // (immutable, versioned) scripts and styles, as for a returning user.
  const cold = await measure(b.context, url, true);
  await measure(b.context, `${VEIL}/login`, false);
  const dash = [], base = [];
  for (let i = 0; i < runs; i++) {
    dash.push(await measure(b.context, url, true));
    base.push(await measure(b.context, `${VEIL}/login`, false));
  }
  const r = (x) => Math.round(x * 10) / 10;
  const out = {
    runs, range,
    dashboard_fcp_ms: r(median(dash.map((d) => d.fcp))),
    dashboard_ready_ms: r(median(dash.map((d) => d.ready))),
    baseline_static_fcp_ms: r(median(base.map((d) => d.fcp))),
    cold_fcp_ms: r(cold.fcp),
    cold_ready_ms: r(cold.ready),
  };
  out.fcp_ratio = r(out.dashboard_fcp_ms / out.baseline_static_fcp_ms);
  out.ready_ratio = r(out.dashboard_ready_ms / out.baseline_static_fcp_ms);
  console.log(JSON.stringify(out));
} finally {
  await b.close();
}
