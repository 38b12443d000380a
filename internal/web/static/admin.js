// Site management for admins: list and add sites, edit their retention,
// budget and what they collect, and copy the tracker snippet.

import { ApiError, api } from './api.js';
import { copyButton, h, replace } from './dom.js';
import { formatEpsilon } from './format.js';
import { CAP_NAMES, capsTable } from './privacy.js';

const list = (s) => s.split(',').map((x) => x.trim()).filter(Boolean);

// showError puts an API error next to the field it names, or in the form's
// summary.
function showError(form, e) {
  form.querySelectorAll('.field-error').forEach((el) => el.remove());
  form.querySelectorAll('[aria-invalid]').forEach((el) => el.removeAttribute('aria-invalid'));
  const summary = form.querySelector('.form-error');
  const input = e instanceof ApiError && e.field ? form.elements[e.field] : null;
  const msg = e instanceof ApiError && e.field ? `${e.field}: ${e.message}` : e.message;
  if (input instanceof Element) {
    input.setAttribute('aria-invalid', 'true');
    input.insertAdjacentElement('afterend', h('span', { class: 'field-error', role: 'alert', text: e.message }));
    input.focus();
    replace(summary);
  } else {
    replace(summary, h('p', { class: 'warn', role: 'alert', 'data-testid': 'form-error', text: msg }));
  }
}

export async function sitesPage(root, navigate) {
  const data = await api('v1/sites');
  const form = h('form', { class: 'card form', 'data-testid': 'add-site', onsubmit: async (e) => {
    e.preventDefault();
    const f = e.target.elements;
    const body = { domain: f.domain.value.trim(), retention_days: Number(f.retention_days.value), privacy_unit: f.privacy_unit.value };
    // Empty bound fields keep the defaults; bounds are fixed once the site exists.
    const caps = {};
    for (const name of Object.keys(CAP_NAMES)) {
      const v = f[`cap_${name}`].value.trim();
      if (v !== '') caps[name] = Number(v);
    }
    if (Object.keys(caps).length > 0) body.caps = caps;
    try {
      const site = await api('v1/sites', { method: 'POST', body });
      navigate(`/app/admin/sites/${encodeURIComponent(site.domain)}`);
    } catch (err) {
      showError(e.target, err);
    }
  } },
  h('h2', { text: 'Add a site' }),
  h('div', { class: 'form-error' }),
  h('label', { for: 'f-domain', text: 'Domain' }),
  h('input', { id: 'f-domain', name: 'domain', required: true, placeholder: 'example.com', autocomplete: 'off', 'data-testid': 'new-domain' }),
  h('label', { for: 'f-ret', text: 'Retention (days)' }),
  h('input', { id: 'f-ret', name: 'retention_days', type: 'number', min: 1, max: 3650, value: 30, required: true }),
  h('label', { for: 'f-unit', text: 'Privacy unit' }),
  h('select', { id: 'f-unit', name: 'privacy_unit' },
    h('option', { value: 'visitor-day', text: 'Visitor-day (cookieless web traffic)' }),
    h('option', { value: 'user', text: 'User (logged-in apps sending user ids)' })),
  h('details', { class: 'caps-form', 'data-testid': 'caps-form' },
    h('summary', { text: 'Contribution bounds (optional; fixed once the site is added)' }),
    h('p', { class: 'muted', text: 'How much one visitor-day may add to the counts. Larger bounds count heavy users fully but need more noise for everyone. Leave empty for the default.' }),
    ...Object.entries(CAP_NAMES).flatMap(([name, label]) => [
      h('label', { for: `f-cap-${name}`, text: label }),
      h('input', { id: `f-cap-${name}`, name: `cap_${name}`, type: 'number', min: 1, max: name === 'hours' ? 24 : 100, step: 1 }),
    ])),
  h('button', { type: 'submit', class: 'primary', text: 'Add site' }));
  replace(root, h('div', { class: 'admin' },
    h('h1', { text: 'Sites' }),
    data.sites.length === 0 ? h('p', { text: 'No sites yet. Add the first one below.' }) : h('table', { class: 'compact sites', 'data-testid': 'sites-table' },
      h('thead', {}, h('tr', {}, ['Domain', 'Retention', 'Privacy unit', 'Budget ε', ''].map((t) => h('th', { scope: 'col', text: t })))),
      h('tbody', {}, data.sites.map((s) => h('tr', {},
        h('td', {}, h('a', { href: `/app/admin/sites/${encodeURIComponent(s.domain)}`, text: s.domain })),
        h('td', { text: `${s.retention_days} days` }),
        h('td', { text: s.privacy_unit }),
        h('td', { text: `${formatEpsilon(s.daily_epsilon)} per ${s.budget_period || 'day'}` }),
        h('td', {}, h('a', { href: `/app/sites/${encodeURIComponent(s.domain)}`, text: 'Dashboard' })))))),
    form));
}

function snippet(domain) {
  return `<script defer data-domain="${domain}" src="${location.origin}/js/script.js"></script>`;
}

export async function sitePage(root, domain) {
  const s = await api(`v1/sites/${encodeURIComponent(domain)}`);
  const props = s.allowed_props || ['*'];
  const propMode = props.length === 1 && props[0] === '*' ? 'all' : props.length === 0 ? 'none' : 'list';
  const code = h('code', { 'data-testid': 'snippet', text: snippet(s.domain) });
  const form = h('form', { class: 'card form', 'data-testid': 'edit-site', onsubmit: async (e) => {
    e.preventDefault();
    const f = e.target.elements;
    const mode = f.props_mode.value;
    const body = {
      retention_days: Number(f.retention_days.value),
      daily_epsilon: Number(f.daily_epsilon.value),
      privacy_unit: f.privacy_unit.value,
      allowed_params: list(f.allowed_params.value),
      allowed_props: mode === 'all' ? ['*'] : mode === 'none' ? [] : list(f.allowed_props.value),
    };
    try {
      await api(`v1/sites/${encodeURIComponent(s.domain)}`, { method: 'PATCH', body });
      replace(e.target.querySelector('.form-error'), h('p', { class: 'ok', role: 'status', 'data-testid': 'saved', text: 'Saved.' }));
    } catch (err) {
      showError(e.target, err);
    }
  } },
  h('h2', { text: 'Settings' }),
  h('div', { class: 'form-error' }),
  h('label', { for: 'f-ret', text: 'Retention (days)' }),
  h('input', { id: 'f-ret', name: 'retention_days', type: 'number', min: 1, max: 3650, value: s.retention_days, required: true }),
  h('p', { class: 'hint', text: 'Events older than this are deleted from the event log.' }),
  h('label', { for: 'f-eps', text: `Privacy budget ε per ${s.budget_period || 'day'}` }),
  h('input', { id: 'f-eps', name: 'daily_epsilon', type: 'number', min: 0, max: 10, step: 0.1, value: s.daily_epsilon, required: true }),
  h('p', { class: 'hint', text: `Per privacy unit (δ = ${s.delta}); two thirds fund the daily released numbers, the rest ad hoc queries. Smaller is more private and noisier; 0 restores the default.` }),
  h('label', { for: 'f-unit', text: 'Privacy unit' }),
  h('select', { id: 'f-unit', name: 'privacy_unit' },
    ['visitor-day', 'user'].map((u) => h('option', { value: u, selected: u === s.privacy_unit, text: u }))),
  h('label', { for: 'f-params', text: 'Allowed query parameters' }),
  h('input', { id: 'f-params', name: 'allowed_params', value: (s.allowed_params || []).join(', '), placeholder: 'utm_*, ref' }),
  h('p', { class: 'hint', text: 'Kept in page URLs (names, or prefixes ending in *); all others are dropped at collection.' }),
  h('fieldset', {},
    h('legend', { text: 'Custom event properties kept' }),
    ['all', 'none', 'list'].map((m) => h('label', { class: 'radio' },
      h('input', { type: 'radio', name: 'props_mode', value: m, checked: m === propMode }),
      { all: ' All', none: ' None', list: ' Only these:' }[m])),
    h('input', { name: 'allowed_props', 'aria-label': 'Property names', value: propMode === 'list' ? props.join(', ') : '', placeholder: 'plan, method' })),
  h('button', { type: 'submit', class: 'primary', text: 'Save' }));

  replace(root, h('div', { class: 'admin' },
    h('p', {}, h('a', { href: '/app/admin/sites', text: '← All sites' })),
    h('h1', { text: s.domain }),
    h('section', { class: 'card' },
      h('h2', { text: 'Tracker snippet' }),
      h('p', { text: 'Add this to every page, in the <head>:' }),
      h('pre', { class: 'snippet' }, code),
      copyButton(code, { 'data-testid': 'copy-snippet' }),
      h('p', { class: 'hint' }, 'Custom events: ', h('code', { text: "veil('Signup', {props: {plan: 'pro'}})" }), '.')),
    form,
    Object.keys(s.caps || {}).length > 0 && h('section', { class: 'card' },
      h('h2', { text: 'Contribution bounds' }),
      h('p', { class: 'hint', text: 'What one privacy unit can add to the numbers (fixed in this release). They set the noise each number needs: contributions beyond them are not counted.' }),
      capsTable(s.caps)),
    h('p', {}, h('a', { href: `/app/sites/${encodeURIComponent(s.domain)}`, text: 'Open the dashboard →' }))));
}
