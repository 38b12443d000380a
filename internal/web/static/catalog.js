// The data catalog, from GET /api/v1/catalog: every site the token may read
// as a data product, grouped by the data-mesh domain that owns it, with its
// privacy settings and a schema table whose tags say what each field is and
// what Veil does to it. Optional parts of a product are left out when the
// server does not send them; a server without the catalog answers 404.

import { ApiError, api } from './api.js';
import { h, kv, replace, scroller } from './dom.js';
import { formatEpsilon, plural } from './format.js';
import { capsTable } from './privacy.js';

const list = (v) => (Array.isArray(v) ? v : []);

export async function catalogPage(root) {
  let data;
  try {
    data = await api('v1/catalog');
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 404)) throw e;
    replace(root, h('div', { class: 'admin' }, h('h1', { text: 'Catalog' }),
      h('p', { class: 'muted', 'data-testid': 'catalog-unavailable', text: 'The data catalog is not available on this server.' })));
    return;
  }
  const domains = list(data?.domains);
  replace(root, h('div', { class: 'admin wide' },
    h('h1', { text: 'Catalog' }),
    h('p', { class: 'hint', text: 'Each site is a data product owned by a domain. The schema says what every field holds, how it is classified, and what Veil does to it before storing it.' }),
    domains.length ? domains.map(domainSection) : h('p', { class: 'muted', text: 'No data products your token may read.' })));
}

function domainSection(d, i) {
  const id = `h-domain-${i}`;
  return h('section', { class: 'catalog-domain', 'data-testid': 'catalog-domain', 'data-name': d.name, 'aria-labelledby': id },
    h('h2', { id, text: `Domain: ${d.name || '(none)'}` }),
    list(d.owners).length > 0 && h('p', { class: 'hint', text: `Owners: ${d.owners.join(', ')}` }),
    list(d.products).map(product));
}

function budget(b) {
  if (!b || !Number.isFinite(b.epsilon_per_period)) return null;
  return [`ε ${formatEpsilon(b.epsilon_per_period)} per ${b.period || 'day'}`, b.delta != null && `δ ${b.delta}`,
    b.composition && `${b.composition} composition`].filter(Boolean).join(', ');
}

function piiSummary(p) {
  if (!p) return null;
  if (!p.fields_observed) return 'no fields observed yet';
  const text = `${plural(p.fields_observed ?? 0, 'field')} observed; ${p.need_action ?? 0} need action, ${p.need_review ?? 0} need review`;
  return p.need_action > 0 ? h('span', { class: 'tag sensitive', text }) : text;
}

function product(p) {
  const name = p.name || p.id || '(unnamed)';
  const outputs = list(p.outputs);
  return h('article', { class: 'card', 'data-testid': 'catalog-product', 'data-name': name },
    h('h3', { text: name }),
    kv([
      ['Owner', p.owner],
      ['Retention', p.retention_days ? plural(p.retention_days, 'day') : null],
      ['Privacy unit', p.privacy_unit],
      ['Budget', budget(p.budget)],
      ['Purposes', list(p.purposes).join(', ')],
      ['PII report', piiSummary(p.pii)],
      ['Outputs', outputs.length ? h('ul', { class: 'plain' }, outputs.map((o) =>
        h('li', {}, h('code', { text: o.name ?? '' }), o.namespace && h('span', { class: 'muted', text: ` in ${o.namespace}` })))) : null],
    ]),
    Object.keys(p.contribution_bounds || {}).length > 0 && h('details', {},
      h('summary', { text: 'Contribution bounds' }), capsTable(p.contribution_bounds)),
    list(p.schema).length > 0 && schemaTable(name, p.schema));
}

// Tags that call for care stand out: personal or identifying data first,
// then quasi-identifiers.
function tagClass(tag) {
  if (/^PII\.Sensitive$|DirectIdentifier|PIIDetected/.test(tag)) return 'tag sensitive';
  if (/QuasiIdentifier/.test(tag)) return 'tag quasi';
  return 'tag';
}

function schemaTable(name, fields) {
  return scroller(`Schema of ${name}`, h('table', { class: 'compact schema', 'data-testid': 'schema' },
    h('thead', {}, h('tr', {}, ['Field', 'Type', 'Classification', 'Transform', 'Tags', 'Description'].map((t) => h('th', { scope: 'col', text: t })))),
    h('tbody', {}, fields.map((f) => h('tr', { class: f.flag ? 'flagged' : null, 'data-testid': 'schema-field', 'data-field': f.name },
      h('th', { scope: 'row' }, h('code', { text: f.name ?? '' })),
      h('td', { text: f.type ?? '' }),
      h('td', { text: (f.classification ?? '').replaceAll('_', ' ') }),
      h('td', { text: [f.transform, f.declared && `(declared: ${f.declared})`].filter(Boolean).join(' ') }),
      h('td', { class: 'tags' }, list(f.tags).map((t) => h('span', { class: tagClass(t), text: t })),
        list(f.detected).map((k) => h('span', { class: 'tag sensitive', text: `detected: ${k}` }))),
      h('td', {}, f.description ?? '', f.flag && h('div', { class: 'flag', text: f.flag })))))));
}
