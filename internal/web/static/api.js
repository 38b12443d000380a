// Calls to Veil's JSON API through /ui/api, which authenticates with the
// session cookie and requires the session's CSRF token in a header.

const csrf = document.querySelector('meta[name="csrf-token"]')?.content ?? '';

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.error || `request failed (${status})`);
    this.status = status;
    this.field = body?.field;
    this.reason = body?.reason;
  }

  // budgetExhausted: the ledger refused an ad hoc query. The API names the
  // privacy.epsilon field (and, where it says so, the reason).
  get budgetExhausted() {
    return this.status === 403 && (this.reason === 'budget_exhausted' || this.field === 'privacy.epsilon');
  }
}

async function request(path, { method = 'GET', body, signal, accept = 'application/json' } = {}) {
  const headers = { 'X-CSRF-Token': csrf, Accept: accept };
  if (body !== undefined) headers['Content-Type'] = 'application/json';
  const res = await fetch(`/ui/api/${path}`, {
    method, headers, signal, credentials: 'same-origin',
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  if (res.status === 401) {
    // The session ended (expired, signed out elsewhere, token revoked).
    location.assign(`/login?next=${encodeURIComponent(location.pathname + location.search)}`);
    throw new ApiError(401, { error: 'signed out' });
  }
  return res;
}

// A non-JSON answer (a proxy's error page) is reported by its status.
const json = (res) => res.json().catch(() => null);

export async function api(path, opts) {
  const res = await request(path, opts);
  if (res.status === 204) return null;
  const data = await json(res);
  if (!res.ok) throw new ApiError(res.status, data);
  return data;
}

// apiText fetches a plain-text answer, such as the signed audit checkpoint.
export async function apiText(path, opts) {
  const res = await request(path, { ...opts, accept: 'text/plain' });
  if (!res.ok) throw new ApiError(res.status, await json(res));
  return res.text();
}

// query runs a Stats API v2 query. The dashboard's purpose is analytics:
// the query policy requires ad hoc queries to declare one.
export function query(body, signal) {
  const privacy = { purpose: 'analytics', ...(body.privacy || {}) };
  return api('v2/query', { method: 'POST', body: { ...body, privacy }, signal });
}

// preview asks what running body would cost, without running or charging it.
export function preview(body, signal) {
  return query({ ...body, privacy: { ...(body.privacy || {}), preview: true } }, signal);
}
