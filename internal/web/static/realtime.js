// The realtime panel: today's released hours. Each hour's totals are
// released, with noise, a few minutes after the hour closes, so this is as
// fresh as differential privacy allows: the open hour is never shown.

import { query } from './api.js';
import { h, replace } from './dom.js';
import { formatPlusMinus, formatValue } from './format.js';

const POLL_MS = 60000;

export class Realtime {
  constructor(domain) {
    this.domain = domain;
    this.body = h('div', { class: 'panel-body', 'aria-live': 'polite' });
    this.el = h('section', { class: 'panel realtime', 'data-testid': 'panel-realtime', 'aria-labelledby': 'h-realtime' },
      h('header', {}, h('h2', { id: 'h-realtime' }, h('span', { class: 'pulse', 'aria-hidden': 'true' }), 'Today, hour by hour')),
      this.body,
      h('div', { class: 'panel-foot' }, h('span', { class: 'note', text: 'All visitors, UTC. Hours appear about five minutes after they end; the current hour is never shown. Free: released numbers.' })));
    this.timer = 0;
    this.onVisible = () => { if (document.visibilityState === 'visible') this.refresh(); };
  }

  // start loads now and then every minute while the page is visible.
  start() {
    if (!this.timer) {
      this.timer = setInterval(() => { if (document.visibilityState === 'visible') this.refresh(); }, POLL_MS);
      document.addEventListener('visibilitychange', this.onVisible);
    }
    return this.refresh();
  }

  stop() {
    clearInterval(this.timer);
    this.timer = 0;
    document.removeEventListener('visibilitychange', this.onVisible);
  }

  async refresh() {
    let res;
    try {
      res = await query({ site_id: this.domain, metrics: ['visitors', 'pageviews'], date_range: 'day', dimensions: ['time:hour'] });
    } catch (e) {
      replace(this.body, h('p', { class: 'muted', text: e.message }));
      return;
    }
    const rows = res.results.slice(-6).reverse();
    if (!rows.length) {
      replace(this.body, h('p', { class: 'muted', text: 'No hour of today has been released yet.' }));
      return;
    }
    const last = rows[0];
    replace(this.body,
      h('p', { class: 'big' },
        h('span', { 'data-testid': 'realtime-visitors', 'data-value': last.metrics[0], text: formatValue('visitors', last.metrics[0]) }),
        h('small', { class: 'pm', text: ` ${formatPlusMinus('visitors', last.ci95[0])}` }),
        h('span', { class: 'muted', text: ` visitors in the hour from ${last.dimensions[0].slice(11, 16)} UTC` })),
      h('table', { class: 'compact' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Hour' }), h('th', { scope: 'col', class: 'num', text: 'Visitors' }), h('th', { scope: 'col', class: 'num', text: 'Pageviews' }))),
        h('tbody', {}, rows.map((r) => h('tr', {},
          h('td', { text: r.dimensions[0].slice(11, 16) }),
          h('td', { class: 'num' }, formatValue('visitors', r.metrics[0]), h('small', { class: 'pm', text: ` ${formatPlusMinus('visitors', r.ci95[0])}` })),
          h('td', { class: 'num' }, formatValue('pageviews', r.metrics[1]), h('small', { class: 'pm', text: ` ${formatPlusMinus('pageviews', r.ci95[1])}` })))))));
  }
}
