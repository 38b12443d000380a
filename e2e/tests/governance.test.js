// Browser tests of the governance pages (privacy overview, audit log,
// catalog) and of signing in as a privacy officer, against the
// `veil serve --demo` started by ../run.sh. They need no released numbers,
// so they do not wait for the demo's releases.

import assert from 'node:assert/strict';
import { mkdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { after, before, test } from 'node:test';
import { fileURLToPath } from 'node:url';
import { SITE, TOKEN, VEIL, api, launch, signIn } from '../lib.js';

const ARTIFACTS = join(dirname(fileURLToPath(import.meta.url)), '..', 'artifacts');

let browser;
let page;
const problems = []; // console errors and page errors, CSP violations among them

const entries = () => page.getByTestId('audit-entry');
const siteCard = (domain) => page.locator(`[data-testid="privacy-site"][data-domain="${domain}"]`);

before(async () => {
  assert.ok(VEIL && TOKEN, 'set VEIL_URL and VEIL_TOKEN (e2e/run.sh does)');
  mkdirSync(ARTIFACTS, { recursive: true });
  browser = await launch();
  await browser.context.grantPermissions(['clipboard-read', 'clipboard-write'], { origin: VEIL });
  page = await browser.context.newPage();
  page.on('console', (m) => { if (m.type() === 'error') problems.push(m.text()); });
  page.on('pageerror', (e) => problems.push(e.message));
  await signIn(page);
});

after(async () => {
  await browser?.close();
});

test('Privacy: noise parameters, 30 days of budget and the policy in force', async () => {
  const telemetry = await api('/api/v1/privacy');
  const demo = telemetry.sites.find((s) => s.domain === SITE);
  assert.ok(demo, `GET /api/v1/privacy has no ${SITE}`);
  await page.goto(`${VEIL}/app/privacy`);
  const card = siteCard(SITE);
  await card.waitFor();

  const params = await card.getByTestId('noise-params').textContent();
  assert.match(params, new RegExp(`Budget per ${demo.budget_period}ε ${demo.daily_epsilon}\\b`));
  assert.ok(params.includes(`δ${demo.delta}`), `δ ${demo.delta} not shown: ${params}`);
  assert.ok(params.includes(demo.mechanism), 'the mechanism is not shown');

  const rows = card.getByTestId('budget-row');
  assert.equal(await rows.count(), 30);
  assert.deepEqual(await rows.evaluateAll((trs) => trs.map((tr) => tr.dataset.day)), demo.budget.days.map((d) => d.day));

  const policy = page.getByTestId('policy-status');
  const files = telemetry.policy.Files || [];
  if (files.length) for (const f of files) assert.ok((await policy.textContent()).includes(f), `policy file ${f} not listed`);
  else assert.match(await policy.textContent(), /built-in rules alone/);
  assert.equal(await page.getByTestId('policy-error').count(), telemetry.policy.LastError ? 1 : 0);
  assert.ok(await page.getByTestId('denials').isVisible(), 'no denials section');
});

test('Audit log: a new site’s creation, filtered by action, page by page', async () => {
  const stamp = Date.now();
  const older = await api('/api/v1/sites', { domain: `audit-a-${stamp}.example` });
  const newer = await api('/api/v1/sites', { domain: `audit-b-${stamp}.example` });

  await page.goto(`${VEIL}/app/audit`);
  await entries().first().waitFor();
  // The filter form works from the keyboard: type, then Enter.
  await page.getByTestId('audit-action').focus();
  await page.keyboard.type('site.create');
  await page.keyboard.press('Enter');
  await page.waitForURL(/\/app\/audit\?action=site\.create$/);
  await page.waitForFunction(() => {
    const rows = [...document.querySelectorAll('[data-testid="audit-entry"]')];
    return rows.length > 0 && rows.every((r) => r.dataset.action === 'site.create');
  });
  assert.equal(await entries().first().getAttribute('data-target'), newer.id, 'the newest site.create is not first');
  assert.match(await entries().first().textContent(), new RegExp(`domain: audit-b-${stamp}\\.example`));

  // One entry a page: Older, Newer, and the back button.
  await page.goto(`${VEIL}/app/audit?action=site.create&limit=1`);
  await page.waitForFunction((id) => document.querySelector('[data-testid="audit-entry"]')?.dataset.target === id, newer.id);
  assert.equal(await page.getByTestId('audit-newer').isDisabled(), true);
  await page.getByTestId('audit-older').focus();
  await page.keyboard.press('Enter');
  await page.waitForFunction((id) => document.querySelector('[data-testid="audit-entry"]')?.dataset.target === id, older.id);
  assert.match(page.url(), /offset=1/);
  await page.getByTestId('audit-newer').click();
  await page.waitForFunction((id) => document.querySelector('[data-testid="audit-entry"]')?.dataset.target === id, newer.id);
  await page.goBack();
  await page.waitForFunction((id) => document.querySelector('[data-testid="audit-entry"]')?.dataset.target === id, older.id);
  assert.equal(await entries().count(), 1);
});

test('Audit log: the signed checkpoint can be copied, with how to use it', async () => {
  await page.goto(`${VEIL}/app/audit`);
  const cp = page.getByTestId('checkpoint');
  await page.waitForFunction(() => document.querySelector('[data-testid="checkpoint"]')?.textContent.startsWith('veil-audit\n'));
  const text = await cp.textContent();
  assert.match(text, /^veil-audit\n\d+\n\S+\n\n— veil-audit \S+\n$/, `not a signed note: ${text}`);
  assert.match(await page.locator('main').textContent(), /veil audit verify --witness FILE/);
  await page.getByTestId('copy-checkpoint').click();
  await page.getByText('Copied.').waitFor();
  assert.equal(await page.evaluate(() => navigator.clipboard.readText()), text);
});

test('Catalog: the demo site is a data product with its schema', async (t) => {
  const res = await fetch(`${VEIL}/api/v1/catalog`, { headers: { Authorization: `Bearer ${TOKEN}` } });
  await page.goto(`${VEIL}/app/catalog`);
  if (res.status === 404) {
    await page.getByTestId('catalog-unavailable').waitFor();
    t.skip('GET /api/v1/catalog answers 404 on this server: checked only that the page says the catalog is not available');
    return;
  }
  assert.equal(res.status, 200);
  const catalog = await res.json();
  const product = catalog.domains.flatMap((d) => d.products).find((p) => p.name === SITE);
  assert.ok(product, `the catalog has no product ${SITE}`);
  const card = page.locator(`[data-testid="catalog-product"][data-name="${SITE}"]`);
  await card.waitFor();
  assert.equal(await card.getByTestId('schema-field').count(), product.schema.length);
  const tagged = product.schema.find((f) => f.tags?.length);
  if (tagged) {
    const row = card.locator(`[data-testid="schema-field"][data-field="${tagged.name}"]`);
    assert.deepEqual(await row.locator('.tag').allTextContents(), [...tagged.tags, ...(tagged.detected || []).map((k) => `detected: ${k}`)]);
  }
});

test('governance pages are usable at phone width', async () => {
  await page.setViewportSize({ width: 390, height: 844 });
  try {
    for (const [path, ready] of [['privacy', '[data-testid="privacy-site"]'], ['audit', '[data-testid="audit-entry"]'], ['catalog', 'main h1']]) {
      await page.goto(`${VEIL}/app/${path}`);
      await page.locator(ready).first().waitFor();
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
      assert.ok(overflow <= 0, `${path}: the page is ${overflow}px wider than the phone`);
      await page.screenshot({ path: join(ARTIFACTS, `${path}-phone.png`), fullPage: true });
    }
  } finally {
    await page.setViewportSize({ width: 1280, height: 900 });
  }
  await page.goto(`${VEIL}/app/privacy`);
  await siteCard(SITE).waitFor();
  await page.screenshot({ path: join(ARTIFACTS, 'privacy.png'), fullPage: true });
});

test('a privacy officer signs in to Privacy and the Audit log, without analytics', async () => {
  const po = await api('/api/v1/tokens', { name: 'po', role: 'privacy-officer' });
  await Promise.all([page.waitForURL(/\/login$/), page.getByTestId('logout').click()]);
  const analytics = [];
  const watch = (r) => { if (/\/ui\/api\/v2\/|\/budget\?/.test(r.url())) analytics.push(r.url()); };
  page.on('request', watch);
  try {
    await signIn(page, po.token);
    await page.waitForURL(/\/app\/privacy$/);
    await siteCard(SITE).waitFor();
    assert.deepEqual(await page.locator('#nav a').allTextContents(), ['Privacy', 'Audit log', 'Catalog', 'Help']);

    await page.getByRole('link', { name: 'Audit log' }).click();
    await entries().first().waitFor();
    await page.waitForFunction(() => document.querySelector('[data-testid="checkpoint"]')?.textContent.startsWith('veil-audit\n'));

    await page.goto(`${VEIL}/app/sites/${encodeURIComponent(SITE)}`);
    await page.getByTestId('no-analytics').waitFor();
    assert.equal(await page.getByTestId('headline').count(), 0);
    assert.deepEqual(analytics, [], 'the privacy officer’s pages asked for analytics');
  } finally {
    page.off('request', watch);
  }
});

test('no CSP violation or script error on the governance pages', async () => {
  assert.deepEqual(problems.filter((p) => /Content Security Policy|Refused to/i.test(p)), []);
  // Expected: the catalog's 404 while the server has no catalog.
  assert.deepEqual(problems.filter((p) => !/Failed to load resource.*\b404\b/.test(p)), []);
});
