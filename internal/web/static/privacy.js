// The price of privacy, made visible: the badge saying whether numbers are
// free released values or charged ad hoc answers, the confirmation that
// shows an ad hoc query's cost before it runs, the budget panel, and the
// table of contribution bounds that set the noise.

import { h, replace } from './dom.js';
import { formatEpsilon, plural } from './format.js';

// badge describes how the numbers on screen were made.
export function badge(meta) {
  if (!meta) return h('span', { class: 'badge', 'data-testid': 'privacy-badge', text: 'Loading…' });
  if (meta.source === 'released') {
    return h('span', {
      class: 'badge free', 'data-testid': 'privacy-badge', 'data-source': 'released',
      title: 'These numbers were released once by the pipeline with noise; viewing them any number of times spends no privacy budget.',
      text: 'Free — released numbers',
    });
  }
  const text = meta.cached
    ? 'Ad hoc — free (cached answer)'
    : `Ad hoc — ε ${formatEpsilon(meta.epsilon_spent)} spent per day in view`;
  return h('span', {
    class: 'badge adhoc', 'data-testid': 'privacy-badge', 'data-source': 'ad_hoc', 'data-cached': String(!!meta.cached),
    title: meta.cost || '', text,
  });
}

function leastLeft(budget) {
  let least = null;
  for (const b of budget || []) if (!least || b.epsilon_left < least.epsilon_left) least = b;
  return least;
}

const dialog = h('dialog', { class: 'confirm', 'data-testid': 'cost-dialog', 'aria-labelledby': 'cost-title' });

// confirmCost shows what the ad hoc query described by what would cost,
// from its preview, and resolves true when the user chooses to run it.
export function confirmCost(what, meta) {
  if (!dialog.isConnected) document.body.append(dialog);
  const least = leastLeft(meta.budget);
  const periods = meta.budget?.length || 0;
  const eps = formatEpsilon(meta.epsilon_cost);
  const exceeds = !!meta.would_exceed;
  replace(dialog,
    h('form', { method: 'dialog' },
      h('h2', { id: 'cost-title', text: exceeds ? 'Not enough privacy budget' : 'This view costs privacy budget' }),
      h('p', {}, `${what} cannot be answered from released numbers. It needs an `, h('strong', { text: 'ad hoc query' }),
        ': fresh noise on the exact data, paid from the privacy budget.'),
      h('dl', { class: 'kv' },
        h('dt', { text: 'Cost' }),
        h('dd', { 'data-testid': 'cost-epsilon', 'data-epsilon': meta.epsilon_cost },
          `ε ${eps}`, periods ? ` on each of ${plural(periods, meta.budget[0].day.length === 7 ? 'month' : 'day')} in view` : ''),
        least && h('dt', { text: 'Budget left now' }),
        least && h('dd', { 'data-testid': 'cost-left' }, `ε ${formatEpsilon(least.epsilon_left)}`, periods > 1 ? ` on ${least.day}, the day with least left` : ''),
      ),
      meta.cost && h('p', { class: 'small muted', text: meta.cost }),
      exceeds
        ? h('p', { class: 'warn', role: 'alert', text: 'Running it would exceed the budget, so Veil would refuse it. Released numbers stay available for free.' })
        : h('p', { class: 'small', text: 'The answer is kept: viewing exactly this again is free.' }),
      h('div', { class: 'actions' },
        h('button', { value: 'cancel', class: 'secondary', 'data-testid': 'cost-cancel', text: 'Cancel' }),
        !exceeds && h('button', { value: 'run', class: 'primary', 'data-testid': 'cost-confirm', autofocus: true, text: `Run it (ε ${eps})` }),
      ),
    ),
  );
  dialog.returnValue = '';
  dialog.showModal();
  return new Promise((resolve) => {
    dialog.addEventListener('close', () => resolve(dialog.returnValue === 'run'), { once: true });
  });
}

// renderBudget fills the budget panel from GET /api/v1/sites/{d}/budget.
export function renderBudget(el, report) {
  const days = report?.days || [];
  if (!days.length) {
    replace(el, h('p', { class: 'muted', text: 'No budget information for this range.' }));
    return;
  }
  const least = days.reduce((a, b) => (b.adhoc_epsilon_left < a.adhoc_epsilon_left ? b : a));
  const most = days.reduce((a, b) => (b.adhoc_epsilon_spent > a.adhoc_epsilon_spent ? b : a));
  const unit = report.period === 'month' ? 'month' : 'day';
  const bars = h('div', { class: 'budget-bars', role: 'img', 'aria-label': `Ad hoc budget left per ${unit}` });
  for (const d of days) {
    const frac = d.adhoc_epsilon_total > 0 ? d.adhoc_epsilon_left / d.adhoc_epsilon_total : 0;
    const bar = h('span', { class: frac <= 0 ? 'empty' : '', title: `${d.day}: ε ${formatEpsilon(d.adhoc_epsilon_left)} of ${formatEpsilon(d.adhoc_epsilon_total)} left` });
    bar.style.setProperty('--h', `${Math.max(frac * 100, 4)}%`);
    bars.append(bar);
  }
  replace(el,
    h('p', { class: 'small', text: 'Standard views are released numbers: free, any number of times. Filters and other ad hoc questions are paid from a daily budget.' }),
    h('dl', { class: 'kv' },
      h('dt', { text: `Ad hoc budget left (least of ${plural(days.length, unit)})` }),
      h('dd', { 'data-testid': 'budget-left', 'data-epsilon': least.adhoc_epsilon_left },
        `ε ${formatEpsilon(least.adhoc_epsilon_left)} of ${formatEpsilon(least.adhoc_epsilon_total)}`),
      h('dt', { text: `Most spent on one ${unit}` }),
      h('dd', { 'data-testid': 'budget-spent', 'data-epsilon': most.adhoc_epsilon_spent },
        most.adhoc_epsilon_spent > 0 ? `ε ${formatEpsilon(most.adhoc_epsilon_spent)} (${most.day})` : 'nothing yet'),
    ),
    bars,
    least.adhoc_epsilon_left <= 0 && h('p', { class: 'warn', text: `The ad hoc budget of ${least.day} is spent: filtered views that include it are refused. Released numbers stay available.` }),
    days.length <= 62 && h('details', {},
      h('summary', { text: `Per ${unit}` }),
      h('table', { class: 'compact' },
        h('thead', {}, h('tr', {}, h('th', { text: unit }), h('th', { text: 'released ε' }), h('th', { text: 'ad hoc spent' }), h('th', { text: 'ad hoc left' }))),
        h('tbody', {}, days.map((d) => h('tr', {},
          h('td', { text: d.day }), h('td', { text: formatEpsilon(d.released_epsilon) }),
          h('td', { text: formatEpsilon(d.adhoc_epsilon_spent) }), h('td', { text: formatEpsilon(d.adhoc_epsilon_left) })))),
      ),
    ),
  );
}

export const CAP_NAMES = {
  pageviews: 'Pageviews counted per visitor-day', events: 'Custom events per visitor-day', visits: 'Visits per visitor-day',
  hours: 'Distinct hours per visitor-day', pages: 'Distinct pages per visitor-day', pageviews_per_page: 'Pageviews per page',
  visit_values: 'Values per visit dimension (source, referrer, UTM, entry page)', goals: 'Distinct goals per visitor-day',
  events_per_goal: 'Events per goal', prop_values: 'Distinct prop values per visitor-day',
};

// capsTable lists a site's contribution bounds: what one privacy unit can
// add to the numbers, which sets the noise each number needs.
export function capsTable(caps) {
  return h('table', { class: 'compact' }, h('tbody', {}, Object.entries(caps || {}).map(([k, v]) =>
    h('tr', {}, h('th', { scope: 'row', text: CAP_NAMES[k] || k }), h('td', { class: 'num', text: v })))));
}

// explain is the plain-language help shown beside the numbers.
export function explain() {
  return h('details', { class: 'help-panel', 'data-testid': 'privacy-help' },
    h('summary', { text: 'What do ± and “free” mean?' }),
    h('p', {}, 'Veil adds carefully calibrated random noise to every number, so that no one can tell from the dashboard whether any particular person visited. ',
      'The ', h('strong', { text: '±' }), ' after a number is the range the noise stays within 95% of the time: “1,204 ± 20” means the true count is very likely between 1,184 and 1,224.'),
    h('p', {}, 'Small numbers are the most uncertain; a change smaller than the noise is shown in grey. A count can even come out slightly negative when the truth is near zero.'),
    h('p', {}, h('strong', { text: 'Released numbers are free. ' }),
      'Each day, when it closes, Veil publishes its standard figures once, with noise. Every range you look at is built from those, so looking costs nothing and can never run out.'),
    h('p', {}, h('strong', { text: 'Ad hoc questions cost budget. ' }),
      'A filter (for example visitors from one country) needs fresh noise on the exact data, which spends part of each day’s privacy budget (measured as ε, epsilon: smaller means more private). ',
      'Veil shows the cost before it runs and remembers the answer, so the same view again is free. When a day’s budget is spent, filters over it are refused and the released numbers remain.'),
  );
}
