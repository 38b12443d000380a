// The privacy overview for admins and privacy officers, from GET
// /api/v1/privacy: each site's noise parameters and the last 30 days of its
// budget, the query policy in force, queries denied by rule, and data
// subject requests against their deadline. Parts of the answer are
// optional (a server without an audit log has no denials, one without the
// DSR service no requests): what is missing is left out.

import { api } from './api.js';
import { h, kv, replace, scroller } from './dom.js';
import { formatDuration, formatEpsilon, formatTime, plural } from './format.js';
import { capsTable } from './privacy.js';

// The policy status has no JSON names of its own yet (Loaded, Files,
// LastError); snake_case ones are read too, should it gain them.
const field = (o, ...names) => names.map((n) => o?.[n]).find((v) => v != null);

export async function privacyPage(root) {
  const data = (await api('v1/privacy')) || {};
  const sites = Array.isArray(data.sites) ? data.sites : [];
  const now = Date.now();
  const late = (dsrList(data.dsr) || []).filter((r) => overdue(r, now)).length;
  const loadError = field(data.policy, 'LastError', 'last_error');
  replace(root, h('div', { class: 'admin wide' },
    h('h1', { text: 'Privacy' }),
    h('p', { class: 'hint', text: 'What each site’s numbers cost in privacy over the last 30 days, and how queries are governed.' }),
    loadError && h('div', { class: 'alert', role: 'alert', 'data-testid': 'policy-error' },
      h('strong', { text: 'The latest policy change did not load. ' }),
      'The previous policy stays in force until the files are fixed:', h('pre', { text: loadError })),
    late > 0 && h('p', { class: 'warn', role: 'alert', 'data-testid': 'dsr-overdue',
      text: `${plural(late, 'data subject request')} ${late === 1 ? 'is' : 'are'} past the deadline.` }),
    sites.length ? sites.map(siteSection) : h('p', { class: 'muted', text: 'No sites yet, or your token covers none.' }),
    policySection(data.policy, loadError),
    denialsSection(data.denials_by_rule_30d),
    dsrSection(data.dsr, now)));
}

function siteSection(s) {
  const id = `h-site-${s.id}`;
  const fields = Object.entries(s.fields || {});
  return h('section', { class: 'card', 'data-testid': 'privacy-site', 'data-domain': s.domain, 'aria-labelledby': id },
    h('h2', { id, text: s.domain }),
    kv([
      [`Budget per ${s.budget_period || 'day'}`, Number.isFinite(s.daily_epsilon) ? `ε ${formatEpsilon(s.daily_epsilon)}` : null],
      ['δ', s.delta != null ? String(s.delta) : null],
      ['Mechanism', s.mechanism],
      ['Privacy unit', s.privacy_unit],
      ['Retention', s.retention_days ? plural(s.retention_days, 'day') : null],
      ['Purposes', (s.purposes || []).join(', ')],
      ['Owner', [s.owner, s.owner_domain && `(${s.owner_domain} domain)`].filter(Boolean).join(' ')],
      ['Declared fields', fields.map(([k, v]) => `${k}: ${v}`).join(', ')],
      ['Undeclared fields', s.undeclared],
    ], { 'data-testid': 'noise-params' }),
    budgetView(s.budget),
    Object.keys(s.caps || {}).length > 0 && h('details', {},
      h('summary', { text: 'Contribution bounds' }),
      h('p', { class: 'hint', text: 'What one privacy unit can add to the numbers; they set the noise each number needs.' }),
      capsTable(s.caps)));
}

// budgetView shows a site's spend per day (or month): a chart of how much
// of each period's ε went to released numbers and to ad hoc queries, a
// summary, and the numbers as a table.
function budgetView(b) {
  const days = Array.isArray(b?.days) ? b.days : [];
  if (!days.length) return h('p', { class: 'muted', text: 'No budget information.' });
  const unit = b.period === 'month' ? 'month' : 'day';
  const per = b.epsilon_per_period;
  const least = days.reduce((a, d) => (d.adhoc_epsilon_left < a.adhoc_epsilon_left ? d : a));
  const exhausted = days.filter((d) => d.adhoc_epsilon_total > 0 && d.adhoc_epsilon_left <= 0).length;
  const last = days[days.length - 1];
  return h('div', {},
    h('h3', { text: `Budget spent per ${unit}, last ${plural(days.length, unit)}` }),
    days.some((d) => d.total_epsilon_spent > 0)
      ? [spendChart(days, per, unit), h('p', { class: 'legend small' },
        h('span', { class: 'swatch released', 'aria-hidden': 'true' }), 'Released numbers ',
        h('span', { class: 'swatch adhoc', 'aria-hidden': 'true' }), 'Ad hoc queries')]
      : h('p', { class: 'muted', text: 'Nothing released or queried yet.' }),
    kv([
      [`Spent ${unit === 'day' ? 'today' : 'this month'}`, `ε ${formatEpsilon(last.total_epsilon_spent)}${Number.isFinite(per) ? ` of ${formatEpsilon(per)}` : ''}`],
      ['Least ad hoc budget left', `ε ${formatEpsilon(least.adhoc_epsilon_left)} of ${formatEpsilon(least.adhoc_epsilon_total)} (${least.day})`],
      [`${unit === 'day' ? 'Days' : 'Months'} with the ad hoc budget spent`, exhausted ? String(exhausted) : 'none'],
    ]),
    h('details', {},
      h('summary', { text: `Per ${unit}` }),
      scroller(`Budget per ${unit}`, h('table', { class: 'compact' },
        h('thead', {}, h('tr', {}, [unit, 'Released ε', 'Ad hoc ε spent', 'Ad hoc ε left', 'Total ε spent'].map((t, i) =>
          h('th', { scope: 'col', class: i ? 'num' : null, text: t })))),
        h('tbody', {}, days.map((d) => h('tr', { 'data-testid': 'budget-row', 'data-day': d.day },
          h('th', { scope: 'row', text: d.day }),
          [d.released_epsilon, d.adhoc_epsilon_spent, d.adhoc_epsilon_left, d.total_epsilon_spent].map((v) =>
            h('td', { class: 'num', text: formatEpsilon(v) })))))))));
}

function spendChart(days, per, unit) {
  const chart = h('div', { class: 'spend-chart', role: 'img',
    'aria-label': `Share of each ${unit}’s budget spent, on released numbers and on ad hoc queries; the table below has the numbers.` });
  for (const d of days) {
    const rho = d.released_rho + d.adhoc_rho_spent;
    const col = h('span', { class: 'col', title: `${d.day}: ε ${formatEpsilon(d.total_epsilon_spent)} spent (released ε ${formatEpsilon(d.released_epsilon)}, ad hoc ε ${formatEpsilon(d.adhoc_epsilon_spent)})` },
      h('span', { class: 'adhoc' }), h('span', { class: 'released' }));
    col.style.setProperty('--h', `${per > 0 ? Math.min(d.total_epsilon_spent / per, 1) * 100 : 0}%`);
    // ε does not add up under composition but ρ does, so the bar is split
    // between released and ad hoc by their shares of ρ.
    col.style.setProperty('--r', `${rho > 0 ? (d.released_rho / rho) * 100 : 0}%`);
    chart.append(col);
  }
  return chart;
}

function policySection(p, loadError) {
  if (!p) return null;
  const files = field(p, 'Files', 'files') || [];
  return h('section', { class: 'card', 'data-testid': 'policy-status', 'aria-labelledby': 'h-policy' },
    h('h2', { id: 'h-policy', text: 'Query policy' }),
    h('p', { class: 'hint', text: 'Every query passes the policy: Veil’s built-in rules, tightened per site or owner domain by policy files.' }),
    kv([
      ['In force since', formatTime(field(p, 'Loaded', 'loaded'))],
      ['Policy files', files.length
        ? h('ul', { class: 'plain' }, files.map((f) => h('li', {}, h('code', { text: f }))))
        : 'none: the built-in rules alone'],
      ['Latest load', loadError ? 'failed (see above)' : 'succeeded'],
    ]));
}

function denialsSection(byRule) {
  if (!byRule || typeof byRule !== 'object') return null;
  const rows = Object.entries(byRule).sort((a, b) => b[1] - a[1]);
  return h('section', { class: 'card', 'data-testid': 'denials', 'aria-labelledby': 'h-denials' },
    h('h2', { id: 'h-denials', text: 'Denied queries, last 30 days' }),
    rows.length
      ? h('table', { class: 'compact' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Rule' }), h('th', { scope: 'col', class: 'num', text: 'Denials' }))),
        h('tbody', {}, rows.map(([rule, n]) => h('tr', {}, h('th', { scope: 'row' }, h('code', { text: rule || '(unnamed)' })), h('td', { class: 'num', text: n })))))
      : h('p', { class: 'muted', text: 'The policy denied no query.' }));
}

// dsrList finds the requests in the DSR status: a list, or an object
// holding one under "requests".
function dsrList(dsr) {
  if (Array.isArray(dsr)) return dsr;
  return Array.isArray(dsr?.requests) ? dsr.requests : null;
}

function overdue(r, now) {
  return r.overdue ?? (!r.completed && !!r.deadline && Date.parse(r.deadline) < now);
}

// age says how old an open request is and how long it has left.
function age(r, now) {
  const secs = Number.isFinite(r.age_seconds) ? r.age_seconds : (now - Date.parse(r.received)) / 1000;
  const left = (Date.parse(r.deadline) - now) / 1000;
  const parts = [Number.isFinite(secs) ? formatDuration(secs) : '–'];
  if (r.completed) parts.push(`completed ${formatTime(r.completed)}`);
  else if (Number.isFinite(left)) parts.push(left < 0 ? `${formatDuration(left)} past the deadline` : `${formatDuration(left)} left`);
  return parts.join(', ');
}

function dsrSection(dsr, now) {
  if (dsr === undefined) return null;
  // Overdue first, then open ones by deadline, completed ones last.
  const reqs = [...(dsrList(dsr) || [])].sort((a, b) => overdue(b, now) - overdue(a, now) || !!a.completed - !!b.completed ||
    String(a.deadline).localeCompare(String(b.deadline)));
  return h('section', { class: 'card', 'data-testid': 'dsr', 'aria-labelledby': 'h-dsr' },
    h('h2', { id: 'h-dsr', text: 'Data subject requests' }),
    reqs.length
      ? scroller('Data subject requests', h('table', { class: 'compact' },
        h('thead', {}, h('tr', {}, ['Request', 'Site', 'Kind', 'Status', 'Received', 'Age', 'Deadline'].map((t) => h('th', { scope: 'col', text: t })))),
        h('tbody', {}, reqs.map((r) => {
          const late = overdue(r, now);
          return h('tr', { class: late ? 'overdue' : null, 'data-testid': 'dsr-request', 'data-overdue': String(!!late) },
            h('td', {}, h('code', { text: r.id ?? '–' })), h('td', { text: r.site ?? '' }), h('td', { text: r.kind ?? '' }),
            h('td', {}, r.status ?? '', late && h('span', { class: 'tag sensitive', text: 'Overdue' })),
            h('td', { text: formatTime(r.received) }), h('td', { text: age(r, now) }), h('td', { text: formatTime(r.deadline) }));
        }))))
      : h('p', { class: 'muted', text: 'No data subject requests.' }));
}
