// Breakdown panels: one table per dimension, each value with its 95%
// interval. Clicking a value filters the whole dashboard by it.

import { h, replace } from './dom.js';
import { available, formatPlusMinus, formatValue, halfWidth, label } from './format.js';

const NAMES = { visitors: 'Visitors', pageviews: 'Pageviews', visits: 'Visits', events: 'Events', bounce_rate: 'Bounce rate' };

// PANELS lists the dashboard's breakdowns; each tab is one query.
export const PANELS = [
  { id: 'pages', title: 'Pages', tabs: [
    { id: 'pages', label: 'Top pages', dim: 'event:page', col: 'Page', metrics: ['visitors', 'pageviews'] },
    { id: 'entry', label: 'Entry pages', dim: 'visit:entry_page', col: 'Entry page', metrics: ['visitors', 'bounce_rate'] },
  ] },
  { id: 'sources', title: 'Sources', tabs: [
    { id: 'sources', label: 'Sources', dim: 'visit:source', col: 'Source', metrics: ['visitors'] },
    { id: 'referrers', label: 'Referrers', dim: 'visit:referrer', col: 'Referrer', metrics: ['visitors'] },
    { id: 'utm_campaign', label: 'Campaigns', dim: 'visit:utm_campaign', col: 'UTM campaign', metrics: ['visitors'] },
    { id: 'utm_source', label: 'UTM sources', dim: 'visit:utm_source', col: 'UTM source', metrics: ['visitors'] },
    { id: 'utm_medium', label: 'UTM media', dim: 'visit:utm_medium', col: 'UTM medium', metrics: ['visitors'] },
  ] },
  { id: 'countries', title: 'Countries', tabs: [
    { id: 'countries', label: 'Countries', dim: 'visit:country', col: 'Country', metrics: ['visitors'] },
  ] },
  { id: 'devices', title: 'Devices', tabs: [
    { id: 'browsers', label: 'Browsers', dim: 'visit:browser', col: 'Browser', metrics: ['visitors'] },
    { id: 'os', label: 'Operating systems', dim: 'visit:os', col: 'OS', metrics: ['visitors'] },
    { id: 'devices', label: 'Devices', dim: 'visit:device', col: 'Device', metrics: ['visitors'] },
  ] },
  { id: 'goals', title: 'Goals and events', tabs: [
    { id: 'goals', label: 'Goals', dim: 'event:goal', col: 'Goal', metrics: ['visitors', 'events'] },
    { id: 'props', label: 'Properties', dim: 'event:props:', col: 'Value', metrics: ['visitors', 'events'], prop: true },
  ] },
];

const LIMIT = 10;
const MORE = 100;

// Panel is one breakdown card. host is the dashboard: host.reloadPanel(p)
// runs the current tab's query, host.filter(dim, value, name) narrows the
// dashboard, host.prop names the custom property of the props tab.
export class Panel {
  constructor(def, host) {
    this.def = def;
    this.host = host;
    this.tab = def.tabs[0];
    this.limit = LIMIT;
    this.body = h('div', { class: 'panel-body', 'aria-live': 'polite' });
    this.foot = h('div', { class: 'panel-foot' });
    this.tabBar = def.tabs.length > 1 ? h('div', { class: 'tabs', role: 'group', 'aria-label': `${def.title}: view` }) : null;
    this.el = h('section', { class: 'panel', 'data-testid': `panel-${def.id}`, 'aria-labelledby': `h-${def.id}` },
      h('header', {}, h('h2', { id: `h-${def.id}`, text: def.title }), this.tabBar),
      this.body, this.foot);
    this.renderTabs();
  }

  renderTabs() {
    if (!this.tabBar) return;
    replace(this.tabBar, this.def.tabs.map((t) => h('button', {
      type: 'button', 'aria-pressed': String(t === this.tab), 'data-tab': t.id, text: t.label,
      onclick: () => {
        if (t === this.tab) return;
        this.tab = t;
        this.limit = LIMIT;
        this.renderTabs();
        this.host.reloadPanel(this);
      },
    })));
  }

  // dim is the query dimension of the current tab.
  dim() {
    return this.tab.prop ? `event:props:${this.host.prop || ''}` : this.tab.dim;
  }

  loading() {
    this.el.setAttribute('aria-busy', 'true');
  }

  message(text, ...extra) {
    this.el.removeAttribute('aria-busy');
    replace(this.body, h('p', { class: 'muted', text }), extra);
    replace(this.foot);
  }

  // show renders a query answer; note explains where the rows come from.
  show(res, { note, active } = {}) {
    this.el.removeAttribute('aria-busy');
    const tab = this.tab;
    const dim = this.dim();
    const rows = res.results || [];
    if (!rows.length) {
      this.message(res.meta?.source === 'released'
        ? 'Nothing released for this range yet. Values seen by too few visitors on a day are not released (privacy).'
        : 'No data for this range.');
    } else {
      const max = Math.max(...rows.map((r) => r.metrics[0]), 1);
      replace(this.body, h('table', { class: 'breakdown', 'data-dim': dim },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: tab.col }), tab.metrics.map((m) => h('th', { scope: 'col', class: 'num', text: NAMES[m] })))),
        h('tbody', {}, rows.map((r) => this.row(r, dim, max, active)))));
    }
    const notes = [];
    if (note) notes.push(h('span', { class: 'note', text: note }));
    if (rows.length >= this.limit && this.limit < MORE) {
      notes.push(h('button', { type: 'button', class: 'link', text: 'Show more', onclick: () => { this.limit = MORE; this.host.reloadPanel(this); } }));
    }
    replace(this.foot, notes);
  }

  row(r, dim, max, active) {
    const value = r.dimensions[0];
    const name = label(dim, value);
    const weak = r.ci95 && r.ci95[0][0] <= 0; // cannot be told apart from zero
    const bar = h('span', { class: 'bar', 'aria-hidden': 'true' });
    bar.style.setProperty('--w', `${Math.max(0, (r.metrics[0] / max) * 100)}%`);
    const cell = h('th', { scope: 'row' }, bar,
      h('button', {
        type: 'button', class: 'rowbtn', 'data-value': value, title: `Filter the dashboard by ${name}`,
        onclick: () => this.host.filter(dim, value, name),
      }, name));
    return h('tr', { 'data-testid': 'row', 'data-label': value, class: [weak ? 'weak' : '', active === value ? 'active' : ''].join(' ').trim() || null },
      cell,
      this.tab.metrics.map((m, i) => {
        const v = r.metrics[i];
        const ci = r.ci95?.[i];
        if (!available(v, ci)) return h('td', { class: 'num', 'data-metric': m, text: '—' });
        return h('td', { class: 'num', 'data-metric': m, 'data-value': v, title: `95% interval ${formatValue(m, ci[0])} to ${formatValue(m, ci[1])}` },
          formatValue(m, v), h('small', { class: 'pm', 'data-hw': halfWidth(ci), text: ` ${formatPlusMinus(m, ci)}` }));
      }));
  }
}
