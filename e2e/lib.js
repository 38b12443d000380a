// Shared helpers for the browser tests and the first-paint benchmark:
// launching Debian's chromium through playwright-core, signing in, and
// calling Veil's API directly with the bearer token.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';

export const VEIL = (process.env.VEIL_URL || '').replace(/\/$/, '');
export const TOKEN = process.env.VEIL_TOKEN || '';
export const SITE = process.env.VEIL_SITE || 'demo.veil.local';

const ARGS = ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
  '--disable-background-networking', '--disable-component-update', '--disable-sync'];

// launch starts chromium with a fresh profile, removed again by close().
export async function launch() {
  const dir = mkdtempSync(join(tmpdir(), 'veil-chromium-'));
  const context = await chromium.launchPersistentContext(dir, {
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: ARGS,
    viewport: { width: 1280, height: 900 },
    // Headless chromium announces itself as HeadlessChrome, which Veil's
    // collector drops as a bot; the tracker test needs a browser's UA.
    userAgent: 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/156.0.0.0 Safari/537.36',
  });
  return {
    context,
    async close() {
      await context.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

// signIn signs page in with token through the login form.
export async function signIn(page, token = TOKEN, next = '/app/') {
  await page.goto(`${VEIL}/login?next=${encodeURIComponent(next)}`);
  await page.getByTestId('login-token').fill(token);
  await Promise.all([page.waitForURL((u) => u.pathname.startsWith('/app/')), page.getByTestId('login-submit').click()]);
}

// api calls Veil's JSON API as a script would, with the bearer token.
export async function api(path, body, method = body === undefined ? 'GET' : 'POST') {
  const res = await fetch(`${VEIL}${path}`, {
    method,
    headers: { Authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'Content-Type': 'application/json' }) },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  if (!res.ok) throw new Error(`${path}: ${res.status} ${text}`);
  return path === '/metrics' ? text : JSON.parse(text);
}

// ready waits until the dashboard has rendered every released panel.
export async function ready(page) {
  await page.waitForSelector('body[data-ready="1"]', { timeout: 30000 });
}

export function median(xs) {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}
