// Veil tracker: cookieless pageviews and custom events. It stores nothing in
// the browser and sends nothing at all when the visitor signals Global
// Privacy Control or Do Not Track.
(function () {
  'use strict';
  var w = window, d = document, n = navigator, l = w.location;
  var s = d.currentScript;
  var queued = (w.veil && w.veil.q) || [];
  function noop() {}
  function optedOut() {
    return n.globalPrivacyControl === true ||
      n.doNotTrack === '1' || n.doNotTrack === 'yes' ||
      w.doNotTrack === '1' || n.msDoNotTrack === '1';
  }
  if (optedOut()) {
    // Swallow calls so pages keep working, and send nothing.
    w.veil = function (name, opts) { if (opts && opts.callback) opts.callback(); };
    for (var k = 0; k < queued.length; k++) w.veil.apply(w, queued[k]);
    return;
  }
  var domain = (s && s.getAttribute('data-domain')) || l.hostname;
  var api = (s && s.getAttribute('data-api')) || (s ? new URL(s.src).origin : '') + '/api/event';
  var hashMode = !!(s && s.hasAttribute('data-hash'));
  var onLocalhost = /^localhost$|^127(\.\d+){3}$|^\[::1\]$/.test(l.hostname) || l.protocol === 'file:';
  var allowLocal = !!(s && s.hasAttribute('data-localhost'));

  function send(name, opts) {
    opts = opts || {};
    var done = opts.callback || noop;
    if (onLocalhost && !allowLocal) { done(); return; }
    if (w._phantom || w.__nightmare || n.webdriver) {
      if (!(s && s.hasAttribute('data-webdriver'))) { done(); return; }
    }
    var body = { n: name, u: l.href, d: domain, r: d.referrer || null };
    if (opts.props) body.p = opts.props;
    if (opts.interactive === false) body.i = false;
    if (hashMode) body.h = 1;
    var json = JSON.stringify(body);
    var sent = false;
    if (n.sendBeacon) {
      try { sent = n.sendBeacon(api, new Blob([json], { type: 'text/plain' })); } catch (e) { sent = false; }
    }
    if (sent) { done(); return; }
    if (w.fetch) {
      w.fetch(api, { method: 'POST', keepalive: true, credentials: 'omit',
        headers: { 'Content-Type': 'text/plain' }, body: json })
        .then(function () { done(); }, function () { done(); });
      return;
    }
    done();
  }

  var lastPage;
  function pageview() {
    var page = hashMode ? l.pathname + l.hash : l.pathname;
    if (page === lastPage) return; // pushState to the same page is not a new view
    lastPage = page;
    send('pageview');
  }

  // Single-page apps: count navigations made through the History API.
  var hist = w.history;
  if (hist && hist.pushState) {
    var push = hist.pushState;
    hist.pushState = function () { push.apply(this, arguments); pageview(); };
    w.addEventListener('popstate', pageview);
  }
  if (hashMode) w.addEventListener('hashchange', pageview);

  w.veil = function (name, opts) {
    if (name === 'pageview') { lastPage = undefined; pageview(); return; }
    send(name, opts);
  };
  for (var i = 0; i < queued.length; i++) w.veil.apply(w, queued[i]);

  if (d.visibilityState === 'prerender') {
    d.addEventListener('visibilitychange', function once() {
      if (d.visibilityState === 'visible') { d.removeEventListener('visibilitychange', once); pageview(); }
    });
  } else {
    pageview();
  }
})();
