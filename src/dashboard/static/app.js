/* global document, window, fetch, history, performance, requestAnimationFrame, AbortController, setTimeout, clearTimeout, URLSearchParams */
// The discovery dashboard: plain JS, no build step. It reads the dashboard's own JSON under
// /v1/ui/ (compressed by the server) and polls it with If-None-Match, so an unchanged list costs
// the server a 304 and the page nothing.
//
// Big services stay smooth: the host list is kept as data, filtered and sorted in memory, and
// only the rows in the scrolled window are in the DOM (a fixed row height makes the window
// arithmetic), so a refresh of 5,000 hosts touches a few dozen rows. Every refresh is measured
// as `dashboard:refresh` (performance.measure), so its cost can be read from the browser.
//
// What a person chose (filters, search, sort) lives in the URL's hash, so a reload or a shared
// link shows the same view: `#/?q=pay`, `#/service/users?q=10.0&az=us-east-1a&sort=age&dir=desc`.

/** Between polls: quick enough to watch a deploy roll, cheap because unchanged data is a 304. */
const POLL_MS = 2000;
/** Every wait is bounded: a request that hangs is abandoned and retried at the next poll. */
const REQUEST_TIMEOUT_MS = 10000;
/** Polls back off to this after failures, so a registry that is down is not hammered. */
const MAX_BACKOFF_MS = 30000;
/** Services shown at first; "Show more" adds this many (the endpoint allows up to 10,000). */
const SERVICES_PAGE = 500;
const REVISION_COLOURS = 8;
/** Pixel height of one host row; style.css sets the same (`.vrow`). */
const ROW_HEIGHT = 34;
/** Rows drawn beyond each edge of the visible window, so a quick scroll shows no blank rows. */
const OVERSCAN_ROWS = 8;
/** Host search waits this long after the last key, so typing costs one filter, not one per key. */
const INPUT_DEBOUNCE_MS = 120;
/** Hosts new to the page prepared in one go before it yields: a few milliseconds of work. */
const PREPARE_CHUNK = 500;

const $ = (id) => document.getElementById(id);
const numberFormat = new Intl.NumberFormat('en');

const state = {
  config: undefined,
  /** Incremented on every navigation, so a poll of the previous view stops. */
  generation: 0,
  timer: undefined,
  failures: 0,
  servicesLimit: SERVICES_PAGE,
};

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/**
 * GET `path` with If-None-Match when `etag` is given. Resolves to { status, etag, body, text }.
 * The body is parsed by `parse` (JSON.parse by default) so a caller can time the parse as part
 * of its refresh.
 */
async function getJson(path, etag) {
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), REQUEST_TIMEOUT_MS);
  try {
    const headers = etag ? { 'if-none-match': etag } : {};
    const response = await fetch(path, { headers, signal: controller.signal, cache: 'no-store' });
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
    return { status: response.status, etag: response.headers.get('etag') ?? undefined, text: await response.text() };
  } finally {
    clearTimeout(timer);
  }
}

function setStatus(text, error = false) {
  const status = $('status');
  if (status.textContent !== text) status.textContent = text;
  status.classList.toggle('error', error);
}

const lastHtml = new WeakMap();

/** Sets `element`'s markup unless it is already exactly this (the DOM's own serialisation differs from ours). */
function setHtml(element, html) {
  if (lastHtml.get(element) === html) return false;
  element.innerHTML = html;
  lastHtml.set(element, html);
  return true;
}

function setText(element, text) {
  if (element.textContent !== text) element.textContent = text;
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
    clearTimeout(state.timer);
    const delay = Math.min(MAX_BACKOFF_MS, POLL_MS * 2 ** Math.min(state.failures, 4));
    state.timer = setTimeout(tick, delay);
  };
  state.resume = tick;
  tick();
}

/** Times `work` as one `dashboard:refresh` measure (what the browser tests read). */
function measured(name, work) {
  const start = performance.now();
  try {
    return work();
  } finally {
    performance.measure('dashboard:refresh', { start, end: performance.now(), detail: name });
  }
}

// ---- the URL: view and choices ----

/** The hash as { view, name, params }: `#/service/<name>?<params>` or `#/?<params>`. */
function readHash() {
  const hash = window.location.hash.replace(/^#/, '');
  const mark = hash.indexOf('?');
  const path = mark === -1 ? hash : hash.slice(0, mark);
  const params = new URLSearchParams(mark === -1 ? '' : hash.slice(mark + 1));
  const match = /^\/service\/(.+)$/.exec(path);
  if (!match) return { view: 'services', params };
  let name;
  try {
    name = decodeURIComponent(match[1]);
  } catch {
    name = match[1];
  }
  return { view: 'service', name, params };
}

/** Writes the current choices into the hash without a new history entry or a hashchange. */
function writeHash(path, entries) {
  const params = new URLSearchParams();
  for (const [key, value] of entries) if (value !== '' && value !== undefined) params.set(key, value);
  const query = params.toString();
  const hash = `#${path}${query ? `?${query}` : ''}`;
  if (window.location.hash !== hash) history.replaceState(null, '', hash);
}

// ---- services list and server panel ----

const servicesView = { etag: undefined, url: undefined, filter: '' };
const serverView = { body: undefined };

function servicesUrl() {
  const query = new URLSearchParams({ limit: String(state.servicesLimit) });
  if (servicesView.filter) query.set('filter', servicesView.filter);
  return `../v1/ui/services?${query}`;
}

async function pollServices(current) {
  const url = servicesUrl();
  const [result] = await Promise.all([
    getJson(url, servicesView.url === url ? servicesView.etag : undefined),
    pollServer(current),
  ]);
  if (!current() || result.status === 304) return;
  servicesView.url = url;
  servicesView.etag = result.etag;
  measured('services', () => renderServices(JSON.parse(result.text)));
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
  $('services-more').hidden = !body.more;
  const empty = $('services-empty');
  empty.hidden = shown > 0;
  empty.textContent = servicesView.filter
    ? `No service matches “${servicesView.filter}”.`
    : 'No services yet. Services appear here when their hosts heartbeat.';
}

async function pollServer(current) {
  const result = await getJson('../v1/ui/server');
  if (!current()) return;
  serverView.body = JSON.parse(result.text);
  renderServer(serverView.body);
}

function formatUptime(seconds) {
  const days = Math.floor(seconds / 86400);
  const hours = Math.floor((seconds % 86400) / 3600);
  const minutes = Math.floor((seconds % 3600) / 60);
  if (days > 0) return `${days} d ${hours} h`;
  if (hours > 0) return `${hours} h ${minutes} min`;
  if (minutes > 0) return `${minutes} min ${seconds % 60} s`;
  return `${seconds} s`;
}

function renderServer(body) {
  setText($('server-version'), `${body.version} (Node.js ${body.node_version})`);
  setText($('server-uptime'), formatUptime(body.uptime_seconds));
  $('server-uptime').title = `started ${body.started_at}`;
  setText($('server-heartbeats'), numberFormat.format(body.heartbeats_last_minute));
  setText(
    $('server-totals'),
    `${numberFormat.format(body.services)} ${body.services === 1 ? 'service' : 'services'} · ` +
      `${numberFormat.format(body.hosts)} ${body.hosts === 1 ? 'host' : 'hosts'}`,
  );
  const protection = body.expiry_protection;
  const held = protection.protected_services;
  const protectionText = !protection.enabled
    ? 'off'
    : held.length > 0
      ? `ACTIVE for ${held.join(', ')}`
      : `armed (more than ${Math.round(protection.threshold * 100)}% of a service's hosts, at least ${protection.min_hosts}, kept at most ${protection.max_seconds} s)`;
  setText($('server-protection'), protectionText);
  $('server-protection').classList.toggle('alert', held.length > 0);

  const clients = body.xds.clients;
  setText(
    $('server-xds'),
    body.xds.enabled ? `${clients.length} ${clients.length === 1 ? 'client' : 'clients'}` : 'off (XDS_ENABLED=false)',
  );
  let html = '';
  for (const client of clients) {
    const health = client.nack_count > 0 ? `${client.nack_count} NACK` : client.up_to_date ? 'up to date' : 'waiting';
    html +=
      `<tr><td>${escapeHtml(client.node_id || '(no node id)')}</td><td>${escapeHtml(client.cluster)}</td>` +
      `<td>${escapeHtml(client.kind.toUpperCase())}</td><td>${escapeHtml(client.peer)}</td>` +
      `<td class="num">${client.resources}</td><td>${escapeHtml(health)}</td></tr>`;
  }
  const clientsBody = $('xds-clients-body');
  setHtml(clientsBody, html);
  $('xds-clients').hidden = clients.length === 0;
}

function showServices(params) {
  $('service-view').hidden = true;
  $('services-view').hidden = false;
  document.title = 'discovery';
  servicesView.filter = (params.get('q') ?? '').trim();
  if ($('filter').value.trim() !== servicesView.filter) $('filter').value = servicesView.filter;
  startPolling(pollServices);
}

let filterTimer;
$('filter').addEventListener('input', (event) => {
  clearTimeout(filterTimer);
  // Debounced so typing a name costs one request, not one per key.
  filterTimer = setTimeout(() => {
    servicesView.filter = event.target.value.trim();
    state.servicesLimit = SERVICES_PAGE;
    writeHash('/', [['q', servicesView.filter]]);
    startPolling(pollServices);
  }, 150);
});
$('services-more').addEventListener('click', () => {
  state.servicesLimit = Math.min(10000, state.servicesLimit + SERVICES_PAGE);
  startPolling(pollServices);
});

// ---- one service ----

const byText = (a, b) => (a < b ? -1 : a > b ? 1 : 0);

/** Addresses by number: IPv4 as one exact number (address and port), IPv6 after it by its hex key. */
function compareAddress(a, b) {
  return a.addressNumber - b.addressNumber || byText(a.addressKey, b.addressKey);
}

/** Orders of the host table, ascending; ties go by address. */
const SORTS = {
  address: compareAddress,
  az: (a, b) => byText(a.zoneKey, b.zoneKey),
  instance: (a, b) => byText(a.instance, b.instance),
  revision: (a, b) => byText(a.revision, b.revision),
  weight: (a, b) => a.weight - b.weight,
  status: (a, b) => byText(a.status, b.status),
  // Youngest heartbeat first; descending shows the hosts closest to expiry first.
  age: (a, b) => b.checkInMs - a.checkInMs,
};
const DEFAULT_SORT = 'address';

const serviceView = {
  name: undefined,
  etag: undefined,
  /** Prepared hosts (see prepare), as last fetched, in the server's order (by address). */
  hosts: [],
  /** The same, by IP address, with the `v` each was prepared from. */
  prepared: new Map(),
  /** The hosts shown, filtered and sorted. */
  shown: [],
  colour: new Map(),
  /** Server time of the last answer, and the browser's performance.now() when it arrived. */
  serverNow: 0,
  receivedAt: 0,
  ttl: 600,
  protectedHosts: 0,
  staleAgeSeconds: null,
  query: '',
  az: '',
  /** Only hosts with this status ('' for every status). */
  status: '',
  sort: DEFAULT_SORT,
  dir: 'asc',
};

function nowOnServer() {
  return serviceView.serverNow + (performance.now() - serviceView.receivedAt);
}

/** Above every IPv4 number (2^32 addresses times 2^16 ports), so IPv6 addresses sort after them. */
const IPV6_NUMBER = 2 ** 49;

/** An IPv4 address and port as one number, exact in a double; IPV6_NUMBER for an IPv6 address. */
function addressNumber(ip, port) {
  if (ip.includes(':')) return IPV6_NUMBER;
  const [a, b, c, d] = ip.split('.').map(Number);
  return (((a * 256 + b) * 256 + c) * 256 + d) * 65536 + port;
}

/** A string that sorts IP addresses by number: IPv4 before IPv6, each as fixed-width hex, then the port. */
function addressKey(ip, port) {
  const portKey = String(port).padStart(5, '0');
  if (!ip.includes(':')) {
    return `4${ip
      .split('.')
      .map((part) => Number(part).toString(16).padStart(2, '0'))
      .join('')}${portKey}`;
  }
  return `6${ipv6Groups(ip)
    .map((group) => group.padStart(4, '0'))
    .join('')}${portKey}`;
}

/** The eight 16-bit groups of an IPv6 address, as hex text (`::` expanded, an IPv4 tail as two groups). */
function ipv6Groups(ip) {
  let text = ip;
  const lastColon = text.lastIndexOf(':');
  const tail = text.slice(lastColon + 1);
  if (tail.includes('.')) {
    const [a, b, c, d] = tail.split('.').map(Number);
    text = `${text.slice(0, lastColon + 1)}${((a << 8) | b).toString(16)}:${((c << 8) | d).toString(16)}`;
  }
  const [head, rest] = text.split('::');
  const before = head ? head.split(':') : [];
  if (rest === undefined) return before;
  const after = rest ? rest.split(':') : [];
  return [...before, ...Array(Math.max(0, 8 - before.length - after.length)).fill('0'), ...after];
}

/** What the table needs of a host, computed once per fetch rather than on every sort or draw. */
function prepare(raw) {
  const tags = raw.tags;
  const { az = '', region = '', instance_id: instanceId = '', canary, load_balancing_weight: weight } = tags;
  const other = [];
  for (const [key, value] of Object.entries(tags)) {
    if (
      key === 'az' ||
      key === 'region' ||
      key === 'instance_id' ||
      key === 'canary' ||
      key === 'load_balancing_weight'
    )
      continue;
    other.push(`${key}=${typeof value === 'string' ? value : JSON.stringify(value)}`);
  }
  const address = raw.ip_address.includes(':') ? `[${raw.ip_address}]:${raw.port}` : `${raw.ip_address}:${raw.port}`;
  const zone = String(az);
  const instance = String(instanceId);
  const otherTags = other.join(' ');
  return {
    v: raw.v,
    ip: raw.ip_address,
    address,
    addressNumber: addressNumber(raw.ip_address, raw.port),
    addressKey: addressKey(raw.ip_address, raw.port),
    zone,
    zoneKey: `${zone}\u0000${region}`,
    region: String(region),
    instance,
    revision: raw.revision,
    repo: raw.service_repo_name,
    canary: canary === true,
    weight: typeof weight === 'number' ? weight : 0,
    weightText: weight === undefined ? '—' : String(weight),
    otherTags,
    checkInMs: raw.check_in_ms,
    // Hosts of a server from before statuses carry none: they are all UP.
    status: typeof raw.status === 'string' ? raw.status : 'UP',
    stamp: 0,
    haystack:
      `${address} ${raw.ip_address} ${instance} ${raw.revision} ${zone} ${region} ${raw.service_repo_name} ${otherTags}${canary === true ? ' canary' : ''}`.toLowerCase(),
  };
}

/** Lets the page run (input, scrolling, painting) between two slices of work. */
function yieldToPage() {
  return new Promise((resolve) => setTimeout(resolve, 0));
}

async function pollService(current) {
  const name = serviceView.name;
  const result = await getJson(`../v1/ui/services/${encodeURIComponent(name)}/hosts`, serviceView.etag);
  if (!current()) return;
  if (result.status === 304) {
    // Same hosts, same check-ins: only the ages move.
    measured('ages', () => drawWindow());
    return;
  }
  const body = measured('parse', () => JSON.parse(result.text));
  // Hosts whose `v` is unchanged keep what was derived for them and take only the new check-in;
  // the rest are prepared in slices with the page running between them, so even the first load
  // of thousands of hosts never holds the main thread for long.
  const raw = body.hosts;
  const cache = serviceView.prepared;
  const previous = serviceView.hosts;
  const next = new Map();
  const hosts = new Array(raw.length);
  let changed = raw.length !== previous.length;
  for (let index = 0; index < raw.length;) {
    measured('prepare', () => {
      for (let misses = 0; index < raw.length && misses < PREPARE_CHUNK; index++) {
        const item = raw[index];
        // By address and port: with INSTANCE_KEY=ip_port one IP has several instances.
        const key = `${item.ip_address} ${item.port}`;
        let host = cache.get(key);
        if (host === undefined || host.v !== item.v) {
          host = prepare(item);
          misses++;
          changed = true;
        } else if (previous[index] !== host) {
          changed = true;
        }
        host.checkInMs = item.check_in_ms;
        next.set(key, host);
        hosts[index] = host;
      }
    });
    if (index < raw.length) {
      await yieldToPage();
      if (!current() || serviceView.name !== name) return;
    }
  }
  const reorder = measured('hosts', () => {
    serviceView.etag = result.etag;
    serviceView.serverNow = body.now;
    serviceView.receivedAt = performance.now();
    serviceView.ttl = body.host_ttl_seconds;
    serviceView.protectedHosts = body.protected_hosts;
    serviceView.staleAgeSeconds = body.stale_age_seconds;
    serviceView.prepared = next;
    serviceView.hosts = hosts;
    renderWarnings();
    if (changed) renderSummary();
    // Same hosts with new check-ins keep their order, unless the order is by age.
    if (changed || serviceView.sort === 'age') return true;
    drawWindow();
    return false;
  });
  if (!reorder) return;
  // The order and the rows in a task of their own, so the summary's work and this one's add up to no long task.
  await yieldToPage();
  if (!current() || serviceView.name !== name) return;
  measured('order', () => applyChoices(true));
}

/** Summary, revision split and per-AZ counts: of every host, whatever the search shows. */
function renderSummary() {
  const hosts = serviceView.hosts;
  const ttl = serviceView.ttl;

  // Revisions by number of hosts, largest first; a colour per revision, the same in bar and rows.
  const counts = new Map();
  const zones = new Map();
  let canaries = 0;
  for (const host of hosts) {
    counts.set(host.revision, (counts.get(host.revision) ?? 0) + 1);
    zones.set(host.zone, (zones.get(host.zone) ?? 0) + 1);
    if (host.canary) canaries++;
  }
  const revisions = [...counts].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  serviceView.colour = new Map(
    revisions.map(([revision], index) => [revision, `rev-${Math.min(index, REVISION_COLOURS - 1)}`]),
  );

  const parts = [`${numberFormat.format(hosts.length)} ${hosts.length === 1 ? 'host' : 'hosts'}`];
  parts.push(
    `${revisions.length} ${revisions.length === 1 ? 'revision' : 'revisions'}${revisions.length > 1 ? ' (deploy in progress)' : ''}`,
  );
  if (canaries > 0) parts.push(`${canaries} canary`);
  parts.push(`HOST_TTL ${ttl} s`);
  setText($('service-summary'), parts.join(' · '));
  renderRevisionsAndZones(hosts, revisions, zones);
}

/** Whether expiry protection is holding hosts of this list, or storage is down and the list is old. */
function renderWarnings() {
  const warning = $('service-warning');
  const warnings = [];
  if (serviceView.protectedHosts > 0)
    warnings.push(
      `Expiry protection is keeping ${numberFormat.format(serviceView.protectedHosts)} hosts that missed their heartbeats.`,
    );
  if (serviceView.staleAgeSeconds !== null)
    warnings.push(`Storage is unavailable: this list was read ${serviceView.staleAgeSeconds} s ago.`);
  setText(warning, warnings.join(' '));
  warning.hidden = warnings.length === 0;
}

function renderRevisionsAndZones(hosts, revisions, zones) {
  let barHtml = '';
  let listHtml = '';
  const colour = serviceView.colour;
  for (const [revision, count] of revisions) {
    barHtml += `<span class="${colour.get(revision)}" data-share="${(100 * count) / hosts.length}"></span>`;
    listHtml += `<li><i class="sw ${colour.get(revision)}"></i><code>${escapeHtml(revision)}</code> · ${numberFormat.format(count)} ${count === 1 ? 'host' : 'hosts'} (${Math.round((100 * count) / hosts.length)}%)</li>`;
  }
  const bar = $('revision-bar');
  if (setHtml(bar, barHtml)) {
    // Set through the CSSOM: the content security policy forbids inline style attributes.
    for (const segment of bar.children) segment.style.width = `${segment.dataset.share}%`;
  }
  setHtml($('revision-list'), listHtml);

  // Per-AZ counts, largest first; each a toggle that narrows the table to that zone.
  const zoneList = [...zones].sort((a, b) => b[1] - a[1] || (a[0] < b[0] ? -1 : 1));
  let zonesHtml = '';
  for (const [zone, count] of zoneList) {
    const pressed = serviceView.az !== '' && serviceView.az === zone;
    zonesHtml +=
      `<li><button type="button" class="zone" data-az="${escapeHtml(zone)}" aria-pressed="${pressed}">` +
      `${escapeHtml(zone || '(no az)')} · ${numberFormat.format(count)}</button></li>`;
  }
  setHtml($('az-list'), zonesHtml);
}

/** Filters and sorts the hosts by the current choices, then draws the visible window. */
/** Marks the hosts one reordering has placed (a number on each host is cheaper than a Set of 5,000). */
let orderStamp = 0;

function applyChoices(keepOrder = false) {
  const needle = serviceView.query.toLowerCase();
  const az = serviceView.az;
  const status = serviceView.status;
  const matches = (host) =>
    (az === '' || host.zone === az) &&
    (status === '' || host.status === status) &&
    (needle === '' || host.haystack.includes(needle));
  let shown;
  if (keepOrder) {
    // A refresh: start from the order shown, so the sort (TimSort) finds it nearly sorted and
    // costs little more than one pass; new and changed hosts come last and move into place.
    const byIp = serviceView.prepared;
    const stamp = ++orderStamp;
    shown = [];
    for (const before of serviceView.shown) {
      const host = byIp.get(before.ip);
      if (host === undefined || host.stamp === stamp) continue;
      host.stamp = stamp;
      if (matches(host)) shown.push(host);
    }
    for (const host of serviceView.hosts) if (host.stamp !== stamp && matches(host)) shown.push(host);
  } else {
    shown = needle !== '' || az !== '' || status !== '' ? serviceView.hosts.filter(matches) : serviceView.hosts.slice();
  }
  const compare = SORTS[serviceView.sort] ?? SORTS[DEFAULT_SORT];
  const sign = serviceView.dir === 'desc' ? -1 : 1;
  shown.sort((a, b) => sign * compare(a, b) || compareAddress(a, b));
  serviceView.shown = shown;

  const total = serviceView.hosts.length;
  const filtered = needle !== '' || az !== '' || status !== '';
  setText(
    $('hosts-count'),
    filtered
      ? `${numberFormat.format(shown.length)} of ${numberFormat.format(total)} ${total === 1 ? 'host' : 'hosts'}`
      : `${numberFormat.format(total)} ${total === 1 ? 'host' : 'hosts'}`,
  );
  for (const header of document.querySelectorAll('#hosts-head [data-sort]')) {
    const active = header.dataset.sort === serviceView.sort;
    header.setAttribute('aria-sort', active ? (serviceView.dir === 'desc' ? 'descending' : 'ascending') : 'none');
  }
  for (const button of document.querySelectorAll('#az-list button')) {
    button.setAttribute('aria-pressed', String(az !== '' && button.dataset.az === az));
  }
  $('hosts-spacer').style.height = `${shown.length * ROW_HEIGHT}px`;
  const empty = $('hosts-empty');
  empty.hidden = shown.length > 0;
  empty.textContent =
    total === 0 ? 'No live hosts. Hosts appear here when they heartbeat.' : 'No host matches the search.';
  drawWindow();
}

function formatAge(seconds) {
  if (seconds < 60) return `${Math.max(0, seconds).toFixed(seconds < 10 ? 1 : 0)} s ago`;
  if (seconds < 3600) return `${Math.floor(seconds / 60)} min ${Math.floor(seconds % 60)} s ago`;
  return `${(seconds / 3600).toFixed(1)} h ago`;
}

function formatCheckIn(ms) {
  return new Date(ms).toISOString().replace('T', ' ').replace('Z', '');
}

/** The cells of one host's row but its heartbeat age, which drawWindow keeps current. */
function rowCells(host, colour, ttl) {
  return (
    `<span role="cell" class="addr">${escapeHtml(host.address)}</span>` +
    `<span role="cell">${escapeHtml(host.zone)} / ${escapeHtml(host.region)}</span>` +
    `<span role="cell" class="inst" title="${escapeHtml(host.instance)}">${escapeHtml(host.instance)}</span>` +
    `<span role="cell"><i class="sw ${colour}"></i>${escapeHtml(host.revision)}</span>` +
    `<span role="cell" class="num">${escapeHtml(host.weightText)}</span>` +
    `<span role="cell">${host.canary ? '<span class="badge canary">canary</span>' : '—'}</span>` +
    `<span role="cell" class="tags" title="${escapeHtml(host.otherTags)}">${escapeHtml(host.otherTags)}</span>` +
    `<span role="cell" class="hb"><meter min="0" max="${ttl}" low="${ttl * 0.5}" high="${ttl * 0.8}" optimum="0" aria-label="heartbeat age"></meter>` +
    `<span class="age"></span></span>` +
    `<span role="cell">${
      host.status === 'UP'
        ? 'UP'
        : `<span class="badge status-${host.status.toLowerCase()}">${escapeHtml(host.status)}</span>`
    }</span>`
  );
}

/**
 * Draws the rows in view (plus overscan) into a fixed set of row elements. A row whose host
 * (the same prepared object, so unchanged data) is still the one in its place is left as it is
 * but for its heartbeat age: a refresh that finds the same hosts in view rewrites no markup.
 */
function drawWindow() {
  const viewport = $('hosts-viewport');
  const shown = serviceView.shown;
  const visible = Math.ceil((viewport.clientHeight || 600) / ROW_HEIGHT);
  const first = Math.max(0, Math.floor(viewport.scrollTop / ROW_HEIGHT) - OVERSCAN_ROWS);
  const last = Math.min(shown.length, first + visible + 2 * OVERSCAN_ROWS);
  const now = nowOnServer();
  const ttl = serviceView.ttl;
  const body = $('hosts-body');
  const rows = body.children;
  while (rows.length > last - first) rows[rows.length - 1].remove();
  while (rows.length < last - first) {
    const row = document.createElement('div');
    row.className = 'row vrow';
    row.setAttribute('role', 'row');
    body.append(row);
  }
  for (let index = first; index < last; index++) {
    const host = shown[index];
    const row = rows[index - first];
    const colour = serviceView.colour.get(host.revision);
    if (row.host !== host || row.colour !== colour || row.ttl !== ttl) {
      row.innerHTML = rowCells(host, colour, ttl);
      Object.assign(row, { host, colour, ttl, checkInMs: undefined });
      row.meter = row.querySelector('meter');
      row.age = row.querySelector('.age');
      row.heartbeat = row.querySelector('.hb');
    }
    if (row.rowIndex !== index) {
      row.setAttribute('aria-rowindex', String(index + 2));
      row.rowIndex = index;
    }
    if (row.checkInMs !== host.checkInMs) {
      row.heartbeat.title = `last heartbeat ${formatCheckIn(host.checkInMs)} UTC; expires after ${ttl} s`;
      row.checkInMs = host.checkInMs;
    }
    const age = (now - host.checkInMs) / 1000;
    row.meter.value = Math.min(ttl, Math.max(0, age));
    setText(row.age, formatAge(age));
  }
  body.style.transform = `translateY(${first * ROW_HEIGHT}px)`;
  $('hosts').setAttribute('aria-rowcount', String(shown.length + 1));
}

/** Reads the service view's choices from the URL (defaults for anything missing or unknown). */
function readChoices(params) {
  serviceView.query = (params.get('q') ?? '').trim();
  serviceView.az = params.get('az') ?? '';
  const status = params.get('status') ?? '';
  serviceView.status = ['UP', 'DRAINING', 'OUT_OF_SERVICE'].includes(status) ? status : '';
  if ($('host-status').value !== serviceView.status) $('host-status').value = serviceView.status;
  const sort = params.get('sort') ?? DEFAULT_SORT;
  serviceView.sort = Object.hasOwn(SORTS, sort) ? sort : DEFAULT_SORT;
  serviceView.dir = params.get('dir') === 'desc' ? 'desc' : 'asc';
  if ($('host-search').value.trim() !== serviceView.query) $('host-search').value = serviceView.query;
}

function writeChoices() {
  writeHash(`/service/${encodeURIComponent(serviceView.name)}`, [
    ['q', serviceView.query],
    ['az', serviceView.az],
    ['status', serviceView.status],
    ['sort', serviceView.sort === DEFAULT_SORT ? '' : serviceView.sort],
    ['dir', serviceView.dir === 'asc' ? '' : serviceView.dir],
  ]);
}

/** A change of search, zone or sort: redraw from the hosts already fetched, and keep it in the URL. */
function choicesChanged() {
  writeChoices();
  $('hosts-viewport').scrollTop = 0;
  measured('choices', () => applyChoices());
}

let searchTimer;
$('host-search').addEventListener('input', (event) => {
  clearTimeout(searchTimer);
  searchTimer = setTimeout(() => {
    serviceView.query = event.target.value.trim();
    choicesChanged();
  }, INPUT_DEBOUNCE_MS);
});
$('host-status').addEventListener('change', (event) => {
  serviceView.status = event.target.value;
  choicesChanged();
});
$('az-list').addEventListener('click', (event) => {
  const button = event.target.closest('button[data-az]');
  if (!button) return;
  serviceView.az = serviceView.az === button.dataset.az ? '' : button.dataset.az;
  choicesChanged();
});
$('hosts-head').addEventListener('click', (event) => {
  const header = event.target.closest('[data-sort]');
  if (!header) return;
  const sort = header.dataset.sort;
  if (serviceView.sort === sort) {
    serviceView.dir = serviceView.dir === 'asc' ? 'desc' : 'asc';
  } else {
    serviceView.sort = sort;
    // Oldest heartbeat first is what one looks for; everything else reads A to Z.
    serviceView.dir = sort === 'age' ? 'desc' : 'asc';
  }
  choicesChanged();
});
let scrollFrame = 0;
$('hosts-viewport').addEventListener('scroll', () => {
  if (scrollFrame) return;
  scrollFrame = requestAnimationFrame(() => {
    scrollFrame = 0;
    drawWindow();
  });
});

function showService(name, params) {
  $('services-view').hidden = true;
  $('service-view').hidden = false;
  $('service-name').textContent = name;
  document.title = `${name} · discovery`;
  readChoices(params);
  if (serviceView.name !== name) {
    Object.assign(serviceView, { name, etag: undefined, hosts: [], prepared: new Map(), shown: [] });
    $('hosts-body').replaceChildren();
    setHtml($('az-list'), '');
    $('service-summary').textContent = '';
    $('hosts-viewport').scrollTop = 0;
  }
  applyChoices();
  startPolling(pollService);
}

// ---- routing and start-up ----

function route() {
  const where = readHash();
  if (where.view === 'service') showService(where.name, where.params);
  else showServices(where.params);
}

async function start() {
  try {
    state.config = JSON.parse((await getJson('../v1/ui/config')).text);
  } catch (error) {
    setStatus(`Cannot reach discovery (${error.message}); retrying`, true);
    setTimeout(start, POLL_MS);
    return;
  }
  $('env').textContent = state.config.env;
  $('ttl').textContent = `HOST_TTL ${state.config.host_ttl_seconds} s`;
  $('banner').hidden = !state.config.writes_protected;
  serviceView.ttl = state.config.host_ttl_seconds;
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
