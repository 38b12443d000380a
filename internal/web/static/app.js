// The dashboard's entry point: who is signed in, and a small router over
// /app/ paths (links inside the app change views without reloading).

import { api } from './api.js';
import { Dashboard } from './dashboard.js';
import { h, replace } from './dom.js';
import { explain } from './privacy.js';

const main = document.getElementById('main');
const nav = document.getElementById('nav');
let me;
let view; // the current view, if it needs stopping (polling)
let first = true; // the first view keeps the browser's initial focus

function navigate(path) {
  history.pushState(null, '', path);
  route();
}

function help() {
  const d = explain();
  d.open = true;
  replace(main, h('div', { class: 'admin' }, h('h1', { text: 'Reading the numbers' }), d,
    h('p', {}, h('a', { href: '/app/', text: '← Back to the dashboard' }))));
}

// Who sees what: analytics for viewers, analysts and admins; governance
// (the privacy overview and audit log) for admins and privacy officers; the
// catalog for everyone. The API enforces the same split.
const analyses = () => ['viewer', 'analyst', 'admin'].includes(me.role);
const governs = () => ['admin', 'privacy-officer'].includes(me.role);

// Pages loaded on demand, by path: their title, module and render function.
const PAGES = {
  '/app/admin/sites': ['Sites', () => import('./admin.js'), 'sitesPage'],
  '/app/privacy': ['Privacy', () => import('./telemetry.js'), 'privacyPage'],
  '/app/audit': ['Audit log', () => import('./audit.js'), 'auditPage'],
  '/app/catalog': ['Catalog', () => import('./catalog.js'), 'catalogPage'],
};

function renderNav(path) {
  const links = [];
  if (analyses() && me.sites.length) links.push(['/app/', 'Dashboard', path.startsWith('/app/sites/') || path === '/app/']);
  if (me.role === 'admin') links.push(['/app/admin/sites', 'Sites', path.startsWith('/app/admin/')]);
  if (governs()) links.push(['/app/privacy', 'Privacy', path === '/app/privacy'], ['/app/audit', 'Audit log', path === '/app/audit']);
  links.push(['/app/catalog', 'Catalog', path === '/app/catalog']);
  links.push(['/app/help', 'Help', path === '/app/help']);
  replace(nav, links.map(([href, text, current]) => h('a', { href, text, 'aria-current': current ? 'page' : null })),
    h('span', { class: 'who', title: `Signed in with token ${me.name || me.id}`, text: `${me.name || 'token ' + me.id} · ${me.role}` }));
}

async function route() {
  view?.destroy?.();
  view = null;
  const path = decodeURIComponent(location.pathname);
  renderNav(path);
  if (!first) main.focus({ preventScroll: true });
  first = false;
  try {
    let m;
    if (path.startsWith('/app/sites/') && !analyses()) {
      replace(main, h('div', { class: 'admin', 'data-testid': 'no-analytics' }, h('h1', { text: 'No analytics for this role' }),
        h('p', {}, `A ${me.role} token does not read analytics. See the `, h('a', { href: '/app/privacy', text: 'Privacy' }),
          ' and ', h('a', { href: '/app/audit', text: 'Audit log' }), ' pages.')));
    } else if ((m = path.match(/^\/app\/sites\/([^/]+)\/?$/))) {
      let site = me.sites.find((s) => s.domain === m[1]);
      if (!site) {
        me = await api('v1/me'); // the site may have been added since
        site = me.sites.find((s) => s.domain === m[1]);
      }
      if (!site) {
        replace(main, h('p', { class: 'warn', text: `No site ${m[1]}, or your token may not read it.` }));
        return;
      }
      document.title = `${site.domain} · Veil`;
      view = new Dashboard(main, me, site, new URLSearchParams(location.search));
      await view.load();
    } else if (PAGES[path]) {
      const [title, load, render] = PAGES[path];
      document.title = `${title} · Veil`;
      await (await load())[render](main, navigate);
    } else if ((m = path.match(/^\/app\/admin\/sites\/([^/]+)\/?$/))) {
      document.title = `${m[1]} settings · Veil`;
      const { sitePage } = await import('./admin.js');
      await sitePage(main, m[1]);
    } else if (path === '/app/help') {
      document.title = 'Help · Veil';
      help();
    } else if (!analyses()) {
      history.replaceState(null, '', '/app/privacy');
      return route();
    } else if (me.sites.length) {
      history.replaceState(null, '', `/app/sites/${encodeURIComponent(me.sites[0].domain)}`);
      return route();
    } else {
      replace(main, h('div', { class: 'admin' }, h('h1', { text: 'No sites yet' }),
        me.role === 'admin'
          ? h('p', {}, 'Add your first site on the ', h('a', { href: '/app/admin/sites', text: 'Sites' }), ' page.')
          : h('p', { text: 'Your token may not read any site yet. Ask an admin for access.' })));
    }
  } catch (e) {
    replace(main, h('p', { class: 'warn', role: 'alert', text: e.message }));
  }
}

// Same-origin links into the app navigate in place.
document.addEventListener('click', (e) => {
  const a = e.target.closest('a[href^="/app/"]');
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
  e.preventDefault();
  if (a.getAttribute('href') !== location.pathname + location.search) navigate(a.getAttribute('href'));
});
addEventListener('popstate', route);

try {
  me = await api('v1/me');
  route();
} catch (e) {
  replace(main, h('p', { class: 'warn', role: 'alert', text: e.message }));
}
