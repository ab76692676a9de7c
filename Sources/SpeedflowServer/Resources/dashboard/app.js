// Speedflow dashboard: vanilla JS, hand-written SVG, no dependencies (works offline).
//
// Four views behind hash routes: #/ (fleet), #/map, #/camera/ID?p=6h&i=5m&tz=UTC (camera), #/ingest.
// Live by Server-Sent Events: the camera view follows GET /kvfv/{id}/avg-speed/stream (a late event
// that revises an old window arrives as a `window` event) and the fleet view GET /kvfv/stream. While a
// stream is down (not yet up, dropped, refused) the view falls back to polling every POLL_MS and the
// stream is retried. Every window the API lists is drawn; empty windows (count 0, null speeds) are
// gaps, never zeros.
(() => {
  'use strict';

  const POLL_MS = 2000;
  const PAGE_SIZE = 100; // cameras per page of the fleet view (GET /kvfv?limit=)
  const ID_RE = /^[A-Za-z0-9._-]{1,64}$/;
  const MAX_WINDOWS = 10000;
  const MINUTE = 60e3, HOUR = 60 * MINUTE, DAY = 24 * HOUR;
  const INTERVAL_MS = { '5m': 5 * MINUTE, '1h': HOUR, '24h': DAY };
  const PERIOD_MS = { '6h': 6 * HOUR, '24h': DAY, '7d': 7 * DAY };
  const DEFAULT_INTERVAL = { '6h': '5m', '24h': '5m', '7d': '1h', custom: '1h' };
  const HEALTH = {
    live: { label: 'Live', rank: 4, help: 'Events arriving normally' },
    silent: { label: 'Silent', rank: 1, help: 'No arrival for more than 15 minutes' },
    lagging: { label: 'Lagging', rank: 2, help: 'Latest events arrive more than 5 minutes after their event time' },
    clock_skew: { label: 'Clock skew', rank: 0, help: 'Events from the future were rejected in the last hour' },
    stuck: { label: 'Stuck', rank: 0, help: 'The last 20 speeds are identical' },
  };
  // A day's health (GET /kvfv/{id}/health days, GET /kvfv rows' `today`); rank: the server's severity order.
  const DAY_STATUS = {
    ok: { label: 'OK', rank: 7, help: 'Nothing to report' },
    down: { label: 'Down', rank: 0, help: 'No vehicles, or far fewer than expected' },
    insufficient: { label: 'Low volume', rank: 4, help: 'Fewer vehicles than the expected daily volume allows' },
    stuck: { label: 'Stuck', rank: 1, help: 'Speeds barely vary' },
    clock_skew: { label: 'Clock skew', rank: 2, help: 'Events from the future were rejected' },
    high_rejection: { label: 'High rejection', rank: 3, help: 'Many events rejected' },
    backlog: { label: 'Backlog', rank: 5, help: 'The camera reported passes it has not delivered' },
    unknown_lane: { label: 'Unknown lane', rank: 6, help: 'Many vehicles without a valid lane' },
  };
  const COMMON_TZ = [
    'UTC', 'Europe/Kaliningrad', 'Europe/Moscow', 'Europe/Samara', 'Asia/Yekaterinburg', 'Asia/Omsk',
    'Asia/Novosibirsk', 'Asia/Krasnoyarsk', 'Asia/Irkutsk', 'Asia/Yakutsk', 'Asia/Vladivostok',
    'Asia/Magadan', 'Asia/Kamchatka',
  ];

  const $ = (id) => document.getElementById(id);
  const esc = (s) => String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' }[c]));
  const attr = (v) => (v === null || v === undefined ? '' : esc(String(v)));
  const nf0 = new Intl.NumberFormat('en-US', { maximumFractionDigits: 0 });
  const nf1 = new Intl.NumberFormat('en-US', { minimumFractionDigits: 1, maximumFractionDigits: 1 });
  const fmtInt = (n) => (n === null || n === undefined ? '—' : nf0.format(n));
  const fmt1 = (n) => (n === null || n === undefined || !isFinite(n) ? '—' : nf1.format(n));
  const fmtSpeed = (v) => (v === null || v === undefined ? '—' : v.toFixed(1));
  const clamp = (v, lo, hi) => Math.max(lo, Math.min(hi, v));

  const fmtPct = (x) => (x === null || x === undefined || !isFinite(x) ? '—' : `${(x * 100).toFixed(1)} %`);

  // ---------------------------------------------------------------- camera names (the registry)

  const fmtKm = (km) => String(Math.round(km * 1000) / 1000);
  /** What people call a camera: its registered name, with road and km when the name does not say the road; '' unregistered. */
  function placeName(reg) {
    if (!reg) return '';
    const road = reg.road ? reg.road + (typeof reg.km === 'number' ? ` km ${fmtKm(reg.km)}` : '') : '';
    if (reg.name) return road && !reg.name.includes(reg.road) ? `${reg.name} (${road})` : reg.name;
    return road;
  }
  /** "A-107 km 42 northbound · KV12345"; the id alone for a camera not in the registry. */
  function cameraLabel(id, reg) {
    const name = placeName(reg);
    return name ? `${name} · ${id}` : id;
  }
  /** GET /registry, by id: every registered camera (the map; names for cameras whose row is not at hand). */
  const registry = { byId: new Map(), loadedAt: 0 };
  async function loadRegistry(maxAgeMs) {
    if (registry.loadedAt && Date.now() - registry.loadedAt < maxAgeMs) return;
    const r = await getJSON('/registry');
    registry.byId = new Map((r.cameras || []).map((c) => [c.kvfv_id, c]));
    registry.loadedAt = Date.now();
  }
  /** A camera's registry entry: from its GET /kvfv row when given (pushed, fresher), else from GET /registry. */
  const regOf = (id, row) => (row && row.registry !== undefined ? row.registry : registry.byId.get(id)) || null;

  /**
   * Current speed against the limit in force (the map's colours, the fleet table's bars): `ok` at or under the
   * limit, `warn` up to 10 km/h over, `over` more than 10 km/h over, `none` without a current speed or a limit.
   */
  function speedClass(speed, limit) {
    if (speed === null || speed === undefined || limit === null || limit === undefined) return 'none';
    if (speed <= limit) return 'ok';
    if (speed <= limit + 10) return 'warn';
    return 'over';
  }
  const SPEED_CLASS = {
    ok: 'At or under the limit',
    warn: 'Up to 10 km/h over',
    over: 'More than 10 km/h over',
    none: 'No current speed, or no limit',
  };

  function storageGet(key, fallback) {
    try { return localStorage.getItem(key) ?? fallback; } catch { return fallback; }
  }
  function storageSet(key, value) {
    try { localStorage.setItem(key, value); } catch { /* private mode: settings just do not persist */ }
  }

  // ---------------------------------------------------------------- time zones

  const browserTz = (() => {
    try { return Intl.DateTimeFormat().resolvedOptions().timeZone || 'UTC'; } catch { return 'UTC'; }
  })();
  const dtfCache = new Map();
  function partsFormatter(tz) {
    let f = dtfCache.get(tz);
    if (!f) {
      f = new Intl.DateTimeFormat('en-US', {
        timeZone: tz, hourCycle: 'h23', year: 'numeric', month: '2-digit', day: '2-digit',
        hour: '2-digit', minute: '2-digit', second: '2-digit',
      });
      dtfCache.set(tz, f);
    }
    return f;
  }
  /** Offset of `tz` from UTC at instant `ms`, in ms (Moscow: +3 h). */
  function tzOffset(tz, ms) {
    if (tz === 'UTC') return 0;
    const p = {};
    for (const part of partsFormatter(tz).formatToParts(new Date(ms))) p[part.type] = part.value;
    const asUtc = Date.UTC(+p.year, +p.month - 1, +p.day, +p.hour, +p.minute, +p.second);
    return asUtc - Math.floor(ms / 1000) * 1000;
  }
  /** The UTC instant of a wall-clock time (given as ms since epoch "as if UTC") in `tz`. */
  function wallToUtc(tz, wallMs) {
    const guess = wallMs - tzOffset(tz, wallMs);
    return wallMs - tzOffset(tz, guess);
  }
  /** Window start containing `ms`; days start at local midnight in `tz`, shorter windows are UTC-aligned like the API. */
  function floorWindow(ms, interval, tz) {
    const iv = INTERVAL_MS[interval];
    if (iv < DAY || tz === 'UTC') return Math.floor(ms / iv) * iv;
    const wall = ms + tzOffset(tz, ms);
    return wallToUtc(tz, Math.floor(wall / DAY) * DAY);
  }
  function nextWindow(start, interval, tz) {
    const iv = INTERVAL_MS[interval];
    if (iv < DAY || tz === 'UTC') return start + iv;
    const wall = start + tzOffset(tz, start);
    return wallToUtc(tz, Math.floor(wall / DAY) * DAY + DAY);
  }

  const fmtCache = new Map();
  function formatter(tz, kind) {
    const key = tz + '|' + kind;
    let f = fmtCache.get(key);
    if (!f) {
      const base = { timeZone: tz };
      const opts = {
        hm: { hour: '2-digit', minute: '2-digit', hourCycle: 'h23' },
        hms: { hour: '2-digit', minute: '2-digit', second: '2-digit', hourCycle: 'h23' },
        md: { month: 'short', day: 'numeric' },
        ymd: { year: 'numeric', month: 'short', day: 'numeric' },
        mdhm: { month: 'short', day: 'numeric', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' },
        dayKey: { year: 'numeric', month: '2-digit', day: '2-digit' },
      }[kind];
      f = new Intl.DateTimeFormat(kind === 'dayKey' ? 'en-CA' : 'en-GB', Object.assign(base, opts));
      if (kind === 'md' || kind === 'ymd') f = new Intl.DateTimeFormat('en-US', Object.assign({ timeZone: tz }, opts));
      fmtCache.set(key, f);
    }
    return f;
  }
  const fmtTime = (ms, tz, kind) => formatter(tz, kind).format(new Date(ms));
  function fmtWhen(iso, tz, nowMs) {
    if (!iso) return '<span class="none">—</span>';
    const ms = Date.parse(iso);
    const sameDay = fmtTime(ms, tz, 'dayKey') === fmtTime(nowMs, tz, 'dayKey');
    const text = sameDay ? fmtTime(ms, tz, 'hms') : fmtTime(ms, tz, 'md') + ' ' + fmtTime(ms, tz, 'hm');
    return `<time datetime="${attr(iso)}" title="${attr(iso)}">${esc(text)}</time><span class="ago">${esc(fmtAgo(nowMs - ms))}</span>`;
  }
  function fmtDuration(sec) {
    if (sec === null || sec === undefined) return '—';
    const s = Math.abs(sec);
    if (s < 1) return `${Math.round(sec * 1000)} ms`;
    if (s < 60) return `${s < 10 ? sec.toFixed(1) : Math.round(sec)} s`;
    if (s < 3600) return `${Math.floor(s / 60)} min${s % 60 >= 1 && s < 600 ? ' ' + Math.floor(s % 60) + ' s' : ''}`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ${Math.floor((s % 3600) / 60)} min`;
    return `${Math.floor(s / 86400)} d ${Math.floor((s % 86400) / 3600)} h`;
  }
  function fmtAgo(ms) {
    if (!isFinite(ms)) return '';
    if (ms < -5000) return 'in future';
    const s = Math.max(0, ms / 1000);
    if (s < 60) return `${Math.floor(s)} s ago`;
    if (s < 3600) return `${Math.floor(s / 60)} min ago`;
    if (s < 86400) return `${Math.floor(s / 3600)} h ago`;
    return `${Math.floor(s / 86400)} d ago`;
  }
  function fmtBytes(n) {
    if (n === null || n === undefined) return '—';
    const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
    let i = 0, v = n;
    while (v >= 1024 && i < units.length - 1) { v /= 1024; i++; }
    return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
  }
  /** "2025-04-05T10:15:00Z" for a URL; whole seconds, since every window boundary is whole. */
  const isoSec = (ms) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
  /** `datetime-local` value (wall time in `tz`) <-> UTC ms. */
  const toLocalInput = (ms, tz) => new Date(ms + tzOffset(tz, ms)).toISOString().slice(0, 16);
  function fromLocalInput(value, tz) {
    if (!value) return NaN;
    const wall = Date.parse(value + (value.length === 16 ? ':00' : '') + 'Z');
    return isNaN(wall) ? NaN : wallToUtc(tz, wall);
  }

  // ---------------------------------------------------------------- fetching

  class HttpError extends Error {
    constructor(status, message) { super(message); this.status = status; }
  }
  async function getJSON(url) {
    const ctrl = new AbortController();
    const timer = setTimeout(() => ctrl.abort(), 10000);
    try {
      const res = await fetch(url, { headers: { Accept: 'application/json' }, cache: 'no-store', signal: ctrl.signal });
      if (!res.ok) {
        if (res.status === 401 && window.SpeedflowSession) window.SpeedflowSession.unauthorized();
        let message = `HTTP ${res.status}`;
        try {
          const body = await res.json();
          message += ': ' + (body.message || body.reason || body.error || JSON.stringify(body));
        } catch { /* body was not JSON */ }
        throw new HttpError(res.status, message);
      }
      return await res.json();
    } finally {
      clearTimeout(timer);
    }
  }


  // ---------------------------------------------------------------- live streams

  /** Waits before reopening a stream the server refused or closed for good (EventSource retries dropped ones itself). */
  const STREAM_RETRY_MS = [2000, 5000, 15000, 30000];
  /**
   * One EventSource with its fallback: `up` once a snapshot arrived and until the stream drops; while it is
   * not up, the view polls. `want(url)` (re)opens it when the URL changes; `null` closes it.
   */
  class LiveStream {
    constructor(itemEvent, onSnapshot, onItem) {
      this.itemEvent = itemEvent;
      this.onSnapshot = onSnapshot;
      this.onItem = onItem;
      this.url = null;
      this.es = null;
      this.up = false;
      this.failures = 0;
      this.retryTimer = 0;
    }
    want(url) {
      if (url === this.url) return;
      this.close();
      this.url = url;
      this.failures = 0;
      if (url) this.connect();
    }
    connect() {
      this.retryTimer = 0;
      if (!this.url || typeof EventSource === 'undefined') return;
      const es = new EventSource(this.url); // same origin: the dashboard's session cookie goes along
      this.es = es;
      const parse = (e) => { try { return JSON.parse(e.data); } catch { return null; } };
      es.addEventListener('snapshot', (e) => {
        const d = parse(e);
        if (this.es !== es || !d) return;
        this.up = true;
        this.failures = 0;
        state.lastOk = Date.now();
        this.onSnapshot(d);
        streamStatus();
      });
      es.addEventListener(this.itemEvent, (e) => {
        const d = parse(e);
        if (this.es !== es || !d || !this.up) return;
        state.lastOk = Date.now();
        this.onItem(d);
      });
      // The server is shutting down: it closes the stream next; EventSource reconnects after `retry`.
      es.addEventListener('end', () => { if (this.es === es) { this.up = false; streamStatus(); } });
      es.onerror = () => {
        if (this.es !== es) return;
        this.up = false; // polling takes over until the next snapshot
        if (es.readyState === EventSource.CLOSED) {
          // Refused (an error answer): EventSource gives up, so retry later ourselves.
          this.es = null;
          const wait = STREAM_RETRY_MS[Math.min(this.failures++, STREAM_RETRY_MS.length - 1)];
          this.retryTimer = setTimeout(() => this.connect(), wait);
        }
        streamStatus();
        refreshNow();
      };
    }
    close() {
      if (this.es) this.es.close();
      this.es = null;
      clearTimeout(this.retryTimer);
      this.retryTimer = 0;
      this.up = false;
      this.url = null;
    }
  }
  /** `data-stream` on <html>: which views are pushed rather than polled (for people and tests). */
  function streamStatus() {
    const d = document.documentElement.dataset;
    d.cameraStream = camLive.up ? 'up' : 'down';
    d.fleetStream = fleetLive.up ? 'up' : 'down';
    d.mapStream = mapLive.up ? 'up' : 'down';
  }

  // ---------------------------------------------------------------- state

  const state = {
    view: 'fleet',
    paused: false,
    tz: storageGet('speedflow.tz', browserTz),
    serverOffset: 0, // server clock minus browser clock
    camera: null, // GET /kvfv row of the camera view's camera (null: unknown to the server)
    fleetTotal: null, // cameras on the server, from the last GET /kvfv
    serverTime: Date.now(),
    stats: null,
    rateHistory: [],
    lastOk: 0,
  };
  const serverNow = () => Date.now() + state.serverOffset;
  function noteServerTime(iso) {
    const t = Date.parse(iso);
    if (!isNaN(t)) {
      state.serverOffset = t - Date.now();
      state.serverTime = t;
    }
  }

  // ---------------------------------------------------------------- polling loop

  let timer = null, inFlight = false, again = false;
  function schedule() {
    clearTimeout(timer);
    timer = setTimeout(tick, POLL_MS);
  }
  /** Refresh the active view now (after navigation or a control change), then keep polling. */
  function refreshNow() {
    if (inFlight) { again = true; return; }
    tick();
  }
  async function tick() {
    clearTimeout(timer);
    if (state.paused) { closeStreams(); setStatus(); schedule(); return; }
    inFlight = true;
    try {
      if (state.view === 'fleet') await refreshFleet();
      else if (state.view === 'map') await refreshMap();
      else if (state.view === 'camera') await refreshCamera();
      else if (state.view === 'ingest') await refreshIngest();
      state.lastOk = Date.now();
      showError(null);
    } catch (err) {
      showError(err instanceof HttpError ? `Server answered ${err.message}` :
        'Cannot reach the Speedflow server; retrying every few seconds.');
    } finally {
      inFlight = false;
      setStatus();
      if (again) { again = false; tick(); } else schedule();
    }
  }
  function setStatus() {
    const el = $('status');
    el.classList.remove('ok', 'error', 'paused');
    let text;
    if (state.paused) { el.classList.add('paused'); text = 'Paused'; }
    else if (!state.lastOk) { text = 'Connecting…'; }
    else if (Date.now() - state.lastOk > 3 * POLL_MS + 2000) { el.classList.add('error'); text = 'Disconnected'; }
    else { el.classList.add('ok'); text = 'Live · ' + fmtTime(state.lastOk, state.tz, 'hms'); }
    $('status-text').textContent = text;
  }
  function showError(message) {
    const b = $('error-banner');
    if (!message) { b.hidden = true; return; }
    b.textContent = message;
    b.hidden = false;
  }

  function recordStats(stats) {
    state.stats = stats;
    noteServerTime(stats.server_time);
    const h = state.rateHistory;
    h.push({ t: Date.parse(stats.server_time) || Date.now(), v: stats.accepted_per_second || 0 });
    if (h.length > 300) h.splice(0, h.length - 300);
  }
  /** One page of GET /kvfv: cameras in id order after `after` (a previous page's `next`), optionally filtered. */
  function pageQuery({ prefix = '', health = '', after = null, limit = PAGE_SIZE } = {}) {
    const q = new URLSearchParams({ limit: String(limit) });
    if (prefix) q.set('prefix', prefix);
    if (health) q.set('health', health);
    if (after) q.set('after', after);
    return q.toString();
  }
  async function loadCameraPage(options = {}) {
    const page = await getJSON('/kvfv?' + pageQuery(options));
    noteServerTime(page.server_time);
    state.fleetTotal = page.total;
    return page;
  }
  /** The GET /kvfv row of one camera, or null when the server does not know it. */
  async function loadCamera(id) {
    if (!ID_RE.test(id)) return null;
    const page = await loadCameraPage({ prefix: id, limit: 1 });
    const c = (page.cameras || [])[0];
    return c && c.kvfv_id === id ? c : null;
  }

  // ---------------------------------------------------------------- routing

  function parseHash() {
    const raw = location.hash.replace(/^#/, '') || '/';
    const q = raw.indexOf('?');
    const path = q >= 0 ? raw.slice(0, q) : raw;
    const params = new URLSearchParams(q >= 0 ? raw.slice(q + 1) : '');
    const parts = path.split('/').filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch { return p; } });
    if (parts[0] === 'camera') return { view: 'camera', id: parts[1] || '', params };
    if (parts[0] === 'ingest') return { view: 'ingest', params };
    if (parts[0] === 'map') return { view: 'map', params };
    return { view: 'fleet', params };
  }
  function onRoute() {
    const route = parseHash();
    const changed = state.view !== route.view;
    state.view = route.view;
    for (const v of ['fleet', 'map', 'camera', 'ingest']) {
      $('view-' + v).hidden = v !== route.view;
      const nav = $('nav-' + v);
      if (v === route.view) nav.setAttribute('aria-current', 'page'); else nav.removeAttribute('aria-current');
    }
    if (route.view !== 'camera') { camLive.want(null); rowLive.want(null); }
    if (route.view !== 'fleet') fleetLive.want(null);
    if (route.view !== 'map') mapLive.want(null);
    streamStatus();
    if (route.view === 'camera') applyCameraRoute(route);
    setTitle();
    if (changed) $('main').focus({ preventScroll: true });
    if (route.view === 'fleet') renderFleet();
    if (route.view === 'map') renderMap();
    if (route.view === 'ingest') renderIngest();
    refreshNow();
  }

  function setTitle() {
    const v = state.view;
    document.title = v === 'camera' && cam.id ? `${cameraLabel(cam.id, cameraReg())} · Speedflow` :
      v === 'ingest' ? 'Ingest · Speedflow' : v === 'map' ? 'Map · Speedflow' : 'Fleet · Speedflow';
  }

  // ================================================================ fleet view

  const COLUMNS = [
    { key: 'kvfv_id', label: 'Camera', type: 'str' },
    { key: 'health', label: 'Health', type: 'health' },
    { key: 'today', label: 'Today', type: 'day', get: (c) => (c.today ? c.today.status : null) },
    { key: 'speed_limit', label: 'Limit', type: 'num', get: (c) => (c.registry ? c.registry.speed_limit ?? null : null) },
    { key: 'events_last_hour', label: 'Events, last hour', type: 'num' },
    { key: 'current_avg_speed', label: 'Avg speed, current 5 min', type: 'num' },
    { key: 'current_count', label: 'Flow, current 5 min', type: 'num' },
    { key: 'last_event_time', label: 'Last event', type: 'time' },
    { key: 'last_arrival_time', label: 'Last arrival', type: 'time' },
    { key: 'lag_seconds', label: 'Lag', type: 'num' },
    { key: 'events_today', label: 'Events today', type: 'num' },
    { key: 'backlog', label: 'Backlog', type: 'backlog' },
  ];
  const fleet = {
    sortKey: storageGet('speedflow.sortKey', 'kvfv_id'),
    sortDir: storageGet('speedflow.sortDir', 'asc'),
    filter: '', // id prefix, sent to the server
    health: '',
    cursors: [null], // `after` of each page visited: the last is the page shown
    gen: 0,
    rows: [],
    rowH: 0,
    lastRange: '',
    lastData: null,
    focusId: null,
  };
  if (!COLUMNS.some((c) => c.key === fleet.sortKey)) fleet.sortKey = 'kvfv_id';
  // The fleet page, pushed: a snapshot (the GET /kvfv page), then rows as cameras change.
  const fleetLive = new LiveStream('camera', (page) => {
    noteServerTime(page.server_time);
    state.fleetTotal = page.total;
    fleet.lastData = page;
    if (state.view === 'fleet') renderFleet();
  }, (row) => {
    const page = fleet.lastData;
    const i = page && page.cameras ? page.cameras.findIndex((c) => c.kvfv_id === row.kvfv_id) : -1;
    if (i < 0) return;
    page.cameras[i] = row;
    scheduleRender('fleet', () => { if (state.view === 'fleet') renderFleet(); });
  });
  /** Renders at most once per frame however many events arrive. */
  const pendingRenders = new Map();
  function scheduleRender(key, fn) {
    if (pendingRenders.has(key)) return;
    pendingRenders.set(key, requestAnimationFrame(() => { pendingRenders.delete(key); fn(); }));
  }

  /** Fetches only the page shown (the fleet may be any size); filters run on the server. */
  async function refreshFleet() {
    const gen = fleet.gen;
    const prefix = fleet.filter;
    if (prefix && !ID_RE.test(prefix)) {
      fleetLive.want(null);
      fleet.lastData = { cameras: [], total: state.fleetTotal, matched: 0, next: null };
      if (state.view === 'fleet') renderFleet();
      return;
    }
    const after = fleet.cursors[fleet.cursors.length - 1];
    fleetLive.want('/kvfv/stream?' + pageQuery({ prefix, health: fleet.health, after }));
    if (fleetLive.up) {
      // The page is pushed (fleetLive); only the ingest figures are polled.
      const stats = await getJSON('/stats').catch(() => null);
      if (stats) recordStats(stats);
      if (state.view === 'fleet') renderIngestStrip();
      return;
    }
    const [data, stats] = await Promise.all([
      loadCameraPage({ prefix, health: fleet.health, after }), getJSON('/stats').catch(() => null)]);
    if (stats) recordStats(stats);
    if (gen !== fleet.gen) return; // filter or page changed meanwhile
    fleet.lastData = data;
    if (state.view === 'fleet') renderFleet();
  }
  /** A new filter or page: forget the shown page and fetch the new one now. */
  function fleetQueryChanged() {
    fleet.gen++;
    fleet.lastData = null;
    $('fleet-scroll').scrollTop = 0;
    renderFleet();
    refreshNow();
  }

  function buildFleetHead() {
    $('fleet-head').innerHTML = COLUMNS.map((c) => {
      const num = c.type === 'num' ? ' class="num"' : '';
      return `<th scope="col"${num} data-key="${c.key}"><button type="button" class="sort-btn" data-key="${c.key}">` +
        `${esc(c.label)}<span class="arrow" aria-hidden="true">▲</span></button></th>`;
    }).join('');
  }
  function updateSortIndicators() {
    for (const th of $('fleet-head').children) {
      const arrow = th.querySelector('.arrow');
      if (th.dataset.key === fleet.sortKey) {
        th.setAttribute('aria-sort', fleet.sortDir === 'asc' ? 'ascending' : 'descending');
        arrow.textContent = fleet.sortDir === 'asc' ? '▲' : '▼';
      } else {
        th.removeAttribute('aria-sort');
        arrow.textContent = '▲';
      }
    }
  }

  function compareRows(a, b) {
    const col = COLUMNS.find((c) => c.key === fleet.sortKey) || COLUMNS[0];
    let va = col.get ? col.get(a) : a[col.key], vb = col.get ? col.get(b) : b[col.key];
    if (col.type === 'health') { va = HEALTH[va] ? HEALTH[va].rank : 5; vb = HEALTH[vb] ? HEALTH[vb].rank : 5; }
    if (col.type === 'day') { va = dayRank(va); vb = dayRank(vb); }
    if (col.type === 'time') { va = va ? Date.parse(va) : null; vb = vb ? Date.parse(vb) : null; }
    if (col.type === 'backlog') { va = va ? va.events : null; vb = vb ? vb.events : null; }
    // Unknown values sort last in either direction.
    const na = va === null || va === undefined, nb = vb === null || vb === undefined;
    if (na || nb) return na && nb ? cmpId(a, b) : na ? 1 : -1;
    let r = col.type === 'str' ? byCodePoint(String(va), String(vb)) : va - vb;
    if (fleet.sortDir === 'desc') r = -r;
    return r || cmpId(a, b);
  }
  // Unknown statuses after the known ones; no status (an older server) stays unknown.
  const dayRank = (v) => (v === null || v === undefined ? v : DAY_STATUS[v] ? DAY_STATUS[v].rank : 8);
  // The server's order (ids are ASCII), so a sorted page lines up with the pages around it.
  const byCodePoint = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
  const cmpId = (a, b) => byCodePoint(a.kvfv_id, b.kvfv_id);

  function renderFleet() {
    const data = fleet.lastData;
    renderHealthChips();
    updatePager(data);
    if (!data) { $('fleet-count').textContent = 'Loading cameras…'; return; }
    fleet.rows = (data.cameras || []).slice();
    fleet.rows.sort(compareRows);
    const shown = fleet.rows.length;
    const pageNo = fleet.cursors.length;
    const filtered = fleet.filter || fleet.health;
    let text;
    if (data.matched !== null && data.matched !== undefined) {
      // Position of this page among the matches: the pages before it were full.
      const from = (pageNo - 1) * PAGE_SIZE + 1;
      text = shown === 0 ? (filtered ? 'No camera matches the filter' : 'No cameras') :
        `Cameras ${fmtInt(from)}–${fmtInt(from + shown - 1)} of ${fmtInt(data.matched)}` +
        (filtered ? ` matching (${fmtInt(data.total)} in all)` : '');
    } else {
      text = `Page ${fmtInt(pageNo)}: ${fmtInt(shown)} ${HEALTH[fleet.health] ? HEALTH[fleet.health].label.toLowerCase() : ''} ` +
        `camera${shown === 1 ? '' : 's'} (${fmtInt(data.total)} in all)`;
    }
    $('fleet-count').textContent = text;
    $('fleet-table').setAttribute('aria-rowcount', String(shown + 1));
    fleet.lastRange = '';
    renderFleetRows(true);
    renderIngestStrip();
  }

  function updatePager(data) {
    const first = fleet.cursors.length === 1;
    $('fleet-first').disabled = first;
    $('fleet-prev').disabled = first;
    $('fleet-next').disabled = !(data && data.next);
  }

  /** Health filters (server-side). Counts per health would need every camera, so only "All" shows one. */
  function renderHealthChips() {
    const order = ['', 'live', 'lagging', 'silent', 'clock_skew', 'stuck'];
    const html = order.map((h) => {
      const label = h ? HEALTH[h].label : 'All';
      const pressed = fleet.health === h;
      const title = h ? HEALTH[h].help : 'Show every camera';
      const n = !h && state.fleetTotal !== null ? ` <span class="n">${fmtInt(state.fleetTotal)}</span>` : '';
      return `<button type="button" class="chip ${h ? 'h-' + h : 'h-all'}" data-health="${h}" aria-pressed="${pressed}" title="${esc(title)}">` +
        `${esc(label)}${n}</button>`;
    }).join('');
    const box = $('health-filters');
    if (box.innerHTML !== html) {
      const focused = document.activeElement && document.activeElement.dataset ? document.activeElement.dataset.health : undefined;
      box.innerHTML = html;
      if (focused !== undefined && box.contains(document.activeElement) === false) {
        const el = box.querySelector(`[data-health="${focused}"]`);
        if (el) el.focus();
      }
    }
  }

  /** Renders the page's rows (at most PAGE_SIZE: the server pages the fleet, so no virtual scrolling). */
  function renderFleetRows(force) {
    const body = $('fleet-body');
    const rows = fleet.rows;
    const n = rows.length;
    const rowH = fleet.rowH || 40;
    const first = 0, last = n;
    const rangeKey = `${first}:${last}`;
    if (!force && rangeKey === fleet.lastRange) return;
    fleet.lastRange = rangeKey;

    const active = document.activeElement;
    const activeRow = active && body.contains(active) ? active.closest('tr') : null;
    const focusId = activeRow ? activeRow.dataset.id : fleet.focusId;
    const focusCls = active && activeRow ? (active.classList.contains('cam-link') ? 'cam-link' : null) : null;

    const nowMs = state.serverTime;
    const parts = [];
    if (n === 0) {
      parts.push(`<tr class="empty-row"><td colspan="${COLUMNS.length}">${state.fleetTotal === 0 ?
        'No cameras yet: POST events to /events and they will appear here.' : 'No camera matches the filter.'}</td></tr>`);
    } else {
      if (first > 0) parts.push(`<tr class="spacer" aria-hidden="true"><td colspan="${COLUMNS.length}" style="height:${first * rowH}px"></td></tr>`);
      for (let i = first; i < last; i++) parts.push(fleetRow(rows[i], i, nowMs));
      if (last < n) parts.push(`<tr class="spacer" aria-hidden="true"><td colspan="${COLUMNS.length}" style="height:${(n - last) * rowH}px"></td></tr>`);
    }
    body.innerHTML = parts.join('');

    if (!fleet.rowH) {
      const r = body.querySelector('tr[data-id]');
      if (r) {
        const h = r.getBoundingClientRect().height;
        if (h > 0) { fleet.rowH = h; if (Math.abs(h - rowH) > 0.5) { renderFleetRows(true); return; } }
      }
    }
    if (focusId && focusCls) {
      const row = body.querySelector(`tr[data-id="${cssEscape(focusId)}"]`);
      if (row) row.querySelector('.cam-link').focus({ preventScroll: true });
    }
  }
  const cssEscape = (s) => (window.CSS && CSS.escape ? CSS.escape(s) : s.replace(/["\\]/g, '\\$&'));

  function fleetRow(c, i, nowMs) {
    const h = HEALTH[c.health] || { label: c.health || 'unknown', help: '' };
    const speed = c.current_avg_speed;
    const pct = speed === null || speed === undefined ? 0 : clamp(speed / 150, 0, 1) * 100;
    const lag = c.lag_seconds;
    const lagCls = lag !== null && lag !== undefined && lag > 300 ? ' class="warn-text"' : '';
    const href = '#/camera/' + encodeURIComponent(c.kvfv_id);
    const name = placeName(c.registry);
    const limit = c.registry ? c.registry.speed_limit ?? null : null;
    const sc = speedClass(speed, limit);
    return `<tr data-id="${attr(c.kvfv_id)}" data-index="${i}" aria-rowindex="${i + 2}" data-health="${attr(c.health)}" ` +
      `data-events-last-hour="${attr(c.events_last_hour)}" data-current-avg-speed="${attr(speed)}" ` +
      `data-current-count="${attr(c.current_count)}" data-events-today="${attr(c.events_today)}" ` +
      `data-today-status="${attr(c.today && c.today.status)}" data-today-reasons="${attr(c.today ? c.today.reasons.join(',') : '')}" ` +
      `data-name="${attr(name)}" data-speed-limit="${attr(limit)}" data-speed-class="${sc}">` +
      `<td class="cam-cell">${name ? `<span class="cam-name" title="${attr(name)}">${esc(name)}</span><span class="sep" aria-hidden="true"> · </span>` : ''}` +
      `<a class="cam-link" href="${href}"${name ? ` aria-label="${attr(cameraLabel(c.kvfv_id, c.registry))}"` : ''}>${esc(c.kvfv_id)}</a></td>` +
      `<td><span class="badge h-${attr(c.health)}" title="${esc(h.help)}">${esc(h.label)}</span></td>` +
      `<td data-col="today">${todayCell(c.today)}</td>` +
      `<td class="num" data-col="speed_limit">${limit === null ? '<span class="none">—</span>' : `${fmtInt(limit)}<span class="unit">km/h</span>`}</td>` +
      `<td class="num" data-col="events_last_hour">${fmtInt(c.events_last_hour)}</td>` +
      `<td class="num" data-col="current_avg_speed"><span class="speed-cell">` +
      (speed === null || speed === undefined ? '<span class="none">—</span>' :
        `<span>${fmtSpeed(speed)}<span class="unit">km/h</span></span>`) +
      `<span class="speed-bar s-${sc}" aria-hidden="true" title="${attr(SPEED_CLASS[sc])}"><i style="width:${pct.toFixed(1)}%"></i></span></span></td>` +
      `<td class="num" data-col="current_count">${fmtInt(c.current_count)}<span class="unit">veh</span></td>` +
      `<td data-col="last_event_time">${fmtWhen(c.last_event_time, state.tz, nowMs)}</td>` +
      `<td data-col="last_arrival_time">${fmtWhen(c.last_arrival_time, state.tz, nowMs)}</td>` +
      `<td class="num" data-col="lag_seconds"><span${lagCls}>${lag === null || lag === undefined ? '—' : esc(fmtDuration(lag))}</span></td>` +
      `<td class="num" data-col="events_today">${fmtInt(c.events_today)}</td>` +
      `<td class="num" data-col="backlog">${backlogCell(c, nowMs)}</td></tr>`;
  }

  /** Today's health so far (a fleet row's `today`): OK, or every reason, most severe first, as the calendar colours them. */
  function todayCell(t) {
    if (!t) return '<span class="none">—</span>';
    const reasons = t.reasons.length ? t.reasons : [t.status];
    const st = (r) => DAY_STATUS[r] || { label: r, help: '' };
    const title = 'Today so far: ' + reasons.map((r) => `${st(r).label} (${st(r).help})`).join('; ');
    return `<span class="day-tags" title="${attr(title)}">` +
      reasons.map((r) => `<span class="day-tag hc-${attr(r)}">${esc(st(r).label)}</span>`).join('') + '</span>';
  }

  /** A camera's backlog (what it reported recording but has not delivered) and its known gaps; — without seq. */
  function backlogCell(c, nowMs) {
    const b = c.backlog;
    const missing = typeof c.missing === 'number' && c.missing > 0 ? ` <span class="subtle" title="passes missing between received sequence numbers">+${fmtInt(c.missing)} gaps</span>` : '';
    if (!b) return (missing || '<span class="none">—</span>');
    const since = b.since ? ` since ${fmtWhen(b.since, state.tz, nowMs)}` : '';
    const cls = b.events > 0 ? ' class="warn-text"' : '';
    return `<span${cls} title="reported seq ${esc(String(b.reported_seq))} at ${esc(b.reported_time)}${esc(since)}">${fmtInt(b.events)}</span>${missing}`;
  }

  /** Moves keyboard focus to row `index`, scrolling it into the rendered slice first. */
  function focusFleetRow(index) {
    const n = fleet.rows.length;
    if (n === 0) return;
    index = clamp(index, 0, n - 1);
    const scroller = $('fleet-scroll');
    const rowH = fleet.rowH || 40;
    const headH = $('fleet-head').offsetHeight || rowH;
    const top = headH + index * rowH;
    if (top < scroller.scrollTop + headH) scroller.scrollTop = top - headH;
    else if (top + rowH > scroller.scrollTop + scroller.clientHeight) scroller.scrollTop = top + rowH - scroller.clientHeight;
    fleet.focusId = fleet.rows[index].kvfv_id;
    renderFleetRows(true);
    const row = $('fleet-body').querySelector(`tr[data-index="${index}"]`);
    if (row) row.querySelector('.cam-link').focus({ preventScroll: true });
  }

  function renderIngestStrip() {
    const s = state.stats;
    const el = $('fleet-ingest-strip');
    if (!s) { el.innerHTML = ''; return; }
    el.innerHTML =
      `<span>Accepted <b>${fmt1(s.accepted_per_second)}</b>/s</span>` +
      `<span>Duplicates <b>${fmt1(s.duplicates_per_second)}</b>/s</span>` +
      `<span>Rejected <b>${fmt1(s.rejected_per_second)}</b>/s</span>` +
      `<span>Queue <b>${fmtInt(s.queue_depth)}</b></span>` +
      `<a href="#/ingest">Ingest details →</a>`;
  }

  function initFleet() {
    buildFleetHead();
    updateSortIndicators();
    $('fleet-head').addEventListener('click', (e) => {
      const btn = e.target.closest('.sort-btn');
      if (!btn) return;
      const key = btn.dataset.key;
      if (fleet.sortKey === key) fleet.sortDir = fleet.sortDir === 'asc' ? 'desc' : 'asc';
      else {
        fleet.sortKey = key;
        const col = COLUMNS.find((c) => c.key === key);
        fleet.sortDir = col.type === 'str' || col.type === 'health' || col.type === 'day' ? 'asc' : 'desc';
      }
      storageSet('speedflow.sortKey', fleet.sortKey);
      storageSet('speedflow.sortDir', fleet.sortDir);
      updateSortIndicators();
      renderFleet();
    });
    let typing = 0;
    $('fleet-filter').addEventListener('input', (e) => {
      clearTimeout(typing);
      typing = setTimeout(() => {
        const v = e.target.value.trim();
        if (v === fleet.filter) return;
        fleet.filter = v;
        fleet.cursors = [null];
        fleetQueryChanged();
      }, 200);
    });
    $('health-filters').addEventListener('click', (e) => {
      const chip = e.target.closest('.chip');
      if (!chip) return;
      const h = chip.dataset.health;
      fleet.health = fleet.health === h ? '' : h;
      fleet.cursors = [null];
      fleetQueryChanged();
    });
    $('fleet-next').addEventListener('click', () => {
      const next = fleet.lastData && fleet.lastData.next;
      if (!next) return;
      fleet.cursors.push(next);
      fleetQueryChanged();
    });
    $('fleet-prev').addEventListener('click', () => {
      if (fleet.cursors.length > 1) { fleet.cursors.pop(); fleetQueryChanged(); }
    });
    $('fleet-first').addEventListener('click', () => {
      if (fleet.cursors.length > 1) { fleet.cursors = [null]; fleetQueryChanged(); }
    });
    let raf = 0;
    $('fleet-scroll').addEventListener('scroll', () => {
      if (raf) return;
      raf = requestAnimationFrame(() => { raf = 0; renderFleetRows(false); });
    });
    window.addEventListener('resize', () => { if (state.view === 'fleet') renderFleetRows(true); });
    $('fleet-body').addEventListener('click', (e) => {
      if (e.target.closest('a')) return;
      const row = e.target.closest('tr[data-id]');
      if (row) location.hash = '#/camera/' + encodeURIComponent(row.dataset.id);
    });
    $('fleet-body').addEventListener('keydown', (e) => {
      const row = e.target.closest('tr[data-index]');
      if (!row) return;
      const i = +row.dataset.index;
      const page = Math.max(1, Math.floor($('fleet-scroll').clientHeight / (fleet.rowH || 40)) - 1);
      const moves = { ArrowDown: i + 1, ArrowUp: i - 1, PageDown: i + page, PageUp: i - page, Home: 0, End: fleet.rows.length - 1 };
      if (e.key in moves && !(e.key === 'Home' || e.key === 'End') || ((e.key === 'Home' || e.key === 'End') && e.ctrlKey)) {
        e.preventDefault();
        focusFleetRow(moves[e.key]);
      }
    });
  }

  // ================================================================ camera view

  const cam = {
    id: storageGet('speedflow.camera', ''),
    period: '6h',
    interval: '5m',
    customFrom: NaN,
    customTo: NaN,
    data: null, // last avg-speed response (or what the stream made of it)
    dataKey: '',
    live: null, // { url, data }: the stream's snapshot, kept up to date by its window events
    revisions: new Map(), // window start -> { at, delta }: revisions seen arriving on the stream
    range: null,
    sel: -1, // selected window index (hover or keyboard)
    selByKey: false,
    gen: 0,
    geom: null,
    lanes: null, // last `by=lane` answer for the shown range: the per-lane chart and the compliance table
    lanesUrl: '',
    lanesDirty: false, // the stream changed a window since: fetch `by=lane` again (at most every LANES_MIN_MS)
    lanesAt: 0,
    laneGeom: null,
    health: null, // { url, at, data | error }: the health calendar's GET /kvfv/{id}/health
  };
  /** While the camera's stream is up, the per-lane answer is fetched again only after a pushed change, at most this often. */
  const LANES_MIN_MS = 5000;
  /** The health calendar is fetched again at most this often (a day's status moves slowly). */
  const HEALTH_MAX_AGE_MS = 60000;
  /** The shown camera's registry entry (null: not registered). */
  function cameraReg() {
    const c = state.camera && state.camera.kvfv_id === cam.id ? state.camera : null;
    return regOf(cam.id, c);
  }

  function applyCameraRoute(route) {
    const p = route.params;
    if (route.id && route.id !== cam.id) {
      cam.id = route.id;
      cam.sel = -1;
      clearChart(); // never show one camera's numbers under another's name
    }
    if (p.get('p') && (p.get('p') in PERIOD_MS || p.get('p') === 'custom')) cam.period = p.get('p');
    if (p.get('i') && p.get('i') in INTERVAL_MS) cam.interval = p.get('i');
    else cam.interval = DEFAULT_INTERVAL[cam.period] || cam.interval;
    if (p.get('tz') && isValidTz(p.get('tz'))) setTz(p.get('tz'));
    if (cam.period === 'custom') {
      const f = Date.parse(p.get('from') || ''), t = Date.parse(p.get('to') || '');
      if (!isNaN(f)) cam.customFrom = f;
      if (!isNaN(t)) cam.customTo = t;
      if (isNaN(cam.customFrom) || isNaN(cam.customTo)) {
        cam.customTo = serverNow();
        cam.customFrom = cam.customTo - DAY;
      }
    }
    if (cam.id) storageSet('speedflow.camera', cam.id);
    syncCameraControls();
    cam.gen++;
  }
  function cameraHash() {
    const p = new URLSearchParams({ p: cam.period, i: cam.interval, tz: state.tz });
    if (cam.period === 'custom') {
      if (!isNaN(cam.customFrom)) p.set('from', isoSec(cam.customFrom));
      if (!isNaN(cam.customTo)) p.set('to', isoSec(cam.customTo));
    }
    return '#/camera/' + encodeURIComponent(cam.id) + '?' + p.toString();
  }
  function syncCameraControls() {
    const idInput = $('camera-id');
    if (document.activeElement !== idInput) idInput.value = cam.id;
    for (const r of document.querySelectorAll('input[name="period"]')) r.checked = r.value === cam.period;
    for (const r of document.querySelectorAll('input[name="interval"]')) r.checked = r.value === cam.interval;
    for (const el of document.querySelectorAll('.custom-range')) el.hidden = cam.period !== 'custom';
    if (cam.period === 'custom') {
      if (!isNaN(cam.customFrom)) $('custom-from').value = toLocalInput(cam.customFrom, state.tz);
      if (!isNaN(cam.customTo)) $('custom-to').value = toLocalInput(cam.customTo, state.tz);
    }
    $('tz-select').value = state.tz;
    $('chart-tz-note').textContent = state.tz;
    renderCameraTitle();
  }
  /** "A-107 km 42 northbound · KV12345" and, under it, where the camera is and what its limit is. */
  function renderCameraTitle() {
    const reg = cameraReg();
    $('camera-title').textContent = cam.id ? cameraLabel(cam.id, reg) : 'Camera';
    const place = $('camera-place');
    if (!cam.id) { place.textContent = ''; return; }
    if (!reg) {
      place.textContent = 'Not in the camera registry: no name, place or speed limit (compliance needs a limit).';
    } else {
      const parts = [];
      if (reg.road) parts.push(`Road ${reg.road}${reg.direction ? ` · direction ${reg.direction}` : ''}${typeof reg.km === 'number' ? ` · km ${fmtKm(reg.km)}` : ''}`);
      else if (reg.direction) parts.push(`Direction ${reg.direction}`);
      parts.push(reg.speed_limit !== null && reg.speed_limit !== undefined ? `limit ${reg.speed_limit} km/h` : 'no speed limit in force');
      const history = reg.speed_limits || [];
      if (history.length > 1) parts.push(`${history.length} limits in its history`);
      if (reg.lanes) parts.push(`${reg.lanes} lane${reg.lanes === 1 ? '' : 's'}`);
      if (reg.time_zone) parts.push(reg.time_zone);
      if (reg.expected_daily_volume) parts.push(`expects ${fmtInt(reg.expected_daily_volume)} vehicles a day`);
      if (typeof reg.latitude === 'number') parts.push(`${reg.latitude.toFixed(4)}, ${reg.longitude.toFixed(4)}`);
      place.textContent = parts.join(' · ');
    }
    if (state.view === 'camera') setTitle();
  }
  /** Navigates to the camera view for the current controls (a new history entry only when the camera changes). */
  function commitCameraControls(newEntry) {
    const hash = cameraHash();
    if (location.hash === hash) { cam.gen++; refreshNow(); return; }
    if (newEntry) location.hash = hash;
    else { history.replaceState(null, '', hash); onRoute(); }
  }

  function isValidTz(tz) {
    try { new Intl.DateTimeFormat('en-US', { timeZone: tz }); return true; } catch { return false; }
  }
  function setTz(tz) {
    if (tz === state.tz) return;
    state.tz = tz;
    storageSet('speedflow.tz', tz);
  }

  /** The range the chart asks for: whole windows from (now − period) to the end of the current window. */
  function computeRange() {
    const tz = cam.interval === '24h' ? state.tz : 'UTC';
    let from, to;
    if (cam.period === 'custom') {
      from = cam.customFrom; to = cam.customTo;
      if (isNaN(from) || isNaN(to)) return { error: 'Enter both ends of the custom period.' };
      if (to <= from) return { error: 'The end of the period must be after its start.' };
      from = floorWindow(from, cam.interval, tz);
      const t0 = floorWindow(to, cam.interval, tz);
      to = t0 === to ? to : nextWindow(t0, cam.interval, tz);
    } else {
      const now = serverNow();
      to = nextWindow(floorWindow(now, cam.interval, tz), cam.interval, tz);
      from = floorWindow(now - PERIOD_MS[cam.period], cam.interval, tz);
    }
    const windows = Math.round((to - from) / INTERVAL_MS[cam.interval]);
    if (windows > MAX_WINDOWS) {
      return { error: `That is ${fmtInt(windows)} windows; the API answers at most ${fmtInt(MAX_WINDOWS)}. Choose a longer window or a shorter period.` };
    }
    const params = new URLSearchParams({ from: isoSec(from), to: isoSec(to), interval: cam.interval });
    if (cam.interval === '24h' && state.tz !== 'UTC') params.set('tz', state.tz);
    const path = `/kvfv/${encodeURIComponent(cam.id)}/avg-speed`;
    // The stream: the same range for a custom period; otherwise a live range (no `to`) from a whole hour (a
    // whole day for days), so it changes, and is reopened, at most hourly, and dashboards share its poller.
    let streamParams = params;
    if (cam.period !== 'custom') {
      const streamFrom = INTERVAL_MS[cam.interval] >= DAY ? from : Math.floor(from / HOUR) * HOUR;
      streamParams = new URLSearchParams({ from: isoSec(streamFrom), interval: cam.interval });
      if (cam.interval === '24h' && state.tz !== 'UTC') streamParams.set('tz', state.tz);
    }
    return {
      from, to, tz, url: `${path}?${params}`, csvUrl: `${path}?${params}&format=csv`,
      streamUrl: `${path}/stream?${streamParams}`, live: cam.period !== 'custom',
    };
  }

  async function refreshCamera() {
    if (!cam.id) {
      // No camera chosen yet: the first one in id order.
      const first = (await loadCameraPage({ limit: 1 })).cameras[0];
      if (first) {
        cam.id = first.kvfv_id;
        history.replaceState(null, '', cameraHash());
        syncCameraControls();
      }
    }
    // The camera's row: pushed by a one-camera fleet stream, polled while that is down.
    rowLive.want(cam.id && ID_RE.test(cam.id) ? '/kvfv/stream?' + pageQuery({ prefix: cam.id, limit: 1 }) : null);
    state.camera = !cam.id ? null : rowLive.up ? rowLive.camera : await loadCamera(cam.id);
    renderCameraHealth();
    if (!cam.id) { camLive.want(null); cameraMessage('No cameras yet: POST events to /events first.'); clearChart(); return; }
    // Ask only for cameras the server knows, so a typo shows a message rather than a failed request.
    if (!state.camera) {
      camLive.want(null);
      cameraMessage(`No camera “${cam.id}” on this server.`);
      clearChart();
      return;
    }
    const range = computeRange();
    if (range.error) { camLive.want(null); cameraMessage(range.error); clearChart(); return; }
    cameraMessage(null);
    camLive.want(range.streamUrl);
    const gen = cam.gen;
    const streamed = camLive.up && cam.live && cam.live.url === range.streamUrl;
    // Per lane (and compliance): with every poll while the stream is down; while it is up, after a pushed change.
    const lanesUrl = range.url + '&by=lane';
    const lanesDue = lanesUrl !== cam.lanesUrl || !streamed || (cam.lanesDirty && Date.now() - cam.lanesAt >= LANES_MIN_MS);
    if (lanesDue) cam.lanesDirty = false;
    const healthDone = refreshHealth(gen);
    const [data, lanes] = await Promise.all([
      streamed ? null : getJSON(range.url),
      lanesDue ? getJSON(lanesUrl) : null,
    ]);
    await healthDone;
    if (gen !== cam.gen || state.view !== 'camera') return; // controls changed meanwhile
    cam.range = range;
    if (lanes) {
      cam.lanesUrl = lanesUrl;
      cam.lanesAt = Date.now();
      showLaneData(lanes);
    }
    const csv = $('csv-link');
    csv.href = range.csvUrl;
    csv.removeAttribute('aria-disabled');
    csv.download = `${cam.id}_${cam.interval}_${isoSec(range.from)}_${isoSec(range.to)}.csv`.replace(/:/g, '');
    if (streamed) renderLive(); else showCameraData(data);
    renderReports();
  }

  /** Draws an avg-speed answer (polled, or made from the stream) unless it is what is already drawn. */
  function showCameraData(data) {
    const key = JSON.stringify(data);
    if (key === cam.dataKey) return; // nothing changed: keep the DOM (and the hover) as it is
    cam.dataKey = key;
    cam.data = data;
    renderCameraCards();
    renderChart();
    renderRevisions();
  }

  // The camera's windows, pushed: the snapshot, then each window as it changes (late revisions included).
  const camLive = new LiveStream('window', (snapshot) => {
    cam.live = { url: camLive.url, data: snapshot };
    cam.revisions = new Map();
    scheduleRender('camera', renderLive);
  }, (w) => {
    const live = cam.live;
    if (!live || live.url !== camLive.url || !w.start) return;
    const ws = live.data.windows || (live.data.windows = []);
    let i = ws.length - 1;
    while (i >= 0 && ws[i].start !== w.start) i--;
    if (i >= 0) {
      const old = ws[i];
      // A window that had ended changes only by late events: a revision.
      if (old.count !== w.count && Date.parse(w.end) <= serverNow()) {
        const prev = cam.revisions.get(w.start);
        cam.revisions.set(w.start, { at: Date.now(), delta: (prev ? prev.delta : 0) + ((w.count || 0) - (old.count || 0)) });
      }
      ws[i] = w;
    } else {
      ws.push(w); // a live range entering its next window
      ws.sort((a, b) => Date.parse(a.start) - Date.parse(b.start));
    }
    cam.lanesDirty = true;
    scheduleRender('camera', renderLive);
  });
  // The camera's row (health, counters): a fleet stream of one camera.
  const rowLive = new LiveStream('camera', (page) => {
    const c = (page.cameras || [])[0];
    rowLive.camera = c && c.kvfv_id === cam.id ? c : null;
    noteServerTime(page.server_time);
    state.camera = rowLive.camera;
    if (state.view === 'camera') renderCameraHealth();
  }, (row) => {
    if (row.kvfv_id !== cam.id) return;
    rowLive.camera = row;
    state.camera = row;
    scheduleRender('camera-row', () => { if (state.view === 'camera') renderCameraHealth(); });
  });
  function closeStreams() {
    camLive.want(null);
    rowLive.want(null);
    fleetLive.want(null);
    mapLive.want(null);
    streamStatus();
  }

  /** The chart's data from the stream: the displayed period's windows of the live (or custom) range. */
  function renderLive() {
    const live = cam.live, r = cam.range;
    if (!live || !r || live.url !== r.streamUrl || state.view !== 'camera') return;
    const all = live.data.windows || [];
    const windows = r.live ? all.filter((w) => Date.parse(w.start) >= r.from) : all;
    showCameraData(Object.assign({}, live.data, {
      from: r.live ? isoSec(r.from) : live.data.from,
      to: r.live && windows.length ? windows[windows.length - 1].end : live.data.to,
      windows,
    }));
  }

  /** "revised 14:03, +37 late": from the window's own fields when the server gives them, else as seen live. */
  function revisionText(w) {
    const tz = state.tz;
    if (w.revised_at) {
      const at = Date.parse(w.revised_at);
      const late = typeof w.late_count === 'number' && w.late_count > 0 ? `, +${fmtInt(w.late_count)} late` : '';
      return isNaN(at) ? null : `revised ${fmtTime(at, tz, 'hm')}${late}`;
    }
    const seen = cam.revisions.get(w.start);
    if (!seen) return null;
    return `revised ${fmtTime(seen.at, tz, 'hm')}, ${seen.delta >= 0 ? '+' : ''}${fmtInt(seen.delta)} late`;
  }
  /** Under the chart: the latest revisions of the period's windows, and how many windows are incomplete. */
  function renderRevisions() {
    const el = $('camera-revisions');
    if (!el) return;
    const ws = cam.data ? cam.data.windows || [] : [];
    const revised = [];
    let incomplete = 0;
    for (const w of ws) {
      if (w.complete === false) incomplete++;
      const text = revisionText(w);
      if (text) revised.push({ w, text, at: w.revised_at ? Date.parse(w.revised_at) : cam.revisions.get(w.start).at });
    }
    revised.sort((a, b) => b.at - a.at);
    const parts = revised.slice(0, 3).map((r) =>
      `<span class="revision" data-start="${attr(r.w.start)}" data-count="${attr(r.w.count)}">${esc(fmtWindow(r.w, state.tz))}: ${esc(r.text)}</span>`);
    if (incomplete) parts.push(`<span class="incomplete-note">${fmtInt(incomplete)} incomplete window${incomplete === 1 ? '' : 's'}</span>`);
    el.innerHTML = parts.join(' · ');
    el.hidden = parts.length === 0;
  }

  function cameraMessage(text) {
    const el = $('camera-message');
    el.hidden = !text;
    el.textContent = text || '';
    if (text) $('csv-link').setAttribute('aria-disabled', 'true');
  }
  function clearChart() {
    cam.data = null; cam.dataKey = ''; cam.live = null; cam.revisions = new Map();
    cam.lanes = null; cam.lanesUrl = ''; cam.laneGeom = null; cam.health = null;
    for (const id of ['lane-chart', 'lane-legend', 'compliance-table', 'health-calendar', 'health-legend', 'report-links']) $(id).innerHTML = '';
    for (const id of ['lanes-note', 'compliance-when', 'health-tz']) $(id).textContent = '';
    $('compliance-table').dataset.start = '';
    if ($('camera-revisions')) $('camera-revisions').hidden = true;
    $('chart').innerHTML = '';
    $('camera-cards').innerHTML = '';
    $('chart-tooltip').hidden = true;
  }

  function renderCameraHealth() {
    const el = $('camera-health');
    const c = state.camera && state.camera.kvfv_id === cam.id ? state.camera : null;
    renderCameraTitle();
    if (!c) { el.innerHTML = ''; return; }
    const h = HEALTH[c.health] || { label: c.health, help: '' };
    el.innerHTML = `<span class="badge h-${attr(c.health)}" title="${esc(h.help)}">${esc(h.label)}</span>` +
      `<span class="subtle">last event ${fmtWhen(c.last_event_time, state.tz, state.serverTime)} · ` +
      `accepted ${fmtInt(c.accepted)} · duplicates ${fmtInt(c.duplicates)} · rejected ${fmtInt(c.rejected)}` +
      (c.backlog ? ` · <span data-backlog="${attr(c.backlog.events)}"${c.backlog.events > 0 ? ' class="warn-text"' : ''}>backlog ${fmtInt(c.backlog.events)}` +
        (c.backlog.since ? ` since ${fmtWhen(c.backlog.since, state.tz, state.serverTime)}` : '') + '</span>' : '') +
      (typeof c.missing === 'number' && c.missing > 0 ? ` · ${fmtInt(c.missing)} missing in gaps` : '') +
      (c.conflicting_duplicates > 0 ? ` · ${fmtInt(c.conflicting_duplicates)} conflicting resends` : '') + '</span>';
  }

  function periodSummary(windows) {
    let n = 0, sum = 0, inv = 0, empty = 0, latest = null;
    for (const w of windows) {
      if (!w.count) { empty++; continue; }
      n += w.count;
      sum += w.avg_speed * w.count; // exact: window sum = avg × count
      if (w.harmonic_mean_speed) inv += w.count / w.harmonic_mean_speed; // window Σ1/v
      latest = w;
    }
    return { n, avg: n ? sum / n : null, hm: n && inv ? n / inv : null, empty, latest };
  }

  function renderCameraCards() {
    const ws = cam.data.windows || [];
    const s = periodSummary(ws);
    const tz = state.tz;
    const latest = s.latest;
    const sameDay = latest && fmtTime(Date.parse(latest.start), tz, 'dayKey') === fmtTime(serverNow(), tz, 'dayKey');
    const latestWhen = !latest ? 'no vehicles in this period' : ws.length && Date.parse(latest.end) - Date.parse(latest.start) < DAY && sameDay ?
      `${fmtTime(Date.parse(latest.start), tz, 'hm')}–${fmtTime(Date.parse(latest.end), tz, 'hm')} · ${fmtInt(latest.count)} veh` :
      `${fmtWindow(latest, tz)} · ${fmtInt(latest.count)} veh`;
    const card = (id, label, value, unit, sub, data) =>
      `<div class="card" id="${id}"${data || ''}><div class="label">${label}</div>` +
      `<div class="value">${value}${unit ? `<span class="unit"> ${unit}</span>` : ''}</div><div class="sub">${sub}</div></div>`;
    $('camera-cards').innerHTML =
      card('card-latest', 'Latest avg speed', latest ? fmtSpeed(latest.avg_speed) : '—', 'km/h', esc(latestWhen),
        latest ? ` data-start="${attr(latest.start)}" data-avg-speed="${attr(latest.avg_speed)}" data-count="${attr(latest.count)}"` : '') +
      card('card-latest-v85', 'Latest V85', latest ? fmtInt(latest.p85_speed) : '—', 'km/h',
        latest ? `V15 ${fmtInt(latest.p15_speed)} · V50 ${fmtInt(latest.p50_speed)}` : '—') +
      card('card-avg', 'Period: avg speed', fmtSpeed(s.avg), 'km/h', 'time-mean, all vehicles') +
      card('card-hm', 'Period: harmonic mean', fmtSpeed(s.hm), 'km/h', 'space-mean speed') +
      card('card-count', 'Period: vehicles', fmtInt(s.n), '', `${fmtInt(ws.length)} windows of ${esc(cam.interval)}`) +
      card('card-empty', 'Empty windows', fmtInt(s.empty), '', s.empty ? 'drawn as gaps' : 'no gaps');
  }
  function fmtWindow(w, tz) {
    const a = Date.parse(w.start), b = Date.parse(w.end);
    if (b - a >= DAY) return fmtTime(a, tz, 'ymd');
    return `${fmtTime(a, tz, 'md')}, ${fmtTime(a, tz, 'hm')}–${fmtTime(b, tz, 'hm')}`;
  }

  // ------------------------------------------------------------ chart

  function niceStep(range, target) {
    const raw = range / Math.max(1, target);
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const m = raw / p;
    return (m <= 1 ? 1 : m <= 2 ? 2 : m <= 2.5 ? 2.5 : m <= 5 ? 5 : 10) * p;
  }
  const TICK_STEPS = [5 * MINUTE, 10 * MINUTE, 15 * MINUTE, 30 * MINUTE, HOUR, 2 * HOUR, 3 * HOUR, 6 * HOUR, 12 * HOUR, DAY, 2 * DAY, 7 * DAY, 14 * DAY, 30 * DAY];
  function timeTicks(from, to, tz, maxTicks, minStep) {
    const step = TICK_STEPS.find((s) => s >= minStep && (to - from) / s <= maxTicks) || TICK_STEPS[TICK_STEPS.length - 1];
    const ticks = [];
    let wall = Math.ceil((from + tzOffset(tz, from)) / step) * step;
    for (let guard = 0; guard < 200; guard++) {
      const t = wallToUtc(tz, wall);
      if (t > to) break;
      if (t >= from) ticks.push(t);
      wall += step;
    }
    return { step, ticks };
  }

  const f2 = (v) => Math.round(v * 10) / 10;

  function renderChart() {
    const svg = $('chart');
    const data = cam.data;
    if (!data) return;
    const ws = data.windows || [];
    const W = svg.clientWidth || 800, H = svg.clientHeight || 420;
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const fs = parseFloat(getComputedStyle(document.documentElement).fontSize) || 14;
    const m = { l: Math.round(fs * 3.6), r: Math.round(fs * 1.2), t: Math.round(fs * 1.2), b: Math.round(fs * 3) };
    const gapY = Math.round(fs * 2);
    const innerH = H - m.t - m.b - gapY;
    const sTop = m.t, sH = Math.round(innerH * 0.7), fTop = sTop + sH + gapY, fH = innerH - sH;
    const plotW = W - m.l - m.r;
    const t0 = ws.length ? Date.parse(ws[0].start) : cam.range.from;
    const t1 = ws.length ? Date.parse(ws[ws.length - 1].end) : cam.range.to;
    const x = (t) => m.l + ((t - t0) / (t1 - t0 || 1)) * plotW;

    let sMax = 0, cMax = 0;
    const starts = new Array(ws.length), ends = new Array(ws.length);
    for (let i = 0; i < ws.length; i++) {
      const w = ws[i];
      starts[i] = Date.parse(w.start); ends[i] = Date.parse(w.end);
      if (w.count > 0) {
        sMax = Math.max(sMax, w.p85_speed ?? 0, w.avg_speed ?? 0, w.harmonic_mean_speed ?? 0);
        cMax = Math.max(cMax, w.count);
      }
    }
    const sStep = niceStep(Math.max(sMax, 20) * 1.08, Math.max(3, Math.floor(sH / (fs * 3.2))));
    const sTopVal = Math.ceil((Math.max(sMax, 20) * 1.08) / sStep) * sStep;
    const ys = (v) => sTop + sH - (v / sTopVal) * sH;
    const cStep = cMax > 0 ? Math.max(1, niceStep(cMax, Math.max(2, Math.floor(fH / (fs * 2.6))))) : 1;
    const cTopVal = Math.max(cStep, Math.ceil(cMax / cStep) * cStep);
    const yc = (v) => fTop + fH - (v / cTopVal) * fH;
    cam.geom = { x, ys, yc, sTop, sH, fTop, fH, m, W, H, starts, ends, plotW };

    const out = [];
    out.push('<defs><pattern id="gap-pattern" width="8" height="8" patternUnits="userSpaceOnUse" patternTransform="rotate(45)">' +
      '<line class="gap-pattern-line" x1="0" y1="0" x2="0" y2="8"/></pattern></defs>');

    // Grid and axes.
    out.push('<g class="grid">');
    for (let v = 0; v <= sTopVal + 1e-9; v += sStep) {
      const y = f2(ys(v));
      out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}"/>`);
      out.push(`<text x="${m.l - 8}" y="${y}" dy="0.32em" text-anchor="end">${fmtInt(v)}</text>`);
    }
    for (let v = 0; v <= cTopVal + 1e-9; v += cStep) {
      const y = f2(yc(v));
      out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${y}" y2="${y}"/>`);
      out.push(`<text x="${m.l - 8}" y="${y}" dy="0.32em" text-anchor="end">${fmtInt(v)}</text>`);
    }
    const tz = state.tz;
    const { step, ticks } = timeTicks(t0, t1, tz, Math.max(2, Math.floor(plotW / (fs * 6.5))), INTERVAL_MS[cam.interval] >= DAY ? DAY : 0);
    let prevDay = '';
    for (const t of ticks) {
      const xx = f2(x(t));
      out.push(`<line x1="${xx}" x2="${xx}" y1="${sTop}" y2="${fTop + fH}"/>`);
      const day = fmtTime(t, tz, 'dayKey');
      const top = step >= DAY ? fmtTime(t, tz, 'md') : fmtTime(t, tz, 'hm');
      const bottom = step < DAY && day !== prevDay ? fmtTime(t, tz, 'md') : '';
      prevDay = day;
      out.push(`<text x="${xx}" y="${fTop + fH + fs * 1.3}" text-anchor="middle">${esc(top)}</text>`);
      if (bottom) out.push(`<text x="${xx}" y="${fTop + fH + fs * 2.5}" text-anchor="middle">${esc(bottom)}</text>`);
    }
    out.push('</g>');
    out.push(`<text class="axis-title" x="${m.l}" y="${sTop - fs * 0.45}" text-anchor="start">Speed, km/h</text>`);
    out.push(`<text class="axis-title" x="${m.l}" y="${fTop - fs * 0.45}" text-anchor="start">Vehicles per ${esc(data.interval || cam.interval)}</text>`);

    // Empty windows: hatched, merged into runs.
    const gaps = [];
    for (let i = 0; i < ws.length;) {
      if (ws[i].count > 0) { i++; continue; }
      let j = i;
      while (j + 1 < ws.length && !(ws[j + 1].count > 0)) j++;
      const xa = x(starts[i]), xb = x(ends[j]);
      gaps.push(`M${f2(xa)} ${sTop}h${f2(xb - xa)}v${sH}h${f2(xa - xb)}z`);
      i = j + 1;
    }
    if (gaps.length) out.push(`<path class="gap-fill" d="${gaps.join('')}"/>`);

    // Flow bars as one path.
    const bw = plotW / Math.max(1, ws.length);
    const pad = bw > 4 ? Math.min(bw * 0.15, 3) : 0;
    let bars = '';
    for (let i = 0; i < ws.length; i++) {
      const c = ws[i].count;
      if (!(c > 0)) continue;
      const xa = x(starts[i]) + pad, xb = x(ends[i]) - pad, y = yc(c);
      bars += `M${f2(xa)} ${f2(fTop + fH)}V${f2(y)}H${f2(Math.max(xb, xa + 0.6))}V${f2(fTop + fH)}z`;
    }
    out.push(`<path class="bars" d="${bars}"/>`);
    out.push(`<line class="baseline" x1="${m.l}" x2="${W - m.r}" y1="${sTop + sH}" y2="${sTop + sH}"/>`);
    out.push(`<line class="baseline" x1="${m.l}" x2="${W - m.r}" y1="${fTop + fH}" y2="${fTop + fH}"/>`);

    // Band and lines, broken at empty windows: one sub-path per run of non-empty windows.
    let band = '', avg = '', hm = '';
    const dots = [];
    const showDots = ws.length <= 120;
    for (let i = 0; i < ws.length;) {
      if (!(ws[i].count > 0)) { i++; continue; }
      let j = i;
      while (j + 1 < ws.length && ws[j + 1].count > 0) j++;
      const cx = (k) => f2(x((starts[k] + ends[k]) / 2));
      if (i === j) {
        const half = Math.max(2, bw * 0.35);
        const w = ws[i];
        if (w.p15_speed !== null && w.p85_speed !== null) {
          band += `M${f2(cx(i) - half)} ${f2(ys(w.p85_speed))}H${f2(cx(i) + half)}V${f2(ys(w.p15_speed))}H${f2(cx(i) - half)}z`;
        }
      } else {
        let top = '', bot = '';
        for (let k = i; k <= j; k++) top += `${k === i ? 'M' : 'L'}${cx(k)} ${f2(ys(ws[k].p85_speed ?? ws[k].avg_speed))}`;
        for (let k = j; k >= i; k--) bot += `L${cx(k)} ${f2(ys(ws[k].p15_speed ?? ws[k].avg_speed))}`;
        band += top + bot + 'z';
      }
      for (let k = i; k <= j; k++) {
        avg += `${k === i ? 'M' : 'L'}${cx(k)} ${f2(ys(ws[k].avg_speed))}`;
        if (ws[k].harmonic_mean_speed !== null) hm += `${k === i || ws[k - 1].harmonic_mean_speed === null ? 'M' : 'L'}${cx(k)} ${f2(ys(ws[k].harmonic_mean_speed))}`;
        if (showDots || i === j) {
          dots.push(`<circle class="avg-dot" cx="${cx(k)}" cy="${f2(ys(ws[k].avg_speed))}" r="${i === j ? 3 : 2.2}"/>`);
        }
      }
      i = j + 1;
    }
    out.push(`<path class="band" d="${band}"/>`);
    out.push(`<path class="hm-line" d="${hm}"/>`);
    out.push(`<path class="avg-line" d="${avg}"/>`);
    out.push(dots.join(''));

    if (!ws.some((w) => w.count > 0)) {
      out.push(`<text class="empty-note" x="${m.l + plotW / 2}" y="${sTop + sH / 2}" text-anchor="middle">No vehicles in this period</text>`);
    }

    // Windows the server says are incomplete (a gap in the camera's sequence): a dashed outline over the flow
    // area; windows revised by late events: a mark above their bar.
    let marks = '';
    for (let i = 0; i < ws.length; i++) {
      const w = ws[i];
      const xa = x(starts[i]), xb = x(ends[i]);
      if (w.complete === false) {
        marks += `<rect class="incomplete" x="${f2(xa + 0.5)}" y="${fTop}" width="${f2(Math.max(1, xb - xa - 1))}" height="${fH}"/>`;
      }
      if (revisionText(w)) {
        marks += `<circle class="revised-mark" cx="${f2((xa + xb) / 2)}" cy="${f2((w.count > 0 ? yc(w.count) : fTop + fH) - 5)}" r="3"/>`;
      }
    }
    if (marks) out.push(`<g class="marks">${marks}</g>`);

    // One transparent hit area per window: the hover target, and the window's numbers for tests and tools.
    out.push('<g class="windows">');
    for (let i = 0; i < ws.length; i++) {
      const w = ws[i];
      const xa = x(starts[i]);
      out.push(`<rect class="hit" data-i="${i}" data-start="${attr(w.start)}" data-end="${attr(w.end)}" data-count="${attr(w.count)}" ` +
        `data-avg-speed="${attr(w.avg_speed)}" data-harmonic-mean-speed="${attr(w.harmonic_mean_speed)}" ` +
        `data-p15-speed="${attr(w.p15_speed)}" data-p50-speed="${attr(w.p50_speed)}" data-p85-speed="${attr(w.p85_speed)}" ` +
        `data-complete="${attr(w.complete)}" data-late-count="${attr(w.late_count)}" data-revised-at="${attr(w.revised_at)}" ` +
        `data-revised="${revisionText(w) ? 'true' : 'false'}" ` +
        `x="${f2(xa)}" y="${sTop}" width="${f2(Math.max(0.5, x(ends[i]) - xa))}" height="${fTop + fH - sTop}"/>`);
    }
    out.push('</g><g id="chart-sel"></g>');

    svg.innerHTML = out.join('');
    svg.dataset.from = data.from || '';
    svg.dataset.to = data.to || '';
    svg.dataset.interval = data.interval || cam.interval;
    svg.dataset.kvfvId = data.kvfv_id || cam.id;
    svg.dataset.windows = String(ws.length);
    if (cam.sel >= ws.length) cam.sel = -1;
    renderSelection();
  }

  /** The selected window everywhere it shows: the chart's cursor and tooltip, the lane chart, the compliance table. */
  function renderSelection() {
    renderChartSelection();
    renderLaneSelection();
    renderCompliance();
    renderReports();
  }
  function renderChartSelection() {
    const g = $('chart-sel');
    const tip = $('chart-tooltip');
    const ws = cam.data ? cam.data.windows || [] : [];
    const i = cam.sel;
    if (!g || i < 0 || i >= ws.length || !cam.geom) {
      if (g) g.innerHTML = '';
      tip.hidden = true;
      return;
    }
    const { x, ys, yc, sTop, fTop, fH, starts, ends, W } = cam.geom;
    const w = ws[i];
    if (cam.selFromLanes) tip.hidden = true; // hovering the lane chart: its cursor and the table say it
    const cx = x((starts[i] + ends[i]) / 2);
    let html = `<line class="cursor" x1="${f2(cx)}" x2="${f2(cx)}" y1="${sTop}" y2="${fTop + fH}"/>`;
    if (w.count > 0) {
      html += `<rect class="sel-bar" x="${f2(x(starts[i]))}" y="${f2(yc(w.count))}" width="${f2(Math.max(1, x(ends[i]) - x(starts[i])))}" height="${f2(fTop + fH - yc(w.count))}"/>`;
      html += `<circle class="sel-dot" cx="${f2(cx)}" cy="${f2(ys(w.avg_speed))}" r="5" style="fill:var(--avg)"/>`;
      if (w.harmonic_mean_speed !== null) html += `<circle class="sel-dot" cx="${f2(cx)}" cy="${f2(ys(w.harmonic_mean_speed))}" r="4" style="fill:var(--hm)"/>`;
    }
    g.innerHTML = html;

    const ivMs = ends[i] - starts[i];
    const perHour = w.count * (HOUR / (ivMs || HOUR));
    const rows = w.count > 0 ? [
      ['Vehicles', `${fmtInt(w.count)} <small>(${fmtInt(perHour)} veh/h)</small>`],
      ['Average speed', `${fmtSpeed(w.avg_speed)} km/h`],
      ['Harmonic mean', `${fmtSpeed(w.harmonic_mean_speed)} km/h`],
      ['V15 / V50 / V85', `${fmtInt(w.p15_speed)} / ${fmtInt(w.p50_speed)} / ${fmtInt(w.p85_speed)}`],
      ['Min – max', `${fmtSpeed(w.min_speed)} – ${fmtSpeed(w.max_speed)}`],
      ['Std deviation', `${fmtSpeed(w.stddev_speed)} km/h`],
    ] : null;
    // Completeness and revisions, when the server (or the stream) tells: written to work with or without them.
    const extra = [];
    const rev = revisionText(w);
    if (rev) extra.push(['Revised', esc(rev)]);
    if (w.complete === false) {
      extra.push(['Complete', `no${typeof w.missing === 'number' && w.missing > 0 ? ` · ${fmtInt(w.missing)} missing` : ''}`]);
    } else if (w.complete === true) extra.push(['Complete', 'yes']);
    const dl = (list) => `<dl>${list.map(([k, v]) => `<dt>${k}</dt><dd data-field="${k}">${v}</dd>`).join('')}</dl>`;
    tip.innerHTML = `<div class="tt-title">${esc(fmtWindow(w, state.tz))}</div>` +
      (rows ? dl(rows.concat(extra)) : '<div class="tt-empty">No vehicles in this window</div>' + (extra.length ? dl(extra) : ''));
    tip.dataset.start = w.start;
    tip.hidden = !!cam.selFromLanes;
    // Place beside the cursor, flipping to the left in the right half.
    const svgBox = $('chart').getBoundingClientRect();
    const scale = svgBox.width / W || 1;
    const px = cx * scale;
    const tw = tip.offsetWidth;
    let left = px < svgBox.width / 2 ? px + 16 : px - tw - 16;
    left = clamp(left, 0, Math.max(0, svgBox.width - tw));
    tip.style.transform = `translate(${Math.round(left)}px, ${Math.round(sTop * scale + 8)}px)`;
    $('chart-readout').textContent = w.count > 0 ?
      `${fmtWindow(w, state.tz)}: ${w.count} vehicles, average ${fmtSpeed(w.avg_speed)} km/h, harmonic mean ${fmtSpeed(w.harmonic_mean_speed)}, V85 ${fmtInt(w.p85_speed)}.` :
      `${fmtWindow(w, state.tz)}: no vehicles.`;
  }

  function initCamera() {
    const sel = $('tz-select');
    const common = [...new Set([browserTz, ...COMMON_TZ])];
    let html = '<optgroup label="Common">' + common.map((z) =>
      `<option value="${esc(z)}">${esc(z === browserTz ? `${z} (this browser)` : z)}</option>`).join('') + '</optgroup>';
    try {
      const all = Intl.supportedValuesOf('timeZone').filter((z) => !common.includes(z));
      html += '<optgroup label="All time zones">' + all.map((z) => `<option value="${esc(z)}">${esc(z)}</option>`).join('') + '</optgroup>';
    } catch { /* older browser: the common list is enough */ }
    sel.innerHTML = html;
    if (!isValidTz(state.tz)) state.tz = 'UTC';
    if (![...sel.options].some((o) => o.value === state.tz)) {
      sel.insertAdjacentHTML('afterbegin', `<option value="${esc(state.tz)}">${esc(state.tz)}</option>`);
    }
    sel.value = state.tz;
    sel.addEventListener('change', () => {
      setTz(sel.value);
      cam.dataKey = '';
      if (state.view === 'camera') commitCameraControls(false);
    });

    $('camera-controls').addEventListener('submit', (e) => { e.preventDefault(); commitId(); });
    const commitId = () => {
      const v = $('camera-id').value.trim();
      if (!v || v === cam.id || !$('camera-id').checkValidity()) return;
      cam.id = v;
      cam.sel = -1;
      clearChart();
      commitCameraControls(true);
    };
    $('camera-id').addEventListener('change', commitId);
    let suggestTimer = 0;
    $('camera-id').addEventListener('input', (e) => {
      clearTimeout(suggestTimer);
      suggestTimer = setTimeout(() => suggestCameras(e.target.value.trim()), 150);
    });
    $('camera-id').addEventListener('focus', (e) => suggestCameras(e.target.value.trim()));
    for (const r of document.querySelectorAll('input[name="period"]')) {
      r.addEventListener('change', () => {
        cam.period = r.value;
        cam.interval = DEFAULT_INTERVAL[cam.period];
        if (cam.period === 'custom' && (isNaN(cam.customFrom) || isNaN(cam.customTo))) {
          cam.customTo = serverNow();
          cam.customFrom = cam.customTo - DAY;
        }
        commitCameraControls(false);
      });
    }
    for (const r of document.querySelectorAll('input[name="interval"]')) {
      r.addEventListener('change', () => { cam.interval = r.value; commitCameraControls(false); });
    }
    for (const id of ['custom-from', 'custom-to']) {
      $(id).addEventListener('change', () => {
        cam.customFrom = fromLocalInput($('custom-from').value, state.tz);
        cam.customTo = fromLocalInput($('custom-to').value, state.tz);
        commitCameraControls(false);
      });
    }
    $('csv-link').addEventListener('click', (e) => {
      if ($('csv-link').getAttribute('aria-disabled') === 'true') e.preventDefault();
    });

    const svg = $('chart');
    svg.addEventListener('mousemove', (e) => {
      const hit = e.target.closest && e.target.closest('.hit');
      if (!hit) return;
      const i = +hit.dataset.i;
      if (i !== cam.sel || cam.selFromLanes) { cam.sel = i; cam.selByKey = false; cam.selFromLanes = false; renderSelection(); }
    });
    svg.addEventListener('mouseleave', () => {
      if (!cam.selByKey) { cam.sel = -1; renderSelection(); }
    });
    svg.addEventListener('keydown', (e) => {
      const n = cam.data ? (cam.data.windows || []).length : 0;
      if (!n) return;
      const page = Math.max(1, Math.round(n / 10));
      const cur = cam.sel < 0 ? n - 1 : cam.sel;
      const next = { ArrowRight: cur + 1, ArrowLeft: cur - 1, PageDown: cur + page, PageUp: cur - page, Home: 0, End: n - 1 }[e.key];
      if (e.key === 'Escape') { cam.sel = -1; renderSelection(); return; }
      if (next === undefined) return;
      e.preventDefault();
      cam.sel = clamp(cam.sel < 0 && (e.key === 'ArrowLeft' || e.key === 'ArrowRight') ? n - 1 : next, 0, n - 1);
      cam.selByKey = true;
      cam.selFromLanes = false;
      renderSelection();
    });
    svg.addEventListener('focus', () => {
      const n = cam.data ? (cam.data.windows || []).length : 0;
      if (n && cam.sel < 0) {
        let k = n - 1;
        while (k > 0 && !(cam.data.windows[k].count > 0)) k--;
        cam.sel = k; cam.selByKey = true; cam.selFromLanes = false; renderSelection();
      }
    });
    svg.addEventListener('blur', () => { if (cam.selByKey) { cam.sel = -1; cam.selByKey = false; renderSelection(); } });

    let rto = 0;
    new ResizeObserver(() => {
      clearTimeout(rto);
      rto = setTimeout(() => {
        if (state.view === 'camera' && cam.data) renderChart();
        if (state.view === 'camera' && cam.lanes) renderLaneChart();
      }, 60);
    }).observe($('chart-wrap'));
    initLaneChart();
  }

  // ------------------------------------------------------------ per lane, compliance, health, reports

  const laneName = (lane) => (lane === 0 ? 'Unknown lane' : `Lane ${lane}`);
  /** Lanes are told apart by colour and dash (never colour alone); the unknown lane is grey and dotted. */
  const LANE_DASH = ['', '', '7 4', '2 3', '10 3 2 3', '4 4', '12 4', '1 4'];
  const laneClass = (lane) => (lane === 0 ? 'lane-0' : `lane-${((lane - 1) % 8) + 1}`);
  const laneDash = (lane) => (lane === 0 ? '1 4' : LANE_DASH[(lane - 1) % 8]);

  function showLaneData(d) {
    cam.lanes = d;
    renderLaneChart();
    renderCompliance();
  }

  /** Average speed per lane over the period (from `by=lane`), the limit in force as a dashed step line. */
  function renderLaneChart() {
    const svg = $('lane-chart');
    const d = cam.lanes;
    if (!d) { svg.innerHTML = ''; return; }
    const ws = d.windows || [];
    const lanes = d.lanes || [];
    const W = svg.clientWidth || 800, H = svg.clientHeight || 260;
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const fs = parseFloat(getComputedStyle(document.documentElement).fontSize) || 14;
    const m = { l: Math.round(fs * 3.6), r: Math.round(fs * 1.2), t: Math.round(fs * 1.2), b: Math.round(fs * 2.2) };
    const plotW = W - m.l - m.r, plotH = H - m.t - m.b;
    const starts = ws.map((w) => Date.parse(w.start)), ends = ws.map((w) => Date.parse(w.end));
    const t0 = ws.length ? starts[0] : 0, t1 = ws.length ? ends[ends.length - 1] : 1;
    const x = (t) => m.l + ((t - t0) / (t1 - t0 || 1)) * plotW;
    let vMax = 20;
    for (const g of lanes) for (const w of g.windows) if (w.count > 0) vMax = Math.max(vMax, w.avg_speed);
    for (const w of ws) if (w.speed_limit !== null && w.speed_limit !== undefined) vMax = Math.max(vMax, w.speed_limit);
    const step = niceStep(vMax * 1.08, Math.max(3, Math.floor(plotH / (fs * 3))));
    const top = Math.ceil((vMax * 1.08) / step) * step;
    const y = (v) => m.t + plotH - (v / top) * plotH;
    cam.laneGeom = { x, m, W, H, starts, ends, plotH };

    const out = ['<g class="grid">'];
    for (let v = 0; v <= top + 1e-9; v += step) {
      out.push(`<line x1="${m.l}" x2="${W - m.r}" y1="${f2(y(v))}" y2="${f2(y(v))}"/>` +
        `<text x="${m.l - 8}" y="${f2(y(v))}" dy="0.32em" text-anchor="end">${fmtInt(v)}</text>`);
    }
    const tz = state.tz;
    const { step: tStep, ticks } = timeTicks(t0, t1, tz, Math.max(2, Math.floor(plotW / (fs * 6.5))), INTERVAL_MS[cam.interval] >= DAY ? DAY : 0);
    for (const t of ticks) {
      const xx = f2(x(t));
      out.push(`<line x1="${xx}" x2="${xx}" y1="${m.t}" y2="${m.t + plotH}"/>` +
        `<text x="${xx}" y="${m.t + plotH + fs * 1.3}" text-anchor="middle">${esc(tStep >= DAY ? fmtTime(t, tz, 'md') : fmtTime(t, tz, 'hm'))}</text>`);
    }
    out.push('</g>');
    out.push(`<text class="axis-title" x="${m.l}" y="${m.t - fs * 0.45}">Average speed, km/h</text>`);

    // The limit in force per window (null where none, or where it changed within the window).
    let limit = '';
    for (let i = 0; i < ws.length; i++) {
      const l = ws[i].speed_limit;
      if (l === null || l === undefined) continue;
      const cont = i > 0 && ws[i - 1].speed_limit === l;
      limit += `${cont ? 'L' : 'M'}${f2(x(starts[i]))} ${f2(y(l))}L${f2(x(ends[i]))} ${f2(y(l))}`;
    }
    if (limit) out.push(`<path class="limit-line" d="${limit}"/>`);

    const dots = ws.length <= 400;
    const legend = [];
    for (const g of lanes) {
      const lw = g.windows || [];
      let path = '', pts = '', any = false;
      for (let i = 0; i < lw.length; i++) {
        const w = lw[i];
        if (!(w.count > 0)) continue;
        any = true;
        const cx = f2(x((Date.parse(w.start) + Date.parse(w.end)) / 2)), cy = f2(y(w.avg_speed));
        path += `${i > 0 && lw[i - 1].count > 0 ? 'L' : 'M'}${cx} ${cy}`;
        if (dots) {
          pts += `<circle class="lane-pt" cx="${cx}" cy="${cy}" r="2.4" data-lane="${g.lane}" data-start="${attr(w.start)}" ` +
            `data-count="${attr(w.count)}" data-avg-speed="${attr(w.avg_speed)}"/>`;
        }
      }
      const dash = laneDash(g.lane);
      out.push(`<g class="lane-series ${laneClass(g.lane)}" data-lane="${g.lane}">` +
        `<path class="lane-line" d="${path}"${dash ? ` stroke-dasharray="${dash}"` : ''}/>${pts}</g>`);
      legend.push(`<span class="key key-lane ${laneClass(g.lane)}${any ? '' : ' key-empty'}" data-lane="${g.lane}">` +
        `<svg viewBox="0 0 22 8" aria-hidden="true"><line x1="1" x2="21" y1="4" y2="4"${dash ? ` stroke-dasharray="${dash}"` : ''}/></svg>` +
        `${esc(laneName(g.lane))}${any ? '' : ' (no vehicles)'}</span>`);
    }
    if (limit) legend.push('<span class="key key-limit">Speed limit</span>');
    $('lane-legend').innerHTML = legend.join('');
    const withData = lanes.filter((g) => g.lane !== 0 && g.windows.some((w) => w.count > 0)).length;
    $('lanes-note').textContent = lanes.length === 0 ? '' : withData === 0 ?
      '(no lane numbers in this period: every vehicle is in the unknown lane)' : `(${withData} lane${withData === 1 ? '' : 's'} with vehicles)`;
    if (!lanes.some((g) => g.windows.some((w) => w.count > 0))) {
      out.push(`<text class="empty-note" x="${m.l + plotW / 2}" y="${m.t + plotH / 2}" text-anchor="middle">No vehicles in this period</text>`);
    }
    // Hover areas: the same selection as the main chart (and the compliance table).
    out.push('<g class="windows">');
    for (let i = 0; i < ws.length; i++) {
      out.push(`<rect class="hit" data-start="${attr(ws[i].start)}" x="${f2(x(starts[i]))}" y="${m.t}" ` +
        `width="${f2(Math.max(0.5, x(ends[i]) - x(starts[i])))}" height="${plotH}"/>`);
    }
    out.push('</g><g id="lane-sel"></g>');
    svg.innerHTML = out.join('');
    svg.dataset.from = d.from || '';
    svg.dataset.to = d.to || '';
    svg.dataset.lanes = lanes.map((g) => g.lane).join(',');
    renderLaneSelection();
  }
  function renderLaneSelection() {
    const g = $('lane-sel');
    if (!g) return;
    const w = selectedWindow();
    const geo = cam.laneGeom;
    if (!w || !geo) { g.innerHTML = ''; return; }
    const cx = f2(geo.x((Date.parse(w.start) + Date.parse(w.end)) / 2));
    g.innerHTML = `<line class="cursor" x1="${cx}" x2="${cx}" y1="${geo.m.t}" y2="${geo.m.t + geo.plotH}"/>`;
  }
  function initLaneChart() {
    const svg = $('lane-chart');
    svg.addEventListener('mousemove', (e) => {
      const hit = e.target.closest && e.target.closest('.hit');
      if (!hit || !cam.data) return;
      const i = (cam.data.windows || []).findIndex((w) => w.start === hit.dataset.start);
      if (i >= 0 && (i !== cam.sel || !cam.selFromLanes)) { cam.sel = i; cam.selByKey = false; cam.selFromLanes = true; renderSelection(); }
    });
    svg.addEventListener('mouseleave', () => { if (cam.selFromLanes) { cam.sel = -1; cam.selFromLanes = false; renderSelection(); } });
  }

  /** The window the compliance table shows: the selected one, else the latest with vehicles. */
  function selectedWindow() {
    const ws = cam.data ? cam.data.windows || [] : [];
    return cam.sel >= 0 && cam.sel < ws.length ? ws[cam.sel] : null;
  }
  function complianceWindowStart() {
    const sel = selectedWindow();
    if (sel) return { start: sel.start, selected: true };
    const ws = cam.lanes ? cam.lanes.windows || [] : [];
    for (let i = ws.length - 1; i >= 0; i--) if (ws[i].count > 0) return { start: ws[i].start, selected: false };
    return ws.length ? { start: ws[ws.length - 1].start, selected: false } : null;
  }
  /**
   * A period's figures from its windows: vehicles and over-limit counts add up exactly, the average is the
   * count-weighted mean, the flow is vehicles per hour of the period, the limit is the one in force if it never
   * changed. The pace band is a window's figure (it needs the speeds' histogram), so a period has none.
   */
  function periodFigures(ws) {
    const f = { count: 0, avg_speed: null, flow_rate: null, speed_limit: null, checked_count: null, pace_from: null, pace_to: null, pace_share: null };
    let sum = 0;
    const limits = new Set();
    const over = { over_limit: null, over_limit_10: null, over_limit_20: null };
    for (const w of ws) {
      if (w.count > 0) { f.count += w.count; sum += w.avg_speed * w.count; }
      if (typeof w.checked_count === 'number') {
        f.checked_count = (f.checked_count || 0) + w.checked_count;
        if (w.checked_count > 0 && w.speed_limit !== null && w.speed_limit !== undefined) limits.add(w.speed_limit);
        for (const k in over) if (typeof w[k] === 'number') over[k] = (over[k] || 0) + w[k];
      }
    }
    if (f.count) f.avg_speed = sum / f.count;
    const hours = ws.length ? (Date.parse(ws[ws.length - 1].end) - Date.parse(ws[0].start)) / HOUR : 0;
    f.flow_rate = hours > 0 ? f.count / hours : null;
    f.speed_limit = limits.size === 1 ? [...limits][0] : limits.size > 1 ? 'varies' : null;
    for (const k in over) {
      f[k] = over[k];
      f[k + '_share'] = over[k] !== null && f.checked_count ? over[k] / f.checked_count : null;
    }
    return f;
  }
  const COMPLIANCE_FIELDS = ['count', 'avg_speed', 'flow_rate', 'speed_limit', 'checked_count', 'over_limit', 'over_limit_share',
    'over_limit_10', 'over_limit_10_share', 'over_limit_20', 'over_limit_20_share', 'pace_from', 'pace_to', 'pace_share'];
  function complianceRow(scope, lane, f) {
    const data = COMPLIANCE_FIELDS.map((k) => ` data-${k.replace(/_/g, '-')}="${attr(f ? f[k] : null)}"`).join('');
    const overCell = (k) => !f || f[k + '_share'] === null || f[k + '_share'] === undefined ? '<td class="none">—</td>' :
      `<td>${fmtPct(f[k + '_share'])} <small>(${fmtInt(f[k])})</small></td>`;
    const limitCell = !f || f.speed_limit === null || f.speed_limit === undefined ?
      '<td class="none" title="no limit registered, or it changed within the window">—</td>' :
      f.speed_limit === 'varies' ? '<td>varies</td>' : `<td>${fmtInt(f.speed_limit)} km/h</td>`;
    const pace = f && f.pace_from !== null && f.pace_from !== undefined ?
      `${fmtInt(f.pace_from)}–${fmtInt(f.pace_to)} km/h <small>(${fmtPct(f.pace_share)})</small>` : '—';
    return `<tr data-scope="${scope}" data-lane="${lane === null ? 'all' : lane}"${data}>` +
      `<th scope="row">${lane === null ? 'All lanes' : esc(laneName(lane))}</th>` +
      `<td>${fmtInt(f ? f.count : null)}</td><td>${f && f.count ? fmtSpeed(f.avg_speed) + ' km/h' : '—'}</td>` +
      `<td>${f && f.flow_rate !== null && f.flow_rate !== undefined ? fmtInt(f.flow_rate) + ' veh/h' : '—'}</td>` +
      `${limitCell}<td>${f && f.checked_count !== null && f.checked_count !== undefined ? fmtInt(f.checked_count) : '—'}</td>` +
      `${overCell('over_limit')}${overCell('over_limit_10')}${overCell('over_limit_20')}<td>${pace}</td></tr>`;
  }
  /** Compliance per lane: for one window (selected or latest), and for the whole period shown. */
  function renderCompliance() {
    const table = $('compliance-table');
    const d = cam.lanes;
    if (!d) { table.innerHTML = ''; return; }
    const at = complianceWindowStart();
    const lanes = d.lanes || [];
    const find = (ws) => (at ? ws.find((w) => w.start === at.start) || null : null);
    const win = find(d.windows || []);
    const head = '<thead><tr><th scope="col">Lane</th><th scope="col">Vehicles</th><th scope="col">Avg speed</th>' +
      '<th scope="col">Flow</th><th scope="col">Limit</th><th scope="col">Checked</th><th scope="col">Over limit</th>' +
      '<th scope="col">Over +10</th><th scope="col">Over +20</th><th scope="col">Pace</th></tr></thead>';
    const tz = state.tz;
    const winLabel = win ? `${at.selected ? 'Selected window' : 'Latest window with vehicles'}: ${fmtWindow(win, tz)}` : 'No window';
    const periodLabel = d.windows && d.windows.length ?
      `Whole period: ${fmtWindow({ start: d.windows[0].start, end: d.windows[d.windows.length - 1].end }, tz)}` +
      (Date.parse(d.windows[d.windows.length - 1].end) - Date.parse(d.windows[0].start) > DAY ?
        ` – ${fmtTime(Date.parse(d.windows[d.windows.length - 1].end), tz, 'md')}` : '') : 'Whole period';
    let html = head + `<tbody class="window-rows" data-start="${attr(win ? win.start : '')}" data-end="${attr(win ? win.end : '')}">` +
      `<tr class="group-head"><th scope="rowgroup" colspan="10">${esc(winLabel)}</th></tr>` +
      complianceRow('window', null, win) + lanes.map((g) => complianceRow('window', g.lane, find(g.windows))).join('') + '</tbody>';
    html += `<tbody class="period-rows"><tr class="group-head"><th scope="rowgroup" colspan="10">${esc(periodLabel)} <small>(pace is per window)</small></th></tr>` +
      complianceRow('period', null, periodFigures(d.windows || [])) +
      lanes.map((g) => complianceRow('period', g.lane, periodFigures(g.windows))).join('') + '</tbody>';
    table.innerHTML = html;
    table.dataset.start = win ? win.start : '';
    $('compliance-when').textContent = win ? `(${at.selected ? 'selected' : 'latest'} window ${fmtWindow(win, tz)})` : '';
  }

  // The health calendar: the last 5 weeks of GET /kvfv/{id}/health, one cell a local day of the camera.
  const HEALTH_DAYS = 35;
  const dayMs = (key) => Date.parse(key + 'T00:00:00Z');
  const dayKey = (ms) => new Date(ms).toISOString().slice(0, 10);
  /** The time zone of the camera's days: its registered one, else UTC (the server's default for those). */
  const cameraTz = () => (cameraReg() && cameraReg().time_zone) || 'UTC';

  async function refreshHealth(gen) {
    if (!cam.id || !ID_RE.test(cam.id)) return;
    const tz = cameraTz();
    const today = fmtTime(serverNow(), tz, 'dayKey');
    const from = dayKey(dayMs(today) - (HEALTH_DAYS - 1) * DAY), to = dayKey(dayMs(today) + DAY);
    const url = `/kvfv/${encodeURIComponent(cam.id)}/health?` + new URLSearchParams({ from, to, tz });
    if (cam.health && cam.health.url === url && Date.now() - cam.health.at < HEALTH_MAX_AGE_MS) return;
    let result;
    try {
      result = { url, at: Date.now(), data: await getJSON(url) };
    } catch (err) {
      // Not fatal for the view: the calendar says what went wrong, the rest of the page carries on.
      result = { url, at: Date.now(), error: err instanceof HttpError && err.status === 404 ?
        'This server has no health endpoint for cameras.' : `Could not load the health days (${err.message}).` };
    }
    if (gen !== cam.gen) return;
    cam.health = result;
    renderHealthCalendar();
  }
  function dayTitle(d) {
    const st = DAY_STATUS[d.status] || { label: d.status };
    const others = (d.reasons || []).filter((r) => r !== d.status).map((r) => (DAY_STATUS[r] ? DAY_STATUS[r].label : r));
    const parts = [`${d.date}: ${st.label}${others.length ? ` (also ${others.join(', ')})` : ''}${d.partial ? ', day in progress' : ''}`];
    parts.push(`${fmtInt(d.count)} vehicles` + (d.expected ? ` of ${fmtInt(d.expected)} expected (${fmtPct(d.volume_share)})` : ''));
    if (d.rejected) {
      const by = Object.entries(d.rejected_by_reason || {}).map(([k, v]) => `${k} ${fmtInt(v)}`).join(', ');
      parts.push(`${fmtInt(d.rejected)} rejected (${fmtPct(d.rejection_share)}${by ? `: ${by}` : ''})`);
    }
    if (d.count) parts.push(`${fmtInt(d.distinct_speeds)} distinct speeds, σ ${fmt1(d.stddev_speed)} km/h`);
    if (typeof d.missing === 'number' && d.missing > 0) parts.push(`${fmtInt(d.missing)} missing passes`);
    if (d.unknown_lane_count) parts.push(`${fmtInt(d.unknown_lane_count)} in the unknown lane`);
    return parts.join(' · ');
  }
  function renderHealthCalendar() {
    const box = $('health-calendar');
    const h = cam.health;
    if (!h || h.error || !(h.data.days || []).length) cam.healthHtml = '';
    if (!h) { box.innerHTML = ''; return; }
    if (h.error) { box.innerHTML = `<p class="subtle" id="health-error">${esc(h.error)}</p>`; $('health-legend').innerHTML = ''; return; }
    const days = h.data.days || [];
    $('health-tz').textContent = `(days in ${h.data.tz || cameraTz()}; a day links to its daily report)`;
    if (!days.length) { box.innerHTML = '<p class="subtle">No days.</p>'; return; }
    const byDate = new Map(days.map((d) => [d.date, d]));
    const first = dayMs(days[0].date), last = dayMs(days[days.length - 1].date);
    // Weeks from Monday: back up from the first day to its Monday.
    const start = first - ((new Date(first).getUTCDay() + 6) % 7) * DAY;
    const names = ['Mon', 'Tue', 'Wed', 'Thu', 'Fri', 'Sat', 'Sun'];
    const full = ['Monday', 'Tuesday', 'Wednesday', 'Thursday', 'Friday', 'Saturday', 'Sunday'];
    let html = '<table class="health-cal" id="health-table"><caption class="sr-only">Health per day, the last five weeks</caption><thead><tr>' +
      names.map((n, i) => `<th scope="col" abbr="${full[i]}">${n}</th>`).join('') + '</tr></thead><tbody>';
    for (let wk = start; wk <= last; wk += 7 * DAY) {
      html += '<tr>';
      for (let k = 0; k < 7; k++) {
        const t = wk + k * DAY;
        const d = byDate.get(dayKey(t));
        if (!d) { html += '<td></td>'; continue; }
        const date = new Date(t);
        const label = date.getUTCDate() === 1 || t === first ? `${date.toLocaleString('en-US', { month: 'short', timeZone: 'UTC' })} ${date.getUTCDate()}` : String(date.getUTCDate());
        const title = dayTitle(d);
        html += `<td><a class="hc-cell hc-${attr(d.status)}${d.partial ? ' hc-partial' : ''}" href="/reports/daily?date=${attr(d.date)}&amp;format=csv" download ` +
          `data-date="${attr(d.date)}" data-status="${attr(d.status)}" data-reasons="${attr((d.reasons || []).join(','))}" ` +
          `data-count="${attr(d.count)}" data-expected="${attr(d.expected)}" data-partial="${d.partial ? 'true' : 'false'}" ` +
          `title="${attr(title)}" aria-label="${attr(title + '. Daily report, CSV')}">${esc(label)}</a></td>`;
      }
      html += '</tr>';
    }
    html += '</tbody></table>';
    if (cam.healthHtml !== html) {
      const focused = document.activeElement && box.contains(document.activeElement) ? document.activeElement.dataset.date : null;
      cam.healthHtml = html;
      box.innerHTML = html;
      const again = focused && box.querySelector(`[data-date="${focused}"]`);
      if (again) again.focus({ preventScroll: true });
    }
    const seen = new Set(days.map((d) => d.status));
    $('health-legend').innerHTML = Object.entries(DAY_STATUS).filter(([k]) => seen.has(k) || k === 'ok' || k === 'down')
      .map(([k, v]) => `<span class="key key-day hc-${k}" title="${esc(v.help)}">${esc(v.label)}</span>`).join('');
  }

  /** Links to the fleet's CSV reports: the selected window's day (else the period's last) and its month. */
  function renderReports() {
    const list = $('report-links');
    if (!cam.id || !cam.range) { list.innerHTML = ''; return; }
    const tz = cameraTz();
    const sel = selectedWindow();
    const at = sel ? Date.parse(sel.start) : Math.min(cam.range.to, serverNow()) - 1;
    const day = fmtTime(at, tz, 'dayKey'), month = day.slice(0, 7);
    const html =
      `<li><a id="report-daily" href="/reports/daily?date=${day}&amp;format=csv" download>Daily report, ${esc(day)}</a> ` +
      `<small class="subtle">one row per camera and lane</small></li>` +
      `<li><a id="report-monthly" href="/reports/monthly?month=${month}&amp;format=csv" download>Monthly report, ${esc(month)}</a></li>` +
      `<li><a id="lanes-csv" href="${attr(cam.range.csvUrl + '&by=lane')}" download>This camera's windows per lane</a> ` +
      `<small class="subtle">the period shown, as CSV</small></li>`;
    if (list.innerHTML !== html) list.innerHTML = html;
  }

  /** Suggestions for the camera field: the first 20 ids starting with what is typed (asked as you type). */
  let suggestGen = 0;
  async function suggestCameras(typed) {
    const gen = ++suggestGen;
    let page;
    try {
      // A name (with spaces, say) is no id prefix: then only the registry is searched.
      [page] = await Promise.all([
        typed && !ID_RE.test(typed) ? { cameras: [] } : loadCameraPage({ prefix: typed, limit: 20 }),
        loadRegistry(30000).catch(() => null)]);
    } catch { return; }
    if (gen !== suggestGen) return;
    const items = (page.cameras || []).map((c) => ({ id: c.kvfv_id, name: placeName(c.registry) }));
    // Registered cameras whose name or road contains what is typed, after the id matches.
    const needle = typed.toLowerCase();
    if (needle) {
      for (const r of registry.byId.values()) {
        if (items.length >= 40) break;
        const name = placeName(r);
        if (name && name.toLowerCase().includes(needle) && !items.some((i) => i.id === r.kvfv_id)) items.push({ id: r.kvfv_id, name });
      }
    }
    updateCameraList(items);
  }
  function updateCameraList(items) {
    const list = $('camera-list');
    const key = items.map((i) => i.id + '|' + i.name).join('\n');
    if (list.dataset.key === key) return;
    list.dataset.key = key;
    list.innerHTML = items.map((i) => `<option value="${esc(i.id)}"${i.name ? ` label="${attr(i.name)}"` : ''}></option>`).join('');
  }

  // ================================================================ map view

  const MAP_MARGIN = 48; // px of the drawing kept free around the cameras' bounding box
  const MAP_PAGE = 1000; // cameras per GET /kvfv page (the API's most)
  const MAP_MAX_PAGES = 20;
  const MAP_LABELS_UP_TO = 40; // more markers than this: names only in the tooltips
  const KM_PER_DEGREE = (Math.PI / 180) * 6371.0088; // along a meridian, on the mean Earth radius
  const map = { rows: new Map(), more: false, sel: null, gen: 0 };
  // The first page of the fleet (1,000 cameras in id order), pushed; rows beyond it are polled.
  const mapLive = new LiveStream('camera', (page) => {
    noteServerTime(page.server_time);
    for (const c of page.cameras || []) map.rows.set(c.kvfv_id, c);
    map.more = !!page.next;
    scheduleRender('map', () => { if (state.view === 'map') renderMap(); });
  }, (row) => {
    map.rows.set(row.kvfv_id, row);
    scheduleRender('map', () => { if (state.view === 'map') renderMap(); });
  });

  async function refreshMap() {
    await loadRegistry(map.rows.size ? 15000 : 0);
    mapLive.want('/kvfv/stream?' + pageQuery({ limit: MAP_PAGE }));
    // Polled: every page while the stream is down, the pages after the first while it is up.
    let after = null, pages = 0;
    if (mapLive.up) {
      if (!map.more) { renderMap(); return; }
      after = [...map.rows.keys()].sort(byCodePoint)[Math.min(map.rows.size, MAP_PAGE) - 1];
    }
    const rows = new Map();
    do {
      const page = await loadCameraPage({ limit: MAP_PAGE, after });
      for (const c of page.cameras || []) rows.set(c.kvfv_id, c);
      after = page.next;
    } while (after && ++pages < MAP_MAX_PAGES);
    for (const [id, c] of rows) map.rows.set(id, c);
    if (state.view === 'map') renderMap();
  }

  /**
   * The map's projection, equirectangular around the cameras: x grows with longitude·cos(φ̄) and y falls with
   * latitude, where φ̄ is the mean latitude of the cameras drawn, so that near them a kilometre east is as long
   * as a kilometre north. One scale k (px per degree of latitude) for both axes: the largest at which the
   * cameras' bounding box fits the W×H drawing less a margin M on every side; the box is centred.
   *
   *   u = lon · cos(φ̄), v = lat                                       (degrees)
   *   k = min((W − 2M) / (u_max − u_min), (H − 2M) / (v_max − v_min))  (a zero span is left out of the min;
   *                                                                     both zero, one place: k = 1000)
   *   x = W/2 + k · (u − (u_min + u_max)/2),   y = H/2 − k · (v − (v_min + v_max)/2)
   *
   * W and H are the SVG's viewBox (its size in CSS px), M is MAP_MARGIN (the SVG's data-margin). Good for a city
   * or a region: across 500 km at 60° N distances are off by under 1 %. Nothing is fetched to draw it.
   */
  function mapProjection(points, W, H, M) {
    const mean = points.reduce((a, p) => a + p.lat, 0) / points.length;
    const c = Math.cos((mean * Math.PI) / 180);
    let uMin = Infinity, uMax = -Infinity, vMin = Infinity, vMax = -Infinity;
    for (const p of points) {
      const u = p.lon * c;
      uMin = Math.min(uMin, u); uMax = Math.max(uMax, u); vMin = Math.min(vMin, p.lat); vMax = Math.max(vMax, p.lat);
    }
    const ks = [];
    if (uMax > uMin) ks.push((W - 2 * M) / (uMax - uMin));
    if (vMax > vMin) ks.push((H - 2 * M) / (vMax - vMin));
    const k = ks.length ? Math.min(...ks) : 1000;
    const uc = (uMin + uMax) / 2, vc = (vMin + vMax) / 2;
    return {
      k, cos: c, meanLat: mean,
      x: (lat, lon) => W / 2 + k * (lon * c - uc),
      y: (lat, lon) => H / 2 - k * (lat - vc),
      lat: (y) => vc + (H / 2 - y) / k,
      lon: (x) => (uc + (x - W / 2) / k) / c,
    };
  }
  const fmtDeg = (v, pos, neg, step) => `${Math.abs(v).toFixed(step >= 1 ? 0 : step >= 0.1 ? 1 : step >= 0.01 ? 2 : 3)}° ${v >= 0 ? pos : neg}`;

  function renderMap() {
    const svg = $('map');
    const W = Math.max(200, Math.round(svg.clientWidth || 900)), H = Math.max(200, Math.round(svg.clientHeight || 560));
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.dataset.margin = String(MAP_MARGIN);
    const regs = [...registry.byId.values()].sort((a, b) => byCodePoint(a.kvfv_id, b.kvfv_id));
    const placed = regs.filter((r) => typeof r.latitude === 'number' && typeof r.longitude === 'number');
    const unplaced = regs.filter((r) => !(typeof r.latitude === 'number' && typeof r.longitude === 'number'));
    const counts = { ok: 0, warn: 0, over: 0, none: 0 };
    const fs = parseFloat(getComputedStyle(document.documentElement).fontSize) || 14;
    const out = [];
    let markers = [];
    if (!registry.loadedAt) {
      out.push(`<text class="empty-note" x="${W / 2}" y="${H / 2}" text-anchor="middle">Loading the camera registry…</text>`);
    } else if (!placed.length) {
      out.push(`<text class="empty-note" x="${W / 2}" y="${H / 2}" text-anchor="middle">No registered camera has a position yet.</text>` +
        `<text class="empty-sub" x="${W / 2}" y="${H / 2 + fs * 1.6}" text-anchor="middle">Register cameras with a latitude and longitude (PUT /kvfv/{id}/registry, or speedflow cameras import).</text>`);
    } else {
      const pts = placed.map((r) => ({ r, lat: r.latitude, lon: r.longitude }));
      const P = mapProjection(pts, W, H, MAP_MARGIN);
      // Graticule: parallels and meridians at a round step, labelled on the left and bottom edges.
      const latSpan = P.lat(0) - P.lat(H), step = niceStep(latSpan, 5);
      const grid = [];
      for (let v = Math.ceil(P.lat(H) / step) * step; v <= P.lat(0); v += step) {
        const yy = f2(P.y(v, 0));
        grid.push(`<line x1="0" x2="${W}" y1="${yy}" y2="${yy}"/><text x="4" y="${yy}" dy="-0.3em">${esc(fmtDeg(v, 'N', 'S', step))}</text>`);
      }
      const lonStep = niceStep(P.lon(W) - P.lon(0), Math.max(3, Math.round(W / 160)));
      for (let v = Math.ceil(P.lon(0) / lonStep) * lonStep; v <= P.lon(W); v += lonStep) {
        const xx = f2(P.x(0, v));
        grid.push(`<line x1="${xx}" x2="${xx}" y1="0" y2="${H}"/><text x="${xx}" y="${H - 4}" dx="0.3em">${esc(fmtDeg(v, 'E', 'W', lonStep))}</text>`);
      }
      out.push(`<g class="graticule" aria-hidden="true">${grid.join('')}</g>`);
      // Roads: each road's cameras joined in kilometre order.
      const roads = new Map();
      for (const p of pts) if (p.r.road) (roads.get(p.r.road) || roads.set(p.r.road, []).get(p.r.road)).push(p);
      const roadOut = [];
      for (const [road, list] of roads) {
        if (list.length < 2) continue;
        list.sort((a, b) => (a.r.km ?? Infinity) - (b.r.km ?? Infinity) || byCodePoint(a.r.kvfv_id, b.r.kvfv_id));
        const d = list.map((p, i) => `${i ? 'L' : 'M'}${f2(P.x(p.lat, p.lon))} ${f2(P.y(p.lat, p.lon))}`).join('');
        const mid = list[Math.floor((list.length - 1) / 2)], next = list[Math.floor((list.length - 1) / 2) + 1];
        const lx = (P.x(mid.lat, mid.lon) + P.x(next.lat, next.lon)) / 2, ly = (P.y(mid.lat, mid.lon) + P.y(next.lat, next.lon)) / 2;
        roadOut.push(`<path class="road" d="${d}" data-road="${attr(road)}"/>` +
          `<text class="road-label" x="${f2(lx)}" y="${f2(ly)}" dy="-0.6em" text-anchor="middle">${esc(road)}</text>`);
      }
      out.push(`<g class="roads" aria-hidden="true">${roadOut.join('')}</g>`);
      // Scale bar, bottom left: a round number of km about 120 px long.
      const pxPerKm = P.k / KM_PER_DEGREE;
      if (isFinite(pxPerKm) && pxPerKm > 0) {
        const km = niceStep(120 / pxPerKm, 1), len = km * pxPerKm, x0 = 16, y0 = H - 28;
        out.push(`<g class="scale" aria-hidden="true"><path d="M${x0} ${y0 - 5}V${y0}H${f2(x0 + len)}V${y0 - 5}"/>` +
          `<text x="${f2(x0 + len / 2)}" y="${y0 - 8}" text-anchor="middle">${km >= 1 ? fmtInt(km) + ' km' : fmtInt(km * 1000) + ' m'}</text></g>`);
      }
      // Markers, the worst on top.
      const order = { none: 0, ok: 1, warn: 2, over: 3 };
      markers = pts.map((p) => {
        const row = map.rows.get(p.r.kvfv_id) || null;
        const reg = regOf(p.r.kvfv_id, row) || p.r;
        const speed = row ? row.current_avg_speed ?? null : null;
        const limit = reg.speed_limit ?? null;
        const cls = speedClass(speed, limit);
        counts[cls]++;
        return { p, row, reg, speed, limit, cls, x: P.x(p.lat, p.lon), y: P.y(p.lat, p.lon) };
      }).sort((a, b) => order[a.cls] - order[b.cls] || byCodePoint(a.p.r.kvfv_id, b.p.r.kvfv_id));
      const labels = markers.length <= MAP_LABELS_UP_TO;
      const mk = markers.map((m) => {
        const id = m.p.r.kvfv_id;
        const name = placeName(m.reg) || id;
        const figures = markerFigures(m);
        const right = m.x < W - 180;
        return `<a class="marker m-${m.cls}" href="#/camera/${attr(encodeURIComponent(id))}" data-kvfv-id="${attr(id)}" ` +
          `data-lat="${attr(m.p.lat)}" data-lon="${attr(m.p.lon)}" data-x="${attr(m.x)}" data-y="${attr(m.y)}" ` +
          `data-speed="${attr(m.speed)}" data-speed-limit="${attr(m.limit)}" data-speed-class="${m.cls}" ` +
          `aria-label="${attr(`${cameraLabel(id, m.reg)}: ${figures}`)}">` +
          `<circle class="marker-dot" cx="${f2(m.x)}" cy="${f2(m.y)}" r="9"/>` +
          (labels ? `<text class="marker-label" x="${f2(m.x + (right ? 13 : -13))}" y="${f2(m.y)}" dy="0.32em" text-anchor="${right ? 'start' : 'end'}">` +
            `${esc(name)}<tspan class="marker-speed"> ${m.speed === null ? '' : esc(fmtSpeed(m.speed))}</tspan></text>` : '') + '</a>';
      });
      out.push(`<g class="markers">${mk.join('')}</g>`);
    }
    // Redrawn only when something changed, and a focused marker keeps the focus (keyboard users step through them).
    const html = out.join('');
    if (html !== map.html) {
      const focused = document.activeElement && svg.contains(document.activeElement) ? document.activeElement.closest('.marker') : null;
      map.html = html;
      svg.innerHTML = html;
      const again = focused && svg.querySelector(`.marker[data-kvfv-id="${cssEscape(focused.dataset.kvfvId)}"]`);
      if (again) again.focus({ preventScroll: true });
    }
    svg.dataset.markers = String(markers.length);
    map.markers = markers;
    $('map-legend').innerHTML = Object.entries(SPEED_CLASS).map(([k, label]) =>
      `<span class="key key-speed m-${k}" data-speed-class="${k}"><svg viewBox="0 0 12 12" aria-hidden="true"><circle cx="6" cy="6" r="5"/></svg>` +
      `${esc(label)} <b>${fmtInt(counts[k])}</b></span>`).join('') +
      '<span class="key key-road">Road (cameras in km order)</span>';
    const unregistered = [...map.rows.keys()].filter((id) => !registry.byId.has(id)).length;
    $('map-count').textContent = registry.loadedAt ?
      `${fmtInt(markers.length)} of ${fmtInt(regs.length)} registered camera${regs.length === 1 ? '' : 's'} on the map` +
      (unregistered ? ` · ${fmtInt(unregistered)} sending events but not registered` : '') : '';
    const note = $('map-unplaced');
    note.hidden = unplaced.length === 0;
    note.innerHTML = unplaced.length ? `Registered without a position (not drawn): ` + unplaced.slice(0, 20).map((r) =>
      `<a href="#/camera/${attr(encodeURIComponent(r.kvfv_id))}">${esc(cameraLabel(r.kvfv_id, r))}</a>`).join(', ') +
      (unplaced.length > 20 ? ` and ${fmtInt(unplaced.length - 20)} more` : '') : '';
    if (map.sel) showMapTip(map.sel);
  }
  function markerFigures(m) {
    const parts = [m.speed === null ? 'no vehicles in the current 5 minutes' : `${fmtSpeed(m.speed)} km/h now`];
    parts.push(m.limit === null ? 'no limit' : `limit ${m.limit} km/h`);
    parts.push(SPEED_CLASS[m.cls].toLowerCase());
    return parts.join(', ');
  }
  function showMapTip(id) {
    const tip = $('map-tooltip');
    const m = (map.markers || []).find((k) => k.p.r.kvfv_id === id);
    if (!m) { tip.hidden = true; map.sel = null; return; }
    map.sel = id;
    const reg = m.reg, row = m.row;
    const h = row && HEALTH[row.health];
    const rows = [
      ['Camera', esc(id)],
      ['Road', reg.road ? esc(`${reg.road}${reg.direction ? ' · ' + reg.direction : ''}${typeof reg.km === 'number' ? ' · km ' + fmtKm(reg.km) : ''}`) : '—'],
      ['Now (5 min)', m.speed === null ? '—' : `${fmtSpeed(m.speed)} km/h`],
      ['Vehicles (5 min)', row ? fmtInt(row.current_count) : '—'],
      ['Limit', m.limit === null ? 'none' : `${m.limit} km/h`],
      ['Health', h ? esc(h.label) : row ? esc(row.health) : 'no events yet'],
    ];
    tip.innerHTML = `<div class="tt-title">${esc(placeName(reg) || id)}</div>` +
      `<dl>${rows.map(([k, v]) => `<dt>${k}</dt><dd>${v}</dd>`).join('')}</dl>` +
      `<div class="tt-status m-${m.cls}">${esc(SPEED_CLASS[m.cls])}</div>`;
    tip.dataset.kvfvId = id;
    tip.hidden = false;
    const svg = $('map'), box = svg.getBoundingClientRect();
    const W = svg.viewBox.baseVal.width || box.width, scale = box.width / W || 1;
    const px = m.x * scale, py = m.y * scale, tw = tip.offsetWidth, th = tip.offsetHeight;
    const left = clamp(px < box.width / 2 ? px + 18 : px - tw - 18, 0, Math.max(0, box.width - tw));
    const top = clamp(py - th / 2, 0, Math.max(0, box.height - th));
    tip.style.transform = `translate(${Math.round(left)}px, ${Math.round(top)}px)`;
  }
  function initMap() {
    const svg = $('map');
    const over = (e) => {
      const a = e.target.closest && e.target.closest('.marker');
      if (a) showMapTip(a.dataset.kvfvId);
    };
    const out = (e) => {
      const a = e.target.closest && e.target.closest('.marker');
      if (a && !(e.relatedTarget && a.contains(e.relatedTarget))) { map.sel = null; $('map-tooltip').hidden = true; }
    };
    svg.addEventListener('mouseover', over);
    svg.addEventListener('focusin', over);
    svg.addEventListener('mouseout', out);
    svg.addEventListener('focusout', out);
    let rto = 0;
    new ResizeObserver(() => {
      clearTimeout(rto);
      rto = setTimeout(() => { if (state.view === 'map') renderMap(); }, 60);
    }).observe($('map-wrap'));
  }

  // ================================================================ ingest view

  async function refreshIngest() {
    recordStats(await getJSON('/stats'));
    if (state.view === 'ingest') renderIngest();
  }

  function renderIngest() {
    const s = state.stats;
    if (!s) return;
    $('ingest-uptime').textContent = `Server up ${fmtDuration(s.uptime_seconds)} · as of ${fmtTime(Date.parse(s.server_time), state.tz, 'hms')} ${state.tz}`;
    const card = (label, value, sub, id) =>
      `<div class="card"${id ? ` id="${id}"` : ''}><div class="label">${label}</div><div class="value">${value}</div><div class="sub">${sub}</div></div>`;
    $('ingest-cards').innerHTML =
      card('Accepted', `${fmt1(s.accepted_per_second)}<span class="unit"> /s</span>`, `${fmtInt(s.accepted_total)} total`, 'ingest-accepted') +
      card('Duplicates', `${fmt1(s.duplicates_per_second)}<span class="unit"> /s</span>`, `${fmtInt(s.duplicates_total)} total · never counted twice`, 'ingest-duplicates') +
      card('Rejected', `${fmt1(s.rejected_per_second)}<span class="unit"> /s</span>`, `${fmtInt(s.rejected_total)} total`, 'ingest-rejected') +
      card('Queue depth', fmtInt(s.queue_depth), 'events waiting to aggregate') +
      card('Log size', esc(fmtBytes(s.log_bytes)), 'durable event log');

    // Rejections by reason.
    const reasons = Object.entries(s.rejected_by_reason || {}).sort((a, b) => b[1] - a[1]);
    const rmax = Math.max(1, ...reasons.map((r) => r[1]));
    $('reject-reasons').innerHTML = reasons.length === 0 ? '<p class="subtle">No rejected events.</p>' :
      reasons.map(([k, v]) => `<div class="bar-row" data-reason="${attr(k)}" data-count="${attr(v)}"><code>${esc(k)}</code>` +
        `<span class="bar-track" aria-hidden="true"><i style="width:${((v / rmax) * 100).toFixed(1)}%"></i></span>` +
        `<span class="n">${fmtInt(v)}</span></div>`).join('');

    renderRateChart();
    renderLateness(s.lateness || []);
  }

  function renderRateChart() {
    const svg = $('rate-chart');
    const h = state.rateHistory;
    const W = svg.clientWidth || 500, H = svg.clientHeight || 160;
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    const fs = parseFloat(getComputedStyle(document.documentElement).fontSize) || 14;
    const m = { l: fs * 3.4, r: 8, t: 8, b: fs * 1.6 };
    if (h.length < 2) {
      svg.innerHTML = `<text x="${W / 2}" y="${H / 2}" text-anchor="middle">Collecting…</text>`;
      return;
    }
    const t0 = h[0].t, t1 = h[h.length - 1].t;
    const vmax = Math.max(1, ...h.map((p) => p.v));
    const step = Math.max(1, niceStep(vmax, 3));
    const top = Math.ceil(vmax / step) * step;
    const x = (t) => m.l + ((t - t0) / (t1 - t0 || 1)) * (W - m.l - m.r);
    const y = (v) => m.t + (1 - v / top) * (H - m.t - m.b);
    let grid = '';
    for (let v = 0; v <= top + 1e-9; v += step) {
      grid += `<line x1="${m.l}" x2="${W - m.r}" y1="${f2(y(v))}" y2="${f2(y(v))}"/><text x="${m.l - 6}" y="${f2(y(v))}" dy="0.32em" text-anchor="end">${fmtInt(v)}</text>`;
    }
    const line = h.map((p, i) => `${i ? 'L' : 'M'}${f2(x(p.t))} ${f2(y(p.v))}`).join('');
    const area = `${line}L${f2(x(t1))} ${f2(y(0))}L${f2(x(t0))} ${f2(y(0))}z`;
    svg.innerHTML = `<g class="grid">${grid}</g><path class="area" d="${area}"/><path class="line" d="${line}"/>` +
      `<text x="${m.l}" y="${H - 4}">${esc(fmtTime(t0, state.tz, 'hms'))}</text>` +
      `<text x="${W - m.r}" y="${H - 4}" text-anchor="end">${esc(fmtTime(t1, state.tz, 'hms'))}</text>`;
  }

  function latenessLabel(prev, le) {
    const d = (s) => (s < 60 ? `${s} s` : s < 3600 ? `${s / 60} min` : s < 86400 ? `${s / 3600} h` : `${s / 86400} d`);
    if (le === null || le === undefined) return `> ${d(prev)}`;
    if (prev === null) return `≤ ${d(le)}`;
    return `${d(prev)} – ${d(le)}`;
  }

  function renderLateness(buckets) {
    const svg = $('lateness-chart');
    const total = buckets.reduce((a, b) => a + (b.count || 0), 0);
    let prev = null;
    const items = buckets.map((b) => {
      const it = { label: latenessLabel(prev, b.le_seconds), count: b.count || 0, le: b.le_seconds };
      prev = b.le_seconds;
      return it;
    });
    const W = svg.clientWidth || 800, H = svg.clientHeight || 220;
    svg.setAttribute('viewBox', `0 0 ${W} ${H}`);
    svg.setAttribute('aria-label', 'Lateness histogram: ' + items.map((i) => `${i.label}: ${i.count}`).join(', '));
    const fs = parseFloat(getComputedStyle(document.documentElement).fontSize) || 14;
    const m = { l: 8, r: 8, t: fs * 1.6, b: fs * 1.8 };
    const cmax = Math.max(1, ...items.map((i) => i.count));
    const bw = (W - m.l - m.r) / Math.max(1, items.length);
    let html = '';
    items.forEach((it, k) => {
      const h = (it.count / cmax) * (H - m.t - m.b);
      const xx = m.l + k * bw;
      const late = it.le === null || it.le > 600;
      html += `<rect class="bar${late ? ' late' : ''}" x="${f2(xx + bw * 0.12)}" y="${f2(H - m.b - h)}" width="${f2(bw * 0.76)}" height="${f2(Math.max(h, it.count ? 1 : 0))}"/>`;
      html += `<text class="count" x="${f2(xx + bw / 2)}" y="${f2(H - m.b - h - 5)}" text-anchor="middle">${fmtInt(it.count)}</text>`;
      html += `<text x="${f2(xx + bw / 2)}" y="${f2(H - 5)}" text-anchor="middle">${esc(it.label)}</text>`;
    });
    svg.innerHTML = `<g class="grid"><line x1="${m.l}" x2="${W - m.r}" y1="${H - m.b}" y2="${H - m.b}"/></g>` + html;
    let cum = 0;
    $('lateness-table').innerHTML = '<thead><tr><th scope="col">Arrived after</th><th scope="col">Events</th><th scope="col">Share</th><th scope="col">Cumulative</th></tr></thead><tbody>' +
      items.map((it) => {
        cum += it.count;
        const pct = (v) => (total ? `${((v / total) * 100).toFixed(1)} %` : '—');
        return `<tr><td>${esc(it.label)}</td><td>${fmtInt(it.count)}</td><td>${pct(it.count)}</td><td>${pct(cum)}</td></tr>`;
      }).join('') + '</tbody>';
  }

  // ================================================================ start

  function init() {
    initFleet();
    initMap();
    initCamera();
    $('pause-btn').addEventListener('click', togglePause);
    document.addEventListener('keydown', (e) => {
      const t = e.target;
      const typing = t && (t.tagName === 'INPUT' || t.tagName === 'SELECT' || t.tagName === 'TEXTAREA');
      if (typing || e.ctrlKey || e.metaKey || e.altKey) return;
      if (e.key === '/' && state.view === 'fleet') { e.preventDefault(); $('fleet-filter').focus(); }
      else if (e.key === 'p') togglePause();
    });
    document.addEventListener('visibilitychange', () => { if (!document.hidden) refreshNow(); });
    window.addEventListener('hashchange', onRoute);
    setInterval(setStatus, 1000);
    onRoute();
  }
  function togglePause() {
    state.paused = !state.paused;
    $('pause-btn').setAttribute('aria-pressed', String(state.paused));
    $('pause-btn').textContent = state.paused ? 'Resume' : 'Pause';
    setStatus();
    if (!state.paused) refreshNow();
  }

  init();
})();
