/* global document, window, fetch, AbortController, setTimeout, clearTimeout, URLSearchParams */
// The discovery dashboard: plain JS, no build step. It reads only the public API
// (/v1/ui/config, /v1/services, /v1/registration/:service) and polls it with If-None-Match, so
// an unchanged list costs the server a 304 and the page nothing.

/** Between polls: quick enough to watch a deploy roll, cheap because unchanged data is a 304. */
const POLL_MS = 2000;
/** Every wait is bounded: a request that hangs is abandoned and retried at the next poll. */
const REQUEST_TIMEOUT_MS = 10000;
/** Polls back off to this after failures, so a registry that is down is not hammered. */
const MAX_BACKOFF_MS = 30000;
/** Services shown at first; "Show more" adds this many (the API allows up to 10,000 a page). */
const SERVICES_PAGE = 500;
const REVISION_COLOURS = 8;

const $ = (id) => document.getElementById(id);
const numberFormat = new Intl.NumberFormat('en');

const state = {
  config: undefined,
  /** Incremented on every navigation, so a poll of the previous view stops. */
  generation: 0,
  timer: undefined,
  failures: 0,
  /** Server time minus browser time, from the Date header, so ages do not depend on the browser's clock. */
  skewMs: 0,
  filter: '',
  servicesLimit: SERVICES_PAGE,
};

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** GET `path` with If-None-Match when `etag` is given. Resolves to { status, etag, body }. */
async function getJson(path, etag) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  try {
    const headers = etag ? { 'if-none-match': etag } : {};
    const response = await fetch(path, { headers, signal: controller.signal, cache: 'no-store' });
    const date = Date.parse(response.headers.get('date') ?? '');
    // The Date header has whole seconds; half a second is the expected truncation.
    if (!Number.isNaN(date)) state.skewMs = date + 500 - Date.now();
    if (response.status === 304) return { status: 304, etag };
    if (!response.ok) {
      let message = `HTTP ${response.status}`;
      try {
        message = (await response.json()).error ?? message;
      } catch {
        // The status alone says enough.
      }
      throw new Error(message);
    }
    return { status: response.status, etag: response.headers.get('etag') ?? undefined, body: await response.json() };
  } finally {
    clearTimeout(timer);
  }
}

function setStatus(text, error = false) {
  const status = $('status');
  if (status.textContent !== text) status.textContent = text;
  status.classList.toggle('error', error);
}

/** Runs `poll` now and then every POLL_MS (longer after failures) until the view changes. */
function startPolling(poll) {
  clearTimeout(state.timer);
  const generation = ++state.generation;
  state.failures = 0;
  const tick = async () => {
    if (generation !== state.generation) return;
    try {
      await poll(() => generation === state.generation);
      state.failures = 0;
      // The text changes only with the state, so assistive technology is not told every poll.
      setStatus('Live');
      $('status').title = `updated ${new Date().toLocaleTimeString('en-GB')}`;
    } catch (error) {
      state.failures++;
      setStatus(`Cannot reach discovery (${error.message}); retrying`, true);
    }
    if (generation !== state.generation || document.hidden) return;
    const delay = Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** Math.min(state.failures, 4));
    state.timer = setTimeout(tick, delay);
  };
  state.resume = tick;
  tick();
}

// ---- services list ----

const servicesView = { etag: undefined, url: undefined };

function servicesUrl() {
  const query = new URLSearchParams({ limit: String(state.servicesLimit) });
  if (state.filter) query.set('filter', state.filter);
  return `../v1/services?${query}`;
}

async function pollServices(current) {
  const url = servicesUrl();
  const result = await getJson(url, servicesView.url === url ? servicesView.etag : undefined);
  if (!current() || result.status === 304) return;
  servicesView.url = url;
  servicesView.etag = result.etag;
  renderServices(result.body);
}

function renderServices(body) {
  let html = '';
  for (const s of body.services) {
    const deploying =
      s.revisions > 1 ? '<span class="badge" title="more than one revision is live">deploying</span>' : '';
    html +=
      `<tr><td><a href="#/service/${encodeURIComponent(s.service)}">${escapeHtml(s.service)}</a></td>` +
      `<td class="num">${numberFormat.format(s.hosts)}</td>` +
      `<td>${s.revisions}${deploying}</td>` +
      `<td>${escapeHtml(s.service_repo_names.join(', '))}</td></tr>`;
  }
  $('services-body').innerHTML = html;
  const shown = body.services.length;
  const noun = body.total === 1 ? 'service' : 'services';
  $('services-count').textContent =
    shown < body.total
      ? `Showing ${numberFormat.format(shown)} of ${numberFormat.format(body.total)} ${noun}`
      : `${numberFormat.format(body.total)} ${noun}`;
  $('services-more').hidden = body.next_cursor === null;
  const empty = $('services-empty');
  empty.hidden = shown > 0;
  empty.textContent = state.filter
    ? `No service matches “${state.filter}”.`
    : 'No services yet. Services appear here when their hosts heartbeat.';
}

function showServices() {
  $('service-view').hidden = true;
  $('services-view').hidden = false;
  document.title = 'discovery';
  startPolling(pollServices);
}

let filterTimer;
$('filter').addEventListener('input', (event) => {
  clearTimeout(filterTimer);
  // Debounced so typing a name costs one request, not one per key.
  filterTimer = setTimeout(() => {
    state.filter = event.target.value.trim();
    state.servicesLimit = SERVICES_PAGE;
    startPolling(pollServices);
  }, 150);
});
$('services-more').addEventListener('click', () => {
  state.servicesLimit = Math.min(10000, state.servicesLimit + SERVICES_PAGE);
  startPolling(pollServices);
});

// ---- one service ----

const serviceView = { name: undefined, etag: undefined, fetchedAt: 0 };

/**
 * The ETag ignores last_check_in, so a 304 says "same hosts" but not "same heartbeat ages":
 * the list is fetched in full this often to keep the age bars true (a tenth of HOST_TTL,
 * between 1 and 10 seconds).
 */
function fullRefreshMs() {
  return Math.min(10000, Math.max(1000, state.config.host_ttl_seconds * 100));
}

async function pollService(current) {
  const name = serviceView.name;
  const stale = Date.now() - serviceView.fetchedAt >= fullRefreshMs();
  const result = await getJson(`../v1/registration/${encodeURIComponent(name)}`, stale ? undefined : serviceView.etag);
  if (!current() || result.status === 304) return;
  serviceView.etag = result.etag;
  serviceView.fetchedAt = Date.now();
  renderService(name, result.body.hosts);
}

/** Epoch ms of `YYYY-MM-DD HH:MM:SS.ffffff` (UTC). */
function parseCheckIn(text) {
  return Date.parse(`${text.slice(0, 10)}T${text.slice(11, 23)}Z`);
}

function formatAge(seconds) {
  if (seconds < 60) return `${Math.max(0, seconds).toFixed(seconds < 10 ? 1 : 0)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

function renderService(name, hosts) {
  const ttl = state.config.host_ttl_seconds;
  const now = Date.now() + state.skewMs;

  // Revisions by number of hosts, largest first; a colour per revision, the same in bar and rows.
  const counts = new Map();
  for (const host of hosts) counts.set(host.revision, (counts.get(host.revision) ?? 0) + 1);
  const revisions = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  const colour = new Map(
    revisions.map(([revision], index) => [revision, `rev-${Math.min(index, REVISION_COLOURS - 1)}`]),
  );

  const canaries = hosts.filter((host) => host.tags.canary === true).length;
  const parts = [`${numberFormat.format(hosts.length)} ${hosts.length === 1 ? 'host' : 'hosts'}`];
  parts.push(
    `${revisions.length} ${revisions.length === 1 ? 'revision' : 'revisions'}${revisions.length > 1 ? ' (deploy in progress)' : ''}`,
  );
  if (canaries > 0) parts.push(`${canaries} canary`);
  parts.push(`HOST_TTL ${ttl} s`);
  $('service-summary').textContent = parts.join(' · ');

  const bar = $('revision-bar');
  const list = $('revision-list');
  bar.replaceChildren();
  list.replaceChildren();
  for (const [revision, count] of revisions) {
    const segment = document.createElement('span');
    segment.className = colour.get(revision);
    // Set through the CSSOM: the content security policy forbids inline style attributes.
    segment.style.width = `${(100 * count) / hosts.length}%`;
    bar.append(segment);
    const item = document.createElement('li');
    item.innerHTML = `<i class="sw ${colour.get(revision)}"></i><code>${escapeHtml(revision)}</code> · ${numberFormat.format(count)} ${count === 1 ? 'host' : 'hosts'} (${Math.round((100 * count) / hosts.length)}%)`;
    list.append(item);
  }

  // One string, one innerHTML assignment: a single parse and layout for all rows, however many.
  const low = ttl * 0.5;
  const high = ttl * 0.8;
  let html = '';
  for (const host of hosts) {
    const tags = host.tags;
    const address = host.ip_address.includes(':')
      ? `[${host.ip_address}]:${host.port}`
      : `${host.ip_address}:${host.port}`;
    const age = (now - parseCheckIn(host.last_check_in)) / 1000;
    const weight = tags.load_balancing_weight ?? '—';
    html +=
      `<div class="row" role="row">` +
      `<span role="cell" class="addr">${escapeHtml(address)}</span>` +
      `<span role="cell">${escapeHtml(tags.az ?? '')} / ${escapeHtml(tags.region ?? '')}</span>` +
      `<span role="cell"><i class="sw ${colour.get(host.revision)}"></i>${escapeHtml(host.revision)}</span>` +
      `<span role="cell" class="num">${escapeHtml(weight)}</span>` +
      `<span role="cell">${tags.canary === true ? '<span class="badge canary">canary</span>' : '—'}</span>` +
      `<span role="cell" class="hb" title="last heartbeat ${escapeHtml(host.last_check_in)} UTC; expires after ${ttl} s">` +
      `<meter min="0" max="${ttl}" low="${low}" high="${high}" optimum="0" value="${Math.min(ttl, Math.max(0, age))}" aria-label="heartbeat age"></meter>` +
      `<span class="age">${formatAge(age)}</span></span></div>`;
  }
  $('hosts-body').innerHTML = html;
  $('hosts-empty').hidden = hosts.length > 0;
}

function showService(name) {
  $('services-view').hidden = true;
  $('service-view').hidden = false;
  $('service-name').textContent = name;
  document.title = `${name} · discovery`;
  if (serviceView.name !== name) {
    Object.assign(serviceView, { name, etag: undefined, fetchedAt: 0 });
    $('hosts-body').replaceChildren();
    $('service-summary').textContent = '';
  }
  startPolling(pollService);
}

// ---- routing and start-up ----

function route() {
  const match = /^#\/service\/(.+)$/.exec(window.location.hash);
  if (match) {
    let name;
    try {
      name = decodeURIComponent(match[1]);
    } catch {
      name = match[1];
    }
    showService(name);
  } else {
    showServices();
  }
}

async function start() {
  try {
    state.config = (await getJson('../v1/ui/config')).body;
  } catch (error) {
    setStatus(`Cannot reach discovery (${error.message}); retrying`, true);
    setTimeout(start, POLL_MS);
    return;
  }
  $('env').textContent = state.config.env;
  $('ttl').textContent = `HOST_TTL ${state.config.host_ttl_seconds} s`;
  $('banner').hidden = !state.config.writes_protected;
  window.addEventListener('hashchange', route);
  // A hidden tab stops polling and catches up as soon as it is shown again.
  document.addEventListener('visibilitychange', () => {
    if (!document.hidden) {
      clearTimeout(state.timer);
      state.resume?.();
    }
  });
  route();
}

start();
