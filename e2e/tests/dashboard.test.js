// End-to-end tests of the dashboard in Debian's chromium, against a real
// `veil serve --demo` started by ../run.sh (VEIL_URL, VEIL_TOKEN). The
// tests run in order: later ones build on the budget earlier ones spent.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { createServer } from 'node:http';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SITE, TOKEN, VEIL, api, launch, ready, signIn } from '../lib.js';

const HEADLINE = ['visitors', 'visits', 'pageviews', 'views_per_visit', 'bounce_rate'];
const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'artifacts');
const dashboard = (query = 'range=7d') => `${VEIL}/app/sites/${encodeURIComponent(SITE)}?${query}`;

let browser;
let page;
const problems = []; // console errors and page errors, CSP violations among them
const queries = []; // bodies of the dashboard's Stats API queries

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// Released answers change when an hour or a day is released; the demo
// releases past days within a minute of starting.
async function waitForReleases() {
  const deadline = Date.now() + 240000;
  for (;;) {
    const pages = await api('/api/v2/query', { site_id: SITE, metrics: ['visitors'], date_range: '7d', dimensions: ['event:page'] });
    const days = await api('/api/v2/query', { site_id: SITE, metrics: ['visits'], date_range: '7d', dimensions: ['time:day'] });
    if (pages.results.length > 0 && days.results.filter((r) => r.metrics[0] > 0).length >= 6) return;
    if (Date.now() > deadline) throw new Error('the demo site released nothing within 4 minutes');
    await sleep(2000);
  }
}

const budget = (from, to) => api(`/api/v1/sites/${encodeURIComponent(SITE)}/budget?from=${from}&to=${to}`);

async function viewRange() {
  const q = await api('/api/v2/query', { site_id: SITE, metrics: ['visitors'], date_range: '7d' });
  return q.query.date_range;
}

async function stat(metric) {
  const v = await page.getByTestId(`metric-${metric}`).getAttribute('data-value');
  return v === null ? null : Number(v);
}

// retry runs check up to three times, reloading in between: a release
// between the dashboard's query and ours changes the answer legitimately.
async function retry(check) {
  for (let i = 0; ; i++) {
    try {
      return await check();
    } catch (e) {
      if (i === 2) throw e;
      await page.reload();
      await ready(page);
    }
  }
}

before(async () => {
  assert.ok(VEIL && TOKEN, 'set VEIL_URL and VEIL_TOKEN (e2e/run.sh does)');
  mkdirSync(ARTIFACTS, { recursive: true });
  await waitForReleases();
  browser = await launch();
  page = await browser.context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(e.message));
  page.on('request', (r) => {
    if (r.url().endsWith('/ui/api/v2/query')) queries.push(JSON.parse(r.postData()));
  });
});

after(async () => {
  await browser?.close();
});

test('a wrong token is refused, a real one signs in', async () => {
  await page.goto(`${VEIL}/login`);
  await page.getByTestId('login-token').fill('veil_wrong');
  await page.getByTestId('login-submit').click();
  await page.getByTestId('login-error').waitFor();
  assert.equal(new URL(page.url()).pathname, '/login');

  await signIn(page);
  await ready(page);
  assert.match(page.url(), new RegExp(`/app/sites/${SITE.replaceAll('.', '\\.')}`));
  const cookie = (await browser.context.cookies()).find((c) => c.name === 'veil_session');
  assert.ok(cookie, 'no session cookie');
  assert.equal(cookie.httpOnly, true);
  assert.equal(cookie.sameSite, 'Strict');
});

test('the numbers on screen are the query API’s answers', async () => {
  await page.goto(dashboard());
  await ready(page);
  await retry(async () => {
    const res = await api('/api/v2/query', { site_id: SITE, date_range: '7d', metrics: HEADLINE });
    const row = res.results[0];
    for (const [i, m] of HEADLINE.entries()) {
      const shown = await stat(m);
      if (shown === null) continue; // not released for this range yet ("—")
      assert.equal(shown, row.metrics[i], `${m} on screen`);
    }
    assert.equal(await stat('visitors'), row.metrics[0]);
    const hw = (row.ci95[0][1] - row.ci95[0][0]) / 2;
    assert.equal(await page.getByTestId('pm-visitors').textContent(), `± ${Math.round(hw).toLocaleString('en')}`);
    assert.equal(await page.getByTestId('privacy-badge').getAttribute('data-source'), 'released');

    const pages = await api('/api/v2/query', { site_id: SITE, date_range: '7d', metrics: ['visitors', 'pageviews'], dimensions: ['event:page'], pagination: { limit: 10 } });
    const first = page.getByTestId('panel-pages').getByTestId('row').first();
    assert.equal(await first.getAttribute('data-label'), pages.results[0].dimensions[0]);
    assert.equal(Number(await first.locator('[data-metric="visitors"]').getAttribute('data-value')), pages.results[0].metrics[0]);
    assert.equal(await page.getByTestId('panel-pages').getByTestId('row').count(), pages.results.length);
  });
});

test('viewing the same released numbers again spends no budget', async () => {
  const [from, to] = await viewRange();
  const before = await budget(from, to);
  await page.reload();
  await ready(page);
  await page.reload();
  await ready(page);
  assert.deepEqual(await budget(from, to), before);
  assert.ok(Number(await page.getByTestId('budget-left').getAttribute('data-epsilon')) > 0);
});

test('switching the range asks for the new range', async () => {
  queries.length = 0;
  await page.locator('[data-testid="range-picker"] [data-range="30d"]').click();
  await ready(page);
  assert.match(page.url(), /range=30d/);
  assert.ok(queries.some((q) => q.date_range === '30d' && q.metrics.includes('bounce_rate')), 'no 30d headline query was sent');
  assert.ok(!queries.some((q) => q.date_range === '7d'), 'a 7d query was sent after switching to 30d');
  assert.equal(await page.locator('[data-range="30d"]').getAttribute('aria-pressed'), 'true');
  await retry(async () => {
    const res = await api('/api/v2/query', { site_id: SITE, date_range: '30d', metrics: HEADLINE });
    assert.equal(await stat('visitors'), res.results[0].metrics[0]);
  });
});

test('clicking a country shows the cost, then filters the dashboard', async () => {
  await page.goto(dashboard());
  await ready(page);
  const [from, to] = await viewRange();
  const spent = await budget(from, to);
  const row = page.getByTestId('panel-countries').getByTestId('row').first();
  const country = await row.getAttribute('data-label');
  queries.length = 0;
  await row.locator('button.rowbtn').click();

  const dialog = page.getByTestId('cost-dialog');
  await dialog.waitFor();
  assert.ok(Number(await dialog.getByTestId('cost-epsilon').getAttribute('data-epsilon')) > 0, 'the dialog shows no cost');
  assert.ok(queries.every((q) => q.privacy?.preview), 'something ran before the user confirmed');
  assert.deepEqual(await budget(from, to), spent, 'the preview spent budget');

  await dialog.getByTestId('cost-confirm').click();
  // The filtered load starts when the dialog's close event has run; until
  // then the page still says ready from before. The chip shows it started.
  const chip = page.getByTestId('filter-chip');
  await chip.waitFor();
  await ready(page);
  assert.equal(await chip.getAttribute('data-dim'), 'visit:country');
  assert.equal(await chip.getAttribute('data-value'), country);
  const badge = page.getByTestId('privacy-badge');
  assert.equal(await badge.getAttribute('data-source'), 'ad_hoc');
  assert.equal(await badge.getAttribute('data-cached'), 'false');
  assert.match(page.url(), /fdim=visit%3Acountry/);

  const after = await budget(from, to);
  for (const [i, d] of after.days.entries()) {
    assert.ok(d.adhoc_epsilon_left < spent.days[i].adhoc_epsilon_left, `${d.day}: nothing was charged`);
  }
  // The same question from the API is now the cached answer on screen.
  const filtered = queries.find((q) => q.filters && !q.privacy?.preview && q.dimensions?.[0]?.startsWith('time:'));
  const res = await api('/api/v2/query', filtered);
  assert.equal(res.meta.cached, true);
  const total = res.results.reduce((s, r) => s + r.metrics[0], 0);
  assert.equal(await stat('visitors'), Math.round(total * 100) / 100);
  assert.deepEqual(await budget(from, to), after, 'the repeated API query spent budget');
});

test('the same filtered view again is free', async () => {
  const [from, to] = await viewRange();
  const spent = await budget(from, to);
  await page.reload();
  await ready(page);
  assert.equal(await page.getByTestId('cost-dialog').isVisible(), false, 'asked to pay for a cached view');
  assert.equal(await page.getByTestId('privacy-badge').getAttribute('data-cached'), 'true');
  assert.ok(await page.getByTestId('filter-chip').isVisible());
  assert.deepEqual(await budget(from, to), spent);

  // Removing the filter goes back to the free released numbers.
  await page.getByTestId('filter-chip').getByRole('button').click();
  await ready(page);
  assert.equal(await page.getByTestId('privacy-badge').getAttribute('data-source'), 'released');
});

test('a page filter narrows the country panel, after showing its cost', async () => {
  await page.goto(dashboard());
  await ready(page);
  const row = page.getByTestId('panel-pages').getByTestId('row').first();
  const path = await row.getAttribute('data-label');
  await row.locator('button.rowbtn').click();
  const dialog = page.getByTestId('cost-dialog');
  await dialog.waitFor();
  await dialog.getByTestId('cost-confirm').click();
  const chip = page.getByTestId('filter-chip');
  await chip.waitFor();
  await ready(page);
  assert.equal(await chip.getAttribute('data-dim'), 'event:page');
  assert.equal(await chip.getAttribute('data-value'), path);

  // A breakdown by country under a page filter is an ad hoc question of
  // its own: it runs only after its cost is shown and confirmed.
  queries.length = 0;
  const countries = page.getByTestId('panel-countries');
  await countries.getByTestId('load-countries').click();
  await dialog.waitFor();
  assert.ok(queries.every((q) => q.privacy?.preview), 'the breakdown ran before the user confirmed');
  await dialog.getByTestId('cost-confirm').click();
  await countries.getByTestId('row').first().waitFor();
  const asked = queries.find((q) => !q.privacy?.preview && q.dimensions?.[0] === 'visit:country');
  assert.deepEqual(asked.filters, [['is', 'event:page', [path]]]);
  const res = await api('/api/v2/query', asked);
  assert.equal(res.meta.cached, true, 'the API answered the same question anew');
  const first = countries.getByTestId('row').first();
  assert.equal(await first.getAttribute('data-label'), res.results[0].dimensions[0]);
  assert.equal(Number(await first.locator('[data-metric="visitors"]').getAttribute('data-value')), res.results[0].metrics[0]);

  // Breakdowns that cannot be filtered by a page say so.
  const sources = page.getByTestId('panel-sources');
  await sources.getByText(/cannot be narrowed to visitors whose page is/).waitFor();
  await chip.getByRole('button').click();
  await ready(page);
});

test('Veil’s tracker on a page records a pageview and a custom event', async () => {
  const metric = async () => {
    const text = await api('/metrics');
    let n = 0;
    for (const m of text.matchAll(/^veil_events_accepted_total\{[^}]*\} (\S+)$/gm)) n += Number(m[1]);
    return n;
  };
  const html = `<!doctype html><title>Shop</title>
<script defer data-domain="${SITE}" data-localhost data-webdriver src="${VEIL}/js/script.js"></script>
<h1>Pricing</h1>`;
  const server = createServer((req, res) => { res.setHeader('Content-Type', 'text/html'); res.end(html); });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  try {
    const before = await metric();
    const shop = await browser.context.newPage();
    await shop.goto(`http://127.0.0.1:${server.address().port}/pricing`);
    await shop.waitForFunction(() => typeof window.veil === 'function');
    await shop.evaluate(() => new Promise((done) => window.veil('Signup', { props: { plan: 'pro' }, callback: done })));
    let now = before;
    for (let i = 0; i < 50 && now < before + 2; i++) {
      await sleep(200);
      now = await metric();
    }
    assert.ok(now >= before + 2, `veil_events_accepted_total rose by ${now - before}, want 2 (pageview and Signup)`);
    await shop.close();
  } finally {
    server.close();
  }
});

test('site management: add a site and copy its tracker snippet', async () => {
  const domain = `e2e-${Date.now()}.example`;
  await page.goto(`${VEIL}/app/admin/sites`);
  await page.getByTestId('new-domain').fill(domain);
  await page.getByTestId('add-site').getByRole('button', { name: 'Add site' }).click();
  await page.getByTestId('snippet').waitFor();
  assert.equal(await page.getByTestId('snippet').textContent(),
    `<script defer data-domain="${domain}" src="${VEIL}/js/script.js"></script>`);
  await page.locator('#f-eps').fill('2');
  await page.getByTestId('edit-site').getByRole('button', { name: 'Save' }).click();
  await page.getByTestId('saved').waitFor();
  const site = await api(`/api/v1/sites/${domain}`);
  assert.equal(site.daily_epsilon, 2);

  // The API's errors show next to the field they name.
  await page.goto(`${VEIL}/app/admin/sites`);
  await page.getByTestId('new-domain').fill(domain);
  await page.getByTestId('add-site').getByRole('button', { name: 'Add site' }).click();
  const err = page.getByTestId('add-site').locator('.field-error');
  await err.waitFor();
  assert.match(await err.textContent(), /already exists/);
});

test('when the budget cannot pay, the page says so and keeps the released numbers', async () => {
  const domain = `tight-${Date.now()}.example`;
  await api('/api/v1/sites', { domain });
  await api(`/api/v1/sites/${domain}`, { daily_epsilon: 0.1 }, 'PATCH');
  await page.goto(`${VEIL}/app/sites/${domain}?range=7d&fdim=visit:country&fval=DE`);
  const dialog = page.getByTestId('cost-dialog');
  await dialog.waitFor();
  assert.match(await dialog.textContent(), /Not enough privacy budget/);
  assert.equal(await dialog.getByTestId('cost-confirm').count(), 0, 'offered to run a query the budget cannot pay');
  await dialog.getByTestId('cost-cancel').click();
  await ready(page);
  assert.equal(await page.getByTestId('filter-chip').count(), 0);
  assert.equal(await page.getByTestId('privacy-badge').getAttribute('data-source'), 'released');
  assert.doesNotMatch(page.url(), /fdim=/);
});

test('security headers, and no CSP violation in the console', async () => {
  const res = await page.goto(dashboard());
  await ready(page);
  const csp = res.headers()['content-security-policy'];
  assert.match(csp, /script-src 'self'/);
  assert.doesNotMatch(csp, /unsafe-inline/);
  assert.equal(res.headers()['x-frame-options'], 'DENY');
  const cspErrors = problems.filter((p) => /Content Security Policy|Refused to/i.test(p));
  assert.deepEqual(cspErrors, []);
  // Expected errors: the refused sign-in (401) and the duplicate site (409).
  assert.deepEqual(problems.filter((p) => !/Failed to load resource.*\b(401|409)\b/.test(p)), []);
});

test('keyboard: Tab reaches the range picker, Enter switches the range', async () => {
  await page.goto(dashboard());
  await ready(page);
  let inPicker = false;
  for (let i = 0; i < 30 && !inPicker; i++) {
    await page.keyboard.press('Tab');
    inPicker = await page.evaluate(() => !!document.activeElement?.closest('[data-testid="range-picker"]'));
  }
  assert.ok(inPicker, 'Tab never reached the range picker');
  while (await page.evaluate(() => document.activeElement?.dataset.range !== '30d')) await page.keyboard.press('Tab');
  await page.keyboard.press('Enter');
  await ready(page);
  assert.match(page.url(), /range=30d/);
});

test('usable at phone width', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  await page.goto(dashboard());
  await ready(page);
  const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
  assert.ok(overflow <= 0, `the page is ${overflow}px wider than the phone`);
  assert.ok(await page.getByTestId('range-picker').isVisible());
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard-phone.png'), fullPage: true });
  await page.setViewportSize({ width: 1280, height: 900 });
});

test('screenshot of the dashboard', async () => {
  await page.goto(dashboard('range=7d'));
  await ready(page);
  await page.locator('[data-testid="chart"] canvas').waitFor();
  await page.screenshot({ path: join(ARTIFACTS, 'dashboard.png'), fullPage: true });
});
