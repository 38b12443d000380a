// A small element builder. Attributes go through setAttribute, never a
// style attribute (the CSP forbids inline styles); visual values that vary,
// such as bar widths, are set as CSS custom properties from script.

export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v == null || v === false) continue;
    if (k === 'class') el.className = v;
    else if (k === 'text') el.textContent = v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k.startsWith('on')) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c == null || c === false) continue;
    el.append(c instanceof Node ? c : String(c));
  }
}

// replace empties el and fills it with children.
export function replace(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

// copyButton returns a Copy button for source's text and the status line
// that confirms it. Where the clipboard is refused (no permission, a plain
// http origin) the text is selected instead, for the user to copy.
export function copyButton(source, attrs = {}) {
  const status = h('span', { class: 'muted', role: 'status' });
  const button = h('button', { type: 'button', class: 'secondary', text: 'Copy', ...attrs, onclick: async () => {
    try {
      await navigator.clipboard.writeText(source.textContent);
      status.textContent = ' Copied.';
    } catch {
      getSelection().selectAllChildren(source);
      status.textContent = ' Selected: press Ctrl+C (⌘C) to copy.';
    }
  } });
  return [button, status];
}

// kv renders [term, value] pairs as a definition list, leaving out the
// pairs without a value (optional fields the API did not send).
export function kv(pairs, attrs = {}) {
  const shown = pairs.filter(([, v]) => v != null && v !== '' && !(Array.isArray(v) && !v.length));
  return h('dl', { class: 'kv', ...attrs }, shown.map(([k, v]) => [h('dt', { text: k }), h('dd', {}, v)]));
}

// scroller wraps a wide table so that it scrolls by itself, not the page,
// at phone width. It is focusable so keyboard users can scroll it.
export function scroller(label, table) {
  return h('div', { class: 'scroll', tabindex: 0, role: 'region', 'aria-label': label }, table);
}
