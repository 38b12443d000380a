// The audit log for admins and privacy officers: entries newest first,
// filtered by action, actor and target and paged, and the signed checkpoint
// to keep as a witness. Filters and page live in the URL, so a view can be
// linked and the back button returns to the previous one.

import { api, apiText } from './api.js';
import { copyButton, h, replace, scroller } from './dom.js';
import { formatTime } from './format.js';

const PAGE = 50;
// What Veil records, offered as suggestions; any action can be typed.
const ACTIONS = ['site.create', 'site.update', 'site.delete', 'token.create', 'token.revoke', 'dp.release', 'dp.release.adhoc',
  'query.adhoc', 'policy.deny', 'retention.purge', 'vault.detokenize', 'dsr.export', 'dsr.erase'];
const FILTERS = [['action', 'Action'], ['actor', 'Actor (token id, or system)'], ['target', 'Target starts with']];

function stateFrom(params) {
  const int = (k, def) => {
    const n = Number.parseInt(params.get(k), 10);
    return Number.isFinite(n) && n >= 0 ? n : def;
  };
  const st = { offset: int('offset', 0), limit: Math.min(Math.max(int('limit', PAGE), 1), 999) };
  for (const [k] of FILTERS) st[k] = params.get(k) || '';
  return st;
}

function url(st) {
  const p = new URLSearchParams();
  for (const [k] of FILTERS) if (st[k]) p.set(k, st[k]);
  if (st.offset) p.set('offset', st.offset);
  if (st.limit !== PAGE) p.set('limit', st.limit);
  const q = p.toString();
  return q ? `/app/audit?${q}` : '/app/audit';
}

export async function auditPage(root) {
  let st = stateFrom(new URLSearchParams(location.search));
  // Targets are ids; the sites the token covers give them a name.
  const sites = api('v1/me').then((me) => new Map((me?.sites || []).map((x) => [x.id, x.domain])), () => new Map());
  const results = h('div', { class: 'audit-results', 'aria-live': 'polite', 'data-testid': 'audit-results' });
  const newer = h('button', { type: 'button', class: 'secondary', 'data-testid': 'audit-newer', text: '← Newer',
    onclick: () => show({ ...st, offset: Math.max(0, st.offset - st.limit) }) });
  const older = h('button', { type: 'button', class: 'secondary', 'data-testid': 'audit-older', text: 'Older →',
    onclick: () => show({ ...st, offset: st.offset + st.limit }) });
  const position = h('span', { class: 'muted' });
  const form = h('form', { class: 'audit-filters', role: 'search', 'aria-label': 'Filter the audit log', 'data-testid': 'audit-filter',
    onsubmit: (e) => {
      e.preventDefault();
      const next = { ...st, offset: 0 };
      for (const [k] of FILTERS) next[k] = e.target.elements[k].value.trim();
      show(next);
    } },
  FILTERS.map(([k, text]) => h('label', {}, text,
    h('input', { name: k, value: st[k], autocomplete: 'off', spellcheck: 'false', list: k === 'action' ? 'audit-actions' : null, 'data-testid': `audit-${k}` }))),
  h('datalist', { id: 'audit-actions' }, ACTIONS.map((a) => h('option', { value: a }))),
  h('button', { type: 'submit', class: 'primary', text: 'Filter' }));

  // show loads the entries of state next; push records it in the history.
  // Only the latest call renders, however the answers arrive.
  let shown = 0;
  async function show(next, push = true) {
    const gen = ++shown;
    st = next;
    if (push && url(st) !== location.pathname + location.search) history.pushState(null, '', url(st));
    results.setAttribute('aria-busy', 'true');
    const q = new URLSearchParams({ limit: st.limit + 1, offset: st.offset }); // one extra: is there an older page?
    for (const [k] of FILTERS) if (st[k]) q.set(k, st[k]);
    try {
      const entries = (await api(`v1/audit?${q}`))?.entries || [];
      const names = await sites;
      if (gen !== shown) return;
      const page = entries.slice(0, st.limit);
      const filtered = FILTERS.some(([k]) => st[k]);
      replace(results, page.length ? entriesTable(page, names)
        : h('p', { class: 'muted', text: st.offset ? 'No older entries.' : filtered ? 'No entries match.' : 'The log is empty.' }));
      position.textContent = page.length ? `Entries ${st.offset + 1}–${st.offset + page.length}, newest first` : '';
      setEnabled(newer, st.offset > 0, older);
      setEnabled(older, entries.length > st.limit, newer);
    } catch (e) {
      if (gen !== shown) return;
      replace(results, h('p', { class: 'warn', role: 'alert', text: e.message }));
    }
    results.removeAttribute('aria-busy');
  }

  const code = h('code', { 'data-testid': 'checkpoint' });
  const checkpoint = h('section', { class: 'card', 'aria-labelledby': 'h-checkpoint' },
    h('h2', { id: 'h-checkpoint', text: 'Signed checkpoint' }),
    h('p', {}, 'The checkpoint is signed and commits to every entry so far. Keep a copy outside Veil, in a file: ',
      'on the server, ', h('code', { text: 'veil audit verify --witness FILE' }),
      ' then proves that since this checkpoint nothing in the log was edited, deleted, reordered or rolled back.'),
    h('pre', { class: 'snippet' }, code),
    copyButton(code, { 'data-testid': 'copy-checkpoint' }));

  replace(root, h('div', { class: 'admin wide' },
    h('h1', { text: 'Audit log' }),
    h('p', { class: 'hint', text: 'Veil records every admin change, release of numbers, ad hoc query and policy denial here before acknowledging it. Entries can only be appended.' }),
    form,
    h('nav', { class: 'pager', 'aria-label': 'Audit log pages' }, newer, position, older),
    results,
    checkpoint));
  await Promise.all([
    show(st, false),
    apiText('v1/audit/checkpoint').then((t) => { code.textContent = t; }, (e) => { code.textContent = `Not available: ${e.message}`; }),
  ]);
}

// setEnabled enables or disables a pager button; focus on a button being
// disabled moves to the other one rather than being lost.
function setEnabled(button, enabled, other) {
  if (!enabled && document.activeElement === button && !other.disabled) other.focus();
  button.disabled = !enabled;
}

// entriesTable lists entries; sites maps site ids, the target of most
// entries, to their domains.
function entriesTable(entries, sites) {
  return scroller('Audit entries', h('table', { class: 'compact audit' },
    h('thead', {}, h('tr', {}, ['#', 'Time (UTC)', 'Actor', 'Action', 'Target', 'Details'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, entries.map(({ index, entry: e = {}, leaf_hash: leaf }) => h('tr', { 'data-testid': 'audit-entry', 'data-action': e.action, 'data-target': e.target },
      h('td', { class: 'num', text: index }),
      h('td', { class: 'nowrap', text: formatTime(e.time).replace(' UTC', '') }),
      h('td', {}, h('code', { text: e.actor ?? '' })),
      h('td', {}, h('code', { text: e.action ?? '' })),
      h('td', {}, h('code', { text: e.target ?? '' }), sites.has(e.target) && h('div', { class: 'muted small', text: sites.get(e.target) })),
      h('td', { class: 'detail' },
        e.reason && h('div', { text: `Reason: ${e.reason}` }),
        h('div', {}, Object.entries(e.detail || {}).map(([k, v]) => h('span', { class: 'pair' }, h('span', { class: 'muted', text: `${k}: ` }), v))),
        leaf && h('div', { class: 'muted small', title: `Leaf hash ${leaf}`, text: `leaf ${leaf.slice(0, 12)}…` })))))));
}
