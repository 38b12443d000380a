// A site's dashboard. Without a filter every number is a released value
// (free); with one, the figures that need it are ad hoc queries, each
// previewed and confirmed before it spends budget.

import { ApiError, api, preview, query } from './api.js';
import { draw, loadUPlot } from './chart.js';
import { h, replace } from './dom.js';
import { available, change, formatPlusMinus, formatValue, halfWidth, label } from './format.js';
import { PANELS, Panel } from './panels.js';
import { badge, confirmCost, explain, renderBudget } from './privacy.js';
import { RANGES, apiRange, bucketTime, buckets, dayCount, explicit, iso, previous, resolve, timeDim, today, validCustom } from './ranges.js';
import { Realtime } from './realtime.js';

const HEADLINE = ['visitors', 'visits', 'pageviews', 'views_per_visit', 'bounce_rate'];
const STAT_NAMES = { visitors: 'Visitors', visits: 'Visits', pageviews: 'Pageviews', views_per_visit: 'Views per visit', bounce_rate: 'Bounce rate' };
// A filtered view asks one ad hoc question, per time bucket, that gives
// both the chart and the totals (their sum): one charge instead of two.
const FILTERED = ['visitors', 'visits', 'pageviews'];
const CHART_METRICS = ['visitors', 'pageviews'];
// A unit-day has one value of these, so the API can answer any breakdown
// filtered by one of them, and a breakdown by one of them under any filter.
const UNIT_DIMS = ['visit:country', 'visit:device', 'visit:browser', 'visit:os'];

function stateFrom(params) {
  const range = RANGES.some((r) => r.id === params.get('range')) ? params.get('range') : '7d';
  const st = { range, from: params.get('from') || '', to: params.get('to') || '', filter: null,
    metric: CHART_METRICS.includes(params.get('metric')) ? params.get('metric') : 'visitors',
    prop: params.get('prop') || '' };
  if (range === 'custom' && !validCustom(st.from, st.to)) st.range = '7d';
  if (params.get('fdim') && params.get('fval') !== null) {
    st.filter = { dim: params.get('fdim'), value: params.get('fval') };
  }
  return st;
}

function filterName(f) {
  const dim = f.dim.replace(/^(visit|event):/, '').replace('_', ' ');
  return `${dim} is ${label(f.dim, f.value)}`;
}

// sameHours sums yesterday's hourly rows over the hours of the day that
// today has released, as a headline row (visitors and pageviews only; the
// other metrics are not released by the hour).
function sameHours(yesterday, today) {
  const hours = new Set(today.map((r) => r.dimensions[0].slice(11, 13)));
  const sum = CHART_METRICS.map(() => ({ v: 0, hw2: 0 }));
  for (const r of yesterday) {
    if (!hours.has(r.dimensions[0].slice(11, 13))) continue;
    r.metrics.forEach((v, i) => { sum[i].v += v; sum[i].hw2 += halfWidth(r.ci95[i]) ** 2; });
  }
  const at = (m) => sum[CHART_METRICS.indexOf(m)];
  return {
    metrics: HEADLINE.map((m) => (at(m) ? at(m).v : 0)),
    ci95: HEADLINE.map((m) => (at(m) ? [at(m).v - Math.sqrt(at(m).hw2), at(m).v + Math.sqrt(at(m).hw2)] : [0, 0])),
  };
}

export class Dashboard {
  constructor(root, me, site, params) {
    this.root = root;
    this.me = me;
    this.site = site;
    this.state = stateFrom(params);
    this.prop = this.state.prop;
    this.gen = 0;
    this.approved = null; // the query the user just confirmed
    this.panels = PANELS.map((def) => new Panel(def, this));
    this.realtime = new Realtime(site.domain);
    loadUPlot();
    this.build();
  }

  destroy() {
    this.realtime.stop();
    this.abort?.abort();
  }

  // --- layout -------------------------------------------------------------

  build() {
    const sitePicker = h('select', { id: 'site-picker', 'data-testid': 'site-picker', onchange: (e) => {
      this.navigate(`/app/sites/${encodeURIComponent(e.target.value)}?range=${this.state.range}`);
    } }, this.me.sites.map((s) => h('option', { value: s.domain, selected: s.domain === this.site.domain, text: s.domain })));
    this.rangeBar = h('div', { class: 'ranges', role: 'group', 'aria-label': 'Date range', 'data-testid': 'range-picker' });
    this.custom = h('form', { class: 'custom', hidden: true, onsubmit: (e) => this.applyCustom(e) },
      h('label', {}, 'From ', h('input', { type: 'date', name: 'from', required: true, 'data-testid': 'custom-from' })),
      h('label', {}, 'To ', h('input', { type: 'date', name: 'to', required: true, 'data-testid': 'custom-to' })),
      h('button', { type: 'submit', class: 'secondary', text: 'Apply' }));
    this.badgeSlot = h('div', { class: 'badge-slot' });
    this.filterBar = h('div', { class: 'filters', 'data-testid': 'filters' });
    this.notice = h('div', { class: 'notice', role: 'status', 'aria-live': 'polite', 'data-testid': 'notice' });
    this.stats = h('div', { class: 'stats', 'data-testid': 'headline' });
    this.notes = h('ul', { class: 'notes', 'data-testid': 'notes' });
    this.chartEl = h('div', { class: 'chart', 'data-testid': 'chart' });
    this.chartTable = h('details', { class: 'chart-data' });
    this.chartToggle = h('div', { class: 'tabs', role: 'group', 'aria-label': 'Chart metric' });
    this.budgetBody = h('div', { class: 'panel-body' });
    const budget = h('section', { class: 'panel', 'data-testid': 'panel-budget', 'aria-labelledby': 'h-budget' },
      h('header', {}, h('h2', { id: 'h-budget', text: 'Privacy budget' })), this.budgetBody);

    replace(this.root,
      h('div', { class: 'dash' },
        h('div', { class: 'controls' },
          h('div', { class: 'site' }, h('label', { for: 'site-picker', class: 'sr-only', text: 'Site' }), sitePicker),
          this.rangeBar, this.custom, this.badgeSlot),
        this.filterBar, this.notice,
        h('section', { class: 'headline', 'aria-label': 'Totals' }, this.stats),
        this.notes,
        h('section', { class: 'panel chart-panel', 'aria-labelledby': 'h-chart' },
          h('header', {}, h('h2', { id: 'h-chart', text: 'Over time' }), this.chartToggle),
          this.chartEl, this.chartTable),
        h('div', { class: 'grid' }, this.panels.map((p) => p.el), this.realtime.el, budget),
        explain()));
  }

  renderControls() {
    replace(this.rangeBar, RANGES.map((r) => h('button', {
      type: 'button', 'aria-pressed': String(r.id === this.state.range), 'data-range': r.id, text: r.label,
      onclick: () => this.setRange(r.id),
    })));
    this.custom.hidden = this.state.range !== 'custom';
    if (!this.custom.hidden) {
      const [from, to] = explicit(resolve(this.state));
      this.custom.elements.from.value = from;
      this.custom.elements.to.value = to;
    }
    const f = this.state.filter;
    replace(this.filterBar, f && h('span', { class: 'chip', 'data-testid': 'filter-chip', 'data-dim': f.dim, 'data-value': f.value },
      `Filter: ${filterName(f)}`,
      h('button', { type: 'button', class: 'chip-x', 'aria-label': `Remove filter ${filterName(f)}`, text: '×', onclick: () => this.clearFilter() })));
    replace(this.chartToggle, CHART_METRICS.map((m) => h('button', {
      type: 'button', 'aria-pressed': String(m === this.state.metric), text: STAT_NAMES[m],
      onclick: () => { this.state.metric = m; this.syncURL(false); this.renderControls(); this.drawChart(); },
    })));
  }

  say(text, kind = 'info') {
    replace(this.notice, text && h('p', { class: kind, text }));
  }

  // --- navigation and state ------------------------------------------------

  navigate(path) {
    history.pushState(null, '', path);
    dispatchEvent(new PopStateEvent('popstate'));
  }

  url() {
    const p = new URLSearchParams({ range: this.state.range });
    if (this.state.range === 'custom') { p.set('from', this.state.from); p.set('to', this.state.to); }
    if (this.state.filter) { p.set('fdim', this.state.filter.dim); p.set('fval', this.state.filter.value); }
    if (this.state.metric !== 'visitors') p.set('metric', this.state.metric);
    if (this.prop) p.set('prop', this.prop);
    return `/app/sites/${encodeURIComponent(this.site.domain)}?${p}`;
  }

  syncURL(push) {
    const u = this.url();
    if (u !== location.pathname + location.search) history[push ? 'pushState' : 'replaceState'](null, '', u);
  }

  setRange(id) {
    if (id === 'custom') {
      const [from, to] = explicit(resolve(this.state));
      this.state = { ...this.state, range: 'custom', from, to };
      this.renderControls();
      this.custom.elements.from.focus();
      return;
    }
    if (id === this.state.range) return;
    this.state.range = id;
    this.syncURL(true);
    this.load();
  }

  applyCustom(e) {
    e.preventDefault();
    const from = this.custom.elements.from.value, to = this.custom.elements.to.value;
    if (!validCustom(from, to)) {
      this.say('Choose a start date on or before the end date, ending no later than today.', 'warn');
      return;
    }
    Object.assign(this.state, { range: 'custom', from, to });
    this.syncURL(true);
    this.load();
  }

  // clearFilter goes back to the released numbers; message, if given, is
  // shown once they load.
  clearFilter(message) {
    this.state.filter = null;
    this.carry = message;
    this.syncURL(true);
    this.load();
  }

  // filter narrows the dashboard to one value. The cost is shown before
  // anything changes; cancelling leaves the current view as it is.
  async filter(dim, value, name) {
    const f = { dim, value };
    const body = this.filteredBody(f);
    try {
      if (!(await this.approve(`Filtering by ${name}`, body))) return;
    } catch (e) {
      this.say(e instanceof ApiError ? `This filter is not available: ${e.message}` : e.message, 'warn');
      return;
    }
    this.approved = JSON.stringify(body);
    this.state.filter = f;
    this.syncURL(true);
    this.load();
  }

  // approve previews body and resolves true when it is free (released or
  // cached) or the user confirms its cost.
  async approve(what, body, signal) {
    const res = await preview(body, signal);
    const m = res.meta;
    if (m.source === 'released' || m.cached || !(m.epsilon_cost > 0)) return true;
    return confirmCost(what, m);
  }

  // --- queries --------------------------------------------------------------

  base(extra) {
    return { site_id: this.site.domain, date_range: apiRange(this.state), ...extra };
  }

  filteredBody(f, extra = { metrics: FILTERED, dimensions: [timeDim(dayCount(resolve(this.state)), true)] }) {
    return this.base({ ...extra, filters: [['is', f.dim, [f.value]]] });
  }

  // load (re)draws everything for the current state. Only the latest call
  // renders; earlier ones are aborted.
  async load() {
    const gen = ++this.gen;
    this.abort?.abort();
    this.abort = new AbortController();
    const signal = this.abort.signal;
    document.body.dataset.ready = '0';
    this.renderControls();
    this.say(this.carry, 'warn');
    this.carry = null;
    replace(this.badgeSlot, badge(null));
    const days = resolve(this.state);
    const tasks = this.panels.map((p) => this.loadPanel(p, gen, signal));
    const top = this.state.filter ? this.loadFiltered(gen, signal, days) : this.loadReleased(gen, signal, days);
    tasks.push(top, this.realtime.start());
    // A filtered view's budget is read after its ad hoc query has spent.
    const spent = this.state.filter ? top : Promise.resolve();
    tasks.push(spent.then(() => this.loadBudget(gen, signal, days)));
    await Promise.allSettled(tasks);
    if (gen !== this.gen) return;
    document.body.dataset.ready = '1';
    performance.mark('veil-ready');
  }

  current(gen) {
    return gen === this.gen;
  }

  failed(e) {
    return !(e instanceof DOMException && e.name === 'AbortError');
  }

  async loadReleased(gen, signal, days) {
    const n = dayCount(days);
    const td = timeDim(n, false);
    const prev = previous(this.state, days);
    // Today so far is compared with the same released hours of yesterday.
    const hourly = n === 1 && days[1] >= today();
    const [cur, cmp, series] = await Promise.allSettled([
      query(this.base({ metrics: HEADLINE }), signal),
      query(hourly
        ? { site_id: this.site.domain, metrics: CHART_METRICS, date_range: explicit(prev), dimensions: ['time:hour'] }
        : { site_id: this.site.domain, metrics: HEADLINE, date_range: explicit(prev) }, signal),
      query(this.base({ metrics: CHART_METRICS, dimensions: [td] }), signal),
    ]);
    if (!this.current(gen)) return;
    if (cur.status === 'rejected') {
      if (this.failed(cur.reason)) this.say(cur.reason.message, 'warn');
      return;
    }
    replace(this.badgeSlot, badge(cur.value.meta));
    const row = cur.value.results[0] || { metrics: HEADLINE.map(() => 0), ci95: HEADLINE.map(() => [0, 0]) };
    let before = cmp.status === 'fulfilled' ? cmp.value.results[0] : null;
    if (hourly) {
      before = cmp.status === 'fulfilled' && series.status === 'fulfilled' ? sameHours(cmp.value.results, series.value.results) : null;
    }
    // Visits and bounces are released when a day closes; visitors and
    // pageviews also hour by hour. A range through today therefore has
    // visits and bounce rate up to yesterday only.
    const open = n > 1 && days[1] >= today();
    this.renderStats(HEADLINE.map((m, i) => ({
      metric: m, value: row.metrics[i], ci: row.ci95[i],
      // A count over fewer days than its comparison would show a false drop.
      prev: before && !(open && m === 'visits') ? { value: before.metrics[i], ci: before.ci95[i] } : null,
      note: open && (m === 'visits' || m === 'bounce_rate') ? 'until yesterday' : null,
    })), n);
    this.renderNotes(cur.value.meta.notes);
    if (series.status === 'fulfilled') {
      this.series = { rows: series.value.results, metrics: CHART_METRICS, dim: td, days };
      await this.drawChart();
    }
  }

  async loadFiltered(gen, signal, days) {
    const body = this.filteredBody(this.state.filter);
    const key = JSON.stringify(body);
    let res;
    try {
      const ok = this.approved === key || (await this.approve(`Filtering by ${filterName(this.state.filter)}`, body, signal));
      this.approved = null;
      if (!this.current(gen)) return;
      if (!ok) {
        this.clearFilter();
        return;
      }
      res = await query(body, signal);
    } catch (e) {
      if (!this.current(gen) || !this.failed(e)) return;
      // Out of budget (or a filter the API cannot answer): say so plainly
      // and go back to the released numbers, which are always available.
      this.clearFilter(e.budgetExhausted
        ? `The privacy budget for this view is spent. ${e.message}`
        : `This filter is not available: ${e.message}`);
      return;
    }
    if (!this.current(gen)) return;
    replace(this.badgeSlot, badge(res.meta));
    // Totals are sums over the buckets; their noises are independent, so
    // the interval half-widths add in quadrature.
    const tot = FILTERED.map((m, i) => {
      let v = 0, hw2 = 0;
      for (const r of res.results) { v += r.metrics[i]; hw2 += halfWidth(r.ci95[i]) ** 2; }
      return { value: Math.round(v * 100) / 100, hw: Math.sqrt(hw2) };
    });
    const [vis, visits, pv] = tot;
    const ci = (t) => [t.value - t.hw, t.value + t.hw];
    // views per visit = pageviews / visits, interval by the delta method.
    const vpv = visits.value > 0 ? pv.value / visits.value : 0;
    const vpvHW = visits.value > 0 ? Math.hypot(pv.hw / visits.value, (pv.value * visits.hw) / visits.value ** 2) : 0;
    this.renderStats([
      { metric: 'visitors', value: vis.value, ci: ci(vis) },
      { metric: 'visits', value: visits.value, ci: ci(visits) },
      { metric: 'pageviews', value: pv.value, ci: ci(pv) },
      { metric: 'views_per_visit', value: vpv, ci: [vpv - vpvHW, vpv + vpvHW] },
      { metric: 'bounce_rate', value: 0, ci: [0, 0], why: 'Not part of the filtered answer (it would cost more budget).' },
    ], dayCount(days));
    this.renderNotes([...(res.meta.notes || []), 'Totals of a filtered view are the sum of its daily answers. It is not compared with the previous period, which would spend budget on other days.']);
    this.series = { rows: res.results, metrics: FILTERED, dim: body.dimensions[0], days };
    await this.drawChart();
  }

  renderStats(stats, days) {
    const period = days === 1 ? 'the same hours the day before' : `the previous ${days} days`;
    replace(this.stats, stats.map((s) => {
      const ok = available(s.value, s.ci);
      const d = ok && s.prev && available(s.prev.value, s.prev.ci) ? change(s.metric, s.value, s.ci, s.prev.value, s.prev.ci) : null;
      return h('div', { class: 'stat', 'data-testid': `stat-${s.metric}` },
        h('div', { class: 'stat-label' }, STAT_NAMES[s.metric], s.note && h('span', { class: 'stat-note', title: 'Today’s figure is released when the day closes.', text: ` · ${s.note}` })),
        h('div', { class: 'stat-value', 'data-testid': `metric-${s.metric}`, 'data-value': ok ? s.value : null, text: ok ? formatValue(s.metric, s.value) : '—',
          title: ok ? null : s.why || 'Not released yet for this range (a day’s figures beyond visitors and pageviews are released when it closes).' }),
        ok && h('div', { class: 'stat-pm', 'data-testid': `pm-${s.metric}`, title: `95% interval: ${formatValue(s.metric, s.ci[0])} to ${formatValue(s.metric, s.ci[1])}. The noise that protects each visitor stays within this range 95% of the time.`,
          text: formatPlusMinus(s.metric, s.ci) }),
        d && h('div', { class: `stat-delta ${d.up ? 'up' : 'down'}${d.noise ? ' noise' : ''}`, 'data-testid': `delta-${s.metric}`,
          title: d.noise ? 'Smaller than the privacy noise: this change may not be real.' : `Compared with ${period}` },
        `${d.text} vs ${period}`));
    }));
  }

  renderNotes(notes) {
    replace(this.notes, (notes || []).map((n) => h('li', { text: n })));
  }

  async drawChart() {
    const s = this.series;
    if (!s) return;
    const i = s.metrics.indexOf(this.state.metric);
    const byTime = new Map(s.rows.map((r) => [bucketTime(r.dimensions[0]), r]));
    const times = buckets(s.days, s.dim);
    const pick = (f) => times.map((t) => { const r = byTime.get(t); return r ? f(r) : null; });
    const format = (v) => formatValue(this.state.metric, v);
    const values = pick((r) => r.metrics[i]);
    const lo = pick((r) => r.ci95[i][0]);
    const hi = pick((r) => r.ci95[i][1]);
    const name = STAT_NAMES[this.state.metric];
    this.chartEl.setAttribute('role', 'img');
    this.chartEl.setAttribute('aria-label', `${name} over time with 95% intervals; the data is in the table below.`);
    replace(this.chartTable,
      h('summary', { text: 'Chart data as a table' }),
      h('table', { class: 'compact' },
        h('thead', {}, h('tr', {}, h('th', { scope: 'col', text: 'Time (UTC)' }), h('th', { scope: 'col', class: 'num', text: name }), h('th', { scope: 'col', class: 'num', text: '±' }))),
        h('tbody', {}, s.rows.map((r) => h('tr', {}, h('td', { text: r.dimensions[0] }),
          h('td', { class: 'num', text: format(r.metrics[i]) }), h('td', { class: 'num', text: formatPlusMinus(this.state.metric, r.ci95[i]) }))))));
    // Today's bucket (a day or month that includes it) is still filling.
    const last = times.length - 1;
    const partial = s.dim !== 'time:hour' && s.days[1] >= today() ? last : -1;
    await draw(this.chartEl, { times, values, lo, hi, label: name, format, bucket: s.dim.slice(5), partial });
  }

  // loadPanel fills one breakdown. Filtered breakdowns are ad hoc: they
  // load by themselves only when free (cached), otherwise on request.
  async loadPanel(p, gen, signal) {
    const tab = p.tab;
    if (tab.prop && !this.prop) {
      p.message('Choose a custom property to break events down by.', this.propForm(p));
      return;
    }
    const body = this.base({ metrics: tab.metrics, dimensions: [p.dim()], pagination: { limit: p.limit } });
    const f = this.state.filter;
    p.loading();
    try {
      if (f && f.dim !== p.dim() && !UNIT_DIMS.includes(f.dim) && !UNIT_DIMS.includes(p.dim())) {
        p.message(`${tab.label} cannot be narrowed to visitors whose ${filterName(f)} yet. Under this filter, breakdowns by country, device, browser and operating system are available.`);
      } else if (!f || f.dim === p.dim()) {
        const res = await query(body, signal);
        if (!this.current(gen)) return;
        p.show(res, { note: f ? 'All visitors: a breakdown cannot be filtered by its own dimension.' : null, active: f?.value });
      } else {
        const fb = this.filteredBody(f, { metrics: tab.metrics, dimensions: [p.dim()], pagination: { limit: p.limit } });
        const pv = await preview(fb, signal);
        if (!this.current(gen)) return;
        if (pv.meta.cached) {
          p.show(await query(fb, signal), { note: 'Ad hoc answer, from the cache: free.' });
        } else {
          p.message(`${tab.label} for visitors whose ${filterName(f)} needs an ad hoc query.`,
            h('button', { type: 'button', class: 'secondary', 'data-testid': `load-${p.def.id}`, text: 'Load (shows the cost first)',
              onclick: () => this.loadAdHocPanel(p, fb) }));
        }
      }
      if (tab.prop) p.foot.prepend(this.propForm(p));
    } catch (e) {
      if (this.current(gen) && this.failed(e)) p.message(e.message);
    }
  }

  async loadAdHocPanel(p, body) {
    try {
      if (!(await this.approve(`The ${p.tab.label.toLowerCase()} breakdown for ${filterName(this.state.filter)}`, body))) return;
      p.loading();
      const res = await query(body);
      p.show(res, { note: `Ad hoc answer: ε ${res.meta.epsilon_spent} spent per day in view.` });
      this.loadBudget(this.gen, undefined, resolve(this.state));
    } catch (e) {
      p.message(e.budgetExhausted ? `The privacy budget is spent: ${e.message}` : e.message);
    }
  }

  propForm(p) {
    const input = h('input', { name: 'prop', value: this.prop, required: true, 'aria-label': 'Property name', placeholder: 'e.g. plan', size: 12, 'data-testid': 'prop-name' });
    return h('form', { class: 'inline', onsubmit: (e) => {
      e.preventDefault();
      this.prop = input.value.trim();
      this.syncURL(false);
      this.reloadPanel(p);
    } }, input, h('button', { type: 'submit', class: 'secondary', text: 'Show' }));
  }

  // reloadPanel loads one panel again (another tab, more rows).
  reloadPanel(p) {
    return this.loadPanel(p, this.gen, this.abort?.signal);
  }

  async loadBudget(gen, signal, [from, to]) {
    try {
      const rep = await api(`v1/sites/${encodeURIComponent(this.site.domain)}/budget?from=${iso(from)}&to=${iso(to)}`, { signal });
      if (this.current(gen)) renderBudget(this.budgetBody, rep);
    } catch (e) {
      if (this.current(gen) && this.failed(e)) replace(this.budgetBody, h('p', { class: 'muted', text: e.message }));
    }
  }
}

