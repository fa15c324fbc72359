// The edge browser client: subscribe to channels over WebSocket, Server-Sent
// Events or long-polling, whichever gets through, with one cursor across
// all of them. Plain JavaScript, no build step. The edge serves this file at
// /v1/client.js as an ES module and at /v1/client.js?classic as a classic
// script that defines globalThis.edge. Types: /v1/client.d.ts.

const VERSION = "1";

const DEFAULTS = {
  transports: ["ws", "sse", "poll"],
  since: "",
  openTimeout: 8000,
  probeTimeout: 3000,
  minDelay: 1000,
  maxDelay: 30000,
  stableAfter: 30000,
  upgradeAfter: 60000,
  remember: true,
  rememberFor: 7 * 24 * 3600 * 1000,
  pauseWhenHidden: true,
  hiddenDelay: 10000,
  heartbeat: 25000,
  pollTimeout: 25000,
  hiddenHeartbeat: 120000,
  hiddenPollTimeout: 60000,
  linger: 0,
  padding: 0,
  token: "",
  presence: false,
  info: "",
  delta: false,
  conflate: "",
  compress: false,
  onMessage() {},
  onGap() {},
  onPresence() {},
  onStateChange() {},
  onError() {},
};

// LATER holds the error codes that mean "try again later", not "never".
const LATER = new Set(["unavailable", "shutting_down"]);

// Longest SSE line or event the client buffers (the edge's payloads are far
// smaller); a stream that sends more is treated as broken.
const MAX_EVENT_BYTES = 32 << 20;

// compareIDs orders two message ids "<ms>-<seq>" (decimal, no leading zeros).
function compareIDs(a, b) {
  const [am, as] = a.split("-");
  const [bm, bs] = b.split("-");
  return compareDecimal(am, bm) || compareDecimal(as || "0", bs || "0");
}

function compareDecimal(a, b) {
  if (a.length !== b.length) return a.length < b.length ? -1 : 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function base64url(text) {
  return btoa(text).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function unbase64url(text) {
  return atob(text.replace(/-/g, "+").replace(/_/g, "/"));
}

// parseCursor reads a cursor the edge gave out: a bare id for one channel,
// or "m." and base64url("chan=id,chan=id") for several.
function parseCursor(cursor, channels) {
  const out = new Map();
  if (!cursor) return out;
  if (!cursor.startsWith("m.")) {
    if (channels.length === 1) out.set(channels[0], cursor);
    return out;
  }
  let raw;
  try {
    raw = unbase64url(cursor.slice(2));
  } catch {
    return out;
  }
  for (const part of raw.split(",")) {
    const i = part.indexOf("=");
    if (i > 0) out.set(part.slice(0, i), part.slice(i + 1));
  }
  return out;
}

// backoff is a full-jitter delay: uniform in [0, min(max, min*2^attempt)).
function backoff(attempt, min, max, random = Math.random) {
  return Math.floor(random() * Math.min(max, min * 2 ** Math.min(attempt, 30)));
}

// seconds writes a duration for the edge: whole seconds as "25s", others
// as "1250ms" (the edge reads both).
function seconds(ms) {
  ms = Math.max(0, Math.ceil(ms));
  return ms % 1000 === 0 ? ms / 1000 + "s" : ms + "ms";
}

// Deltas (the delta option): the edge may send a message as a Fossil
// delta ("delta":"<base id>") that turns the previous message of its
// channel and key, which the client holds, into it. The decoder below
// follows the format's description (fossil-scm.org, delta_format.wiki):
// a header "<size>\n", then commands "<n>@<offset>," (copy n bytes of
// the base from offset), "<n>:<n bytes>" (insert them) and "<sum>;"
// (the end, with the checksum of the output), every number written in
// base 64 with the digits 0-9 A-Z _ a-z ~, most significant first.

const DELTA_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~";
const DELTA_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < DELTA_DIGITS.length; i++) DELTA_VALUE[DELTA_DIGITS.charCodeAt(i)] = i;

// MAX_DELTA_BASES bounds the payloads the client keeps as bases (per
// channel and key), as the edge bounds the keys it keeps per channel.
const MAX_DELTA_BASES = 1024;

// deltaChecksum is the format's checksum: the sum, modulo 2^32, of the
// bytes read as big-endian 32-bit words, the last one padded with zeros.
function deltaChecksum(b) {
  let sum = 0;
  let i = 0;
  for (; i + 4 <= b.length; i += 4) sum = (sum + ((b[i] << 24) | (b[i + 1] << 16) | (b[i + 2] << 8) | b[i + 3])) >>> 0;
  let tail = 0;
  for (let k = 0; i + k < b.length; k++) tail |= b[i + k] << (24 - 8 * k);
  return (sum + (tail >>> 0)) >>> 0;
}

// applyDelta returns the bytes delta turns base into, or throws when the
// delta is malformed, does not fit base, or its checksum does not match.
function applyDelta(base, delta) {
  let pos = 0;
  const int = () => {
    let v = 0;
    const start = pos;
    while (pos < delta.length && delta[pos] < 128 && DELTA_VALUE[delta[pos]] >= 0) {
      v = v * 64 + DELTA_VALUE[delta[pos++]];
      if (v > 0xffffffff) throw new Error("delta: number too large");
    }
    if (pos === start) throw new Error("delta: number expected");
    return v;
  };
  const size = int();
  if (delta[pos++] !== 0x0a) throw new Error("delta: bad header");
  const out = new Uint8Array(size);
  let n = 0;
  while (pos < delta.length) {
    const cnt = int();
    const op = delta[pos++];
    if (op === 0x40) { // @ copy
      const ofst = int();
      if (delta[pos++] !== 0x2c) throw new Error("delta: copy without ','");
      if (ofst + cnt > base.length || n + cnt > size) throw new Error("delta: copy out of bounds");
      out.set(base.subarray(ofst, ofst + cnt), n);
      n += cnt;
    } else if (op === 0x3a) { // : insert
      if (pos + cnt > delta.length || n + cnt > size) throw new Error("delta: insert out of bounds");
      out.set(delta.subarray(pos, pos + cnt), n);
      pos += cnt;
      n += cnt;
    } else if (op === 0x3b) { // ; end
      if (n !== size) throw new Error("delta: size mismatch");
      if (deltaChecksum(out) !== cnt) throw new Error("delta: checksum mismatch");
      return out;
    } else {
      throw new Error("delta: unknown command");
    }
  }
  throw new Error("delta: no end");
}

// payloadBytes returns a message's payload as bytes.
function payloadBytes(m) {
  if (m.encoding === "base64") return Uint8Array.from(atob(m.data), (c) => c.charCodeAt(0));
  return new TextEncoder().encode(m.data);
}

// withPayload returns m carrying bytes as the edge sends a full message:
// text when it is UTF-8, else base64 with encoding "base64".
function withPayload(m, bytes) {
  const out = { ...m };
  delete out.delta;
  delete out.encoding;
  try {
    out.data = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true }).decode(bytes);
  } catch {
    let bin = "";
    for (let i = 0; i < bytes.length; i += 0x8000) bin += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
    out.data = btoa(bin);
    out.encoding = "base64";
  }
  return out;
}

// EdgeError is an error the edge answered with ({"error":{code,message}}),
// or a transport failure (code "transport").
class EdgeError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.name = "EdgeError";
    this.code = code;
    this.status = status;
  }
}

async function readEdgeError(resp) {
  try {
    const body = await resp.json();
    if (body && body.error && typeof body.error.code === "string") {
      return new EdgeError(body.error.code, String(body.error.message || body.error.code), resp.status);
    }
  } catch {
    // not the edge's JSON: a proxy answered
  }
  return null;
}

// A Link is one attempt to receive over one transport. It reports to its
// subscription through these calls: opened(), messages(list), gap(channel),
// position(channel, id), ended({opened, hint, error, fatal, edgeAnswered,
// outcome, status, code}); outcome, status and code say how an attempt
// that never opened failed (Subscription.probes).
class Link {
  constructor(sub, kind, timeout) {
    this.sub = sub;
    this.kind = kind;
    this.isOpen = false;
    this.done = false;
    this.hint = undefined;
    this.since = Date.now();
    this.started = Date.now();
    this.openTimer = setTimeout(() => this.fail(new EdgeError("transport", `${kind}: nothing arrived within ${timeout} ms`), { outcome: "timeout" }), timeout);
  }

  markOpen() {
    if (this.done || this.isOpen) return;
    this.isOpen = true;
    clearTimeout(this.openTimer);
    this.sub.linkOpened(this);
  }

  // fail ends the link because its path broke.
  fail(error, extra = {}) {
    this.finish({ error, ...extra });
  }

  finish(result) {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.openTimer);
    this.stop();
    this.sub.linkEnded(this, { opened: this.isOpen, hint: this.hint, ...result });
  }

  // close ends the link without reporting.
  close() {
    if (this.done) return;
    this.done = true;
    clearTimeout(this.openTimer);
    this.stop();
  }

  url(transport, extra) {
    const u = new URL("/v1/subscribe", this.sub.base);
    for (const ch of this.sub.channels) u.searchParams.append("channel", ch);
    const cursor = this.sub.cursor;
    if (cursor) u.searchParams.set("since", cursor);
    const token = this.sub.token();
    if (token) u.searchParams.set("access_token", token);
    u.searchParams.set("transport", transport);
    if (this.sub.opts.presence) u.searchParams.set("presence", "1");
    // A long-poll, which the edge trusts to hold every message up to its
    // cursor, asks only once the client holds a payload to apply one to.
    this.delta = this.sub.deltaOn() && !this.noDelta && (transport !== "poll" || this.sub.bases.size > 0);
    if (this.delta) u.searchParams.set("delta", "fossil");
    if (this.sub.opts.info) u.searchParams.set("info", this.sub.opts.info);
    if (this.sub.opts.conflate) u.searchParams.set("conflate", this.sub.opts.conflate);
    if (this.sub.opts.compress) u.searchParams.set("compress", "1");
    for (const [k, v] of Object.entries(extra)) u.searchParams.set(k, v);
    return u;
  }

  disconnect(d) {
    if (d && typeof d.retry_ms === "number") this.hint = d.retry_ms;
    if (d && d.reconnect === false) {
      this.finish({ fatal: true, error: new EdgeError(d.reason || "disconnect", `the edge ended the subscription (${d.code} ${d.reason})`) });
    }
  }
}

class WSLink extends Link {
  constructor(sub, timeout) {
    super(sub, "ws", timeout);
    this.long = sub.background();
    this.quiet = this.beat = sub.heartbeat();
    const u = this.url("ws", { heartbeat: seconds(this.quiet) });
    u.protocol = u.protocol === "https:" ? "wss:" : "ws:";
    try {
      this.ws = new WebSocket(u);
    } catch (e) {
      queueMicrotask(() => this.fail(new EdgeError("transport", "ws: " + e.message)));
      return;
    }
    this.ws.onmessage = (e) => this.frame(e.data);
    this.ws.onclose = (e) => this.closed(e);
  }

  frame(text) {
    if (this.done || typeof text !== "string") return;
    let f;
    try {
      f = JSON.parse(text);
    } catch {
      return this.fail(new EdgeError("transport", "ws: a frame is not JSON"));
    }
    // The first frame (a subscribed acknowledgement, or history before it)
    // proves the path: a stripped or hanging upgrade never gets here.
    this.markOpen();
    this.watch();
    if (Array.isArray(f)) return this.sub.messages(f);
    switch (f && f.type) {
      case undefined:
        return this.sub.messages([f]); // a message, or a join or leave
      case "subscribed":
        return this.sub.position(f.channel, f.id);
      case "gap":
        return this.sub.gap(f.channel);
      case "disconnect":
        return this.disconnect(f);
      case "error": {
        // An edge older than the ping op refuses it, which proves the path
        // just as well (a page may meet one during a rolling upgrade).
        if (f.ref === "ping") return;
        const code = String((f.error && f.error.code) || "error");
        const error = new EdgeError(code, String((f.error && f.error.message) || code));
        return LATER.has(code) ? this.fail(error, { edgeAnswered: true }) : this.finish({ fatal: true, error });
      }
    }
  }

  // watch restarts the silence timer. Pages cannot see WebSocket pings, so
  // after a heartbeat without a frame the client sends a ping op; a path
  // that died silently (a NAT that forgot the connection, a network
  // switch) answers nothing, and after another heartbeat and 5 s the link
  // is treated as dead and reconnects from the cursor. The edge skips its
  // own ping when it answered one, so the radio wakes once a heartbeat.
  watch() {
    clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => {
      if (this.ws.readyState === WebSocket.OPEN) this.ws.send('{"op":"ping","ref":"ping"}');
      this.silenceTimer = setTimeout(() => this.fail(new EdgeError("transport", "ws: no answer to a ping")), this.quiet + 5000);
    }, this.quiet);
  }

  closed(e) {
    if (e.code >= 4500 && e.code < 5000) {
      return this.finish({ fatal: true, error: new EdgeError(e.reason || "closed", `ws: the edge closed with ${e.code} ${e.reason}`) });
    }
    this.fail(new EdgeError("transport", `ws: closed (${e.code}${e.reason ? " " + e.reason : ""})`), { edgeAnswered: e.code >= 4000 || e.code === 1012, code: e.code });
  }

  stop() {
    clearTimeout(this.silenceTimer);
    if (!this.ws) return;
    this.ws.onmessage = this.ws.onclose = null;
    if (this.ws.readyState <= WebSocket.OPEN) this.ws.close();
  }
}

// HTTPLink is the part SSE and long-polling share: fetch with an abort
// controller and the edge's JSON errors.
class HTTPLink extends Link {
  constructor(sub, kind, timeout) {
    super(sub, kind, timeout);
    this.abort = new AbortController();
  }

  stop() {
    this.abort.abort();
  }

  // answered handles a response that is not 200: the edge's errors are
  // fatal (4xx) or say "later" (429, 503); anything else broke the path.
  async refused(resp) {
    const err = await readEdgeError(resp);
    const refused = { outcome: "refused", status: resp.status };
    if (!err) return this.fail(new EdgeError("transport", `${this.kind}: HTTP ${resp.status} from something that is not the edge`, resp.status), refused);
    const retryAfter = Number(resp.headers.get("Retry-After"));
    if (retryAfter > 0) this.hint = retryAfter * 1000;
    if (resp.status === 429 || resp.status >= 500) return this.fail(err, { edgeAnswered: true, ...refused });
    this.finish({ fatal: true, error: err, ...refused });
  }
}

class SSELink extends HTTPLink {
  constructor(sub, timeout) {
    super(sub, "sse", timeout);
    this.long = sub.background();
    const beat = (this.beat = sub.heartbeat());
    const extra = { heartbeat: seconds(beat) };
    if (sub.opts.padding > 0) extra.padding = String(sub.opts.padding);
    this.silence = Math.max(beat, 5000) * 2 + 5000;
    this.run(this.url("sse", extra)).catch((e) => this.fail(new EdgeError("transport", "sse: " + e.message)));
  }

  async run(u) {
    const resp = await fetch(u, { headers: { Accept: "text/event-stream" }, cache: "no-store", signal: this.abort.signal });
    if (resp.status !== 200) return this.refused(resp);
    if (!(resp.headers.get("Content-Type") || "").startsWith("text/event-stream") || !resp.body) {
      return this.fail(new EdgeError("transport", "sse: the answer is not an event stream"));
    }
    const reader = resp.body.getReader();
    const decoder = new TextDecoder();
    let buf = "";
    this.event = { id: null, event: "", data: [] };
    this.watch();
    for (;;) {
      const { value, done } = await reader.read();
      if (this.done) return;
      if (done) return this.fail(new EdgeError("transport", "sse: the stream ended"));
      this.watch();
      buf += decoder.decode(value, { stream: true });
      buf = this.lines(buf);
      if (buf.length > MAX_EVENT_BYTES) return this.fail(new EdgeError("transport", "sse: a line is too long"));
    }
  }

  // watch restarts the silence timer: heartbeats arrive every heartbeat,
  // so a stream silent for two of them is dead (or held by a proxy).
  watch() {
    clearTimeout(this.silenceTimer);
    this.silenceTimer = setTimeout(() => this.fail(new EdgeError("transport", "sse: no heartbeat")), this.silence);
  }

  stop() {
    clearTimeout(this.silenceTimer);
    super.stop();
  }

  // lines handles the complete lines in buf and returns the rest.
  lines(buf) {
    let start = 0;
    for (;;) {
      const cr = buf.indexOf("\r", start);
      const lf = buf.indexOf("\n", start);
      let end = cr < 0 ? lf : lf < 0 ? cr : Math.min(cr, lf);
      if (end < 0) break;
      let next = end + 1;
      if (buf[end] === "\r") {
        if (end + 1 === buf.length) break; // a "\n" may follow in the next chunk
        if (buf[end + 1] === "\n") next++;
      }
      this.line(buf.slice(start, end));
      if (this.done) return "";
      start = next;
    }
    return buf.slice(start);
  }

  // line handles one line of the stream. The stream is proven (open) by
  // its first event or heartbeat, not by its first bytes: a proxy that
  // buffers may let the head and retry: through and hold the rest.
  line(line) {
    const ev = this.event;
    if (line === "") {
      this.event = { id: null, event: "", data: [] };
      this.dispatch(ev);
      if (ev.id !== null || ev.data.length > 0 || ev.event !== "") this.markOpen();
      return;
    }
    if (line[0] === ":") {
      if (line === ": hb") this.markOpen();
      return;
    }
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value[0] === " ") value = value.slice(1);
    switch (field) {
      case "id":
        ev.id = value;
        break;
      case "event":
        ev.event = value;
        break;
      case "data":
        ev.data.push(value);
        break;
      case "retry":
        if (/^\d+$/.test(value)) this.retry = Number(value);
        break;
    }
  }

  dispatch(ev) {
    const sub = this.sub;
    const data = ev.data.join("\n");
    if (ev.event === "gap") return sub.gap(JSON.parse(data).channel);
    if (ev.event === "join" || ev.event === "leave") return sub.presence({ ...JSON.parse(data), event: ev.event });
    if (ev.event === "disconnect") {
      const d = JSON.parse(data);
      if (d.retry_ms === undefined && this.retry !== undefined) d.retry_ms = this.retry;
      return this.disconnect(d);
    }
    if (ev.data.length === 0) {
      if (ev.id !== null) for (const [ch, id] of parseCursor(ev.id, sub.channels)) sub.position(ch, id);
      return;
    }
    // With deltas every event carries the message object.
    if (sub.channels.length === 1 && !this.delta) {
      return sub.messages([{ channel: sub.channels[0], id: ev.id, event: ev.event, data }]);
    }
    sub.messages([JSON.parse(data)]);
  }
}

class PollLink extends HTTPLink {
  constructor(sub, timeout) {
    super(sub, "poll", timeout);
    // After a delta the client could not apply, the first poll asks
    // without deltas: a poll trusts its cursor, and would send one again.
    this.noDelta = sub.takeFullOnce();
    this.run().catch((e) => this.fail(new EdgeError("transport", "poll: " + e.message)));
  }

  async run() {
    const opts = this.sub.opts;
    // The first poll answers at once: it proves the path and gives the
    // start position; later ones hold.
    let extra = { timeout: "0" };
    for (;;) {
      const wait = this.sub.pollTimeout() + opts.linger + 15000;
      const timer = this.isOpen ? setTimeout(() => this.fail(new EdgeError("transport", "poll: no answer in time")), wait) : undefined;
      let resp, body;
      try {
        // The member token of an earlier answer keeps this client one
        // presence member from poll to poll, on any node.
        const member = this.sub.pollMember ? { member: this.sub.pollMember } : {};
        resp = await fetch(this.url("poll", { ...extra, ...member }), { cache: "no-store", signal: this.abort.signal });
        if (resp.status === 200) body = await resp.json();
      } finally {
        clearTimeout(timer);
      }
      if (this.done) return;
      if (resp.status !== 200) return this.refused(resp);
      if (!body || !Array.isArray(body.messages)) return this.fail(new EdgeError("transport", "poll: the answer is not the edge's"));
      if (typeof body.member === "string") this.sub.pollMember = body.member;
      if (body.gap) for (const ch of body.gap_channels || this.sub.channels) this.sub.gap(ch);
      this.sub.messages(body.messages);
      if (Array.isArray(body.presence)) this.sub.messages(body.presence);
      if (this.done) return;
      for (const [ch, id] of parseCursor(body.cursor, this.sub.channels)) this.sub.position(ch, id);
      // Open once the start position is known, so that a probe started
      // now resumes from it.
      this.markOpen();
      if (this.done) return;
      if (body.disconnect) {
        this.disconnect(body.disconnect);
        return this.fail(new EdgeError("transport", `poll: ${body.disconnect.reason}`), { edgeAnswered: true });
      }
      this.long = this.sub.background();
      this.since = Date.now();
      this.noDelta = false;
      extra = { timeout: seconds(this.sub.pollTimeout()) };
      if (opts.linger > 0) extra.linger = seconds(opts.linger);
    }
  }
}

const LINKS = { ws: WSLink, sse: SSELink, poll: PollLink };

function supported(kind) {
  if (kind === "ws") return typeof WebSocket === "function";
  if (kind === "poll") return typeof fetch === "function";
  return kind === "sse" && typeof fetch === "function" && typeof ReadableStream === "function";
}

function storageKey(base) {
  return "edge.transport:" + new URL(base).origin;
}

// stores lists where the client remembers transports: localStorage, so
// that the next visit starts on what worked, else (storage disabled or
// full) the tab's sessionStorage.
function stores() {
  const out = [];
  for (const name of ["localStorage", "sessionStorage"]) {
    try {
      if (globalThis[name]) out.push(globalThis[name]);
    } catch {
      // access denied (a sandboxed frame, cookies blocked)
    }
  }
  return out;
}

// remembered returns the transport that last worked for base's origin,
// unless that was longer than maxAge ms ago.
function remembered(base, maxAge) {
  for (const store of stores()) {
    try {
      const v = JSON.parse(store.getItem(storageKey(base)));
      if (v && typeof v.transport === "string" && Date.now() - v.at < maxAge) return v.transport;
    } catch {
      // unreadable: try the next store
    }
  }
  return null;
}

function remember(base, kind) {
  const v = JSON.stringify({ transport: kind, at: Date.now() });
  for (const store of stores()) {
    try {
      store.setItem(storageKey(base), v);
      return;
    } catch {
      // disabled or full: the next store
    }
  }
}

// MAX_PROBES bounds the probe outcomes a subscription keeps.
const MAX_PROBES = 10;

// Subscription is what subscribe returns.
//
// Which transport: a subscription starts on the transport remembered for
// the edge's origin, or else on the last of the order (long-polling, which
// gets through every proxy), whose first poll answers at once. Once that
// is open and the start position of every channel is known, the better
// transports are probed in the background, best first, each given
// probeTimeout to prove itself (a WebSocket's first frame, an SSE event
// or heartbeat: a buffering proxy lets neither through). The first proven
// one takes over: it subscribed from the cursor, both deliver until the
// old one is closed, and messages drops every id at or before the last
// one delivered, so the seam loses and repeats nothing. Each attempt's
// outcome is kept in probes, which onStateChange reports.
class Subscription {
  constructor(base, channels, options) {
    this.base = new URL(base, typeof location === "object" ? location.href : undefined).href;
    this.channels = [...channels];
    if (this.channels.length === 0) throw new TypeError("edge.subscribe: name at least one channel");
    this.opts = { ...DEFAULTS, ...options };
    this.order = this.opts.transports.filter(supported);
    if (this.order.length === 0) throw new TypeError("edge.subscribe: none of the transports is available here");
    this.positions = parseCursor(this.opts.since, this.channels);
    this.state = "";
    this.reported = "";
    this.transport = "";
    this.attempts = [];
    this.attempt = 0;
    this.link = null;
    this.probe = null;
    this.probeFrom = -1;
    this.timers = {};
    this.last = this.order.length - 1;
    const known = this.opts.remember ? this.order.indexOf(remembered(this.base, this.opts.rememberFor)) : -1;
    this.home = known >= 0 ? known : this.last;
    this.upgradeWait = this.opts.upgradeAfter;
    this.bases = new Map(); // channel "\n" key → {id, bytes}: the last payload of each, for deltas
    this.applied = 0; // deltas applied
    this.recoveries = 0; // deltas that could not be applied, each recovered by a full resend
    this.failures = 0; // of them since the last delta applied
    this.fullOnce = false;
    this.listen();
    // Nothing remembered: start where everything gets through and probe
    // the better ones at once.
    if (known < 0) this.probeFrom = 0;
    this.connect(this.home);
  }

  // token returns the access token for the next connection: the option's
  // string, or what its function returns now (so it can be refreshed).
  token() {
    const t = this.opts.token;
    return typeof t === "function" ? t() : t;
  }

  // cursor is the position after the last message delivered, in the form
  // the edge takes as since=.
  get cursor() {
    const parts = [];
    for (const ch of this.channels) if (this.positions.has(ch)) parts.push(ch + "=" + this.positions.get(ch));
    if (parts.length === 0) return "";
    if (this.channels.length === 1) return this.positions.get(this.channels[0]);
    return "m." + base64url(parts.join(","));
  }

  // probes lists how the latest attempts to open a transport went, oldest
  // first: {transport, outcome, ms, status?, code?, error?}.
  get probes() {
    return this.attempts.map((p) => ({ ...p }));
  }

  // note records how link's attempt to open went.
  note(link, outcome, result = {}) {
    const p = { transport: link.kind, outcome, ms: Date.now() - link.started };
    if (result.status) p.status = result.status;
    if (result.code) p.code = result.code;
    if (result.error) p.error = result.error.message;
    this.attempts.push(p);
    if (this.attempts.length > MAX_PROBES) this.attempts.shift();
  }

  // setState reports a new state, or a new transport in the same state;
  // with again set, the same state and transport again (a probe's outcome).
  setState(state, info = {}, again = false) {
    const now = state + ":" + this.transport;
    if (now === this.reported && !info.error && !again) return;
    this.state = state;
    this.reported = now;
    this.opts.onStateChange(state, { transport: this.transport, probes: this.probes, deltaRecoveries: this.recoveries, ...info });
  }

  // connect starts the main link on order[index]. A transport other than
  // the last has probeTimeout to prove itself, the last openTimeout.
  connect(index) {
    this.clearTimer("retry");
    this.index = index;
    this.transport = this.order[index];
    this.setState(this.state === "" ? "connecting" : "reconnecting");
    this.link = new LINKS[this.transport](this, index < this.last ? this.opts.probeTimeout : this.opts.openTimeout);
  }

  linkOpened(link) {
    this.note(link, "ok");
    if (link === this.probe) {
      this.link.close();
      this.link = link;
      this.probe = null;
      this.probeFrom = -1;
      this.index = this.order.indexOf(link.kind);
      this.transport = link.kind;
      this.upgradeWait = this.opts.upgradeAfter;
      this.settle();
    }
    if (link !== this.link) return;
    this.home = this.index;
    this.openedAt = Date.now();
    if (this.index === 0) this.settle();
    this.setState("open");
    if (this.probeFrom >= 0) return this.probeNext(this.probeFrom);
    this.scheduleUpgrade();
  }

  // settle remembers the transport in use as the one to start on next
  // time: the best one, or one the better ones were just probed against.
  settle() {
    if (this.opts.remember) remember(this.base, this.transport);
  }

  linkEnded(link, result) {
    if (!result.opened) this.note(link, result.outcome || "failed", result);
    if (link === this.probe) {
      this.probe = null;
      if (this.state === "open") this.setState("open", {}, true);
      return this.probeNext(this.order.indexOf(link.kind) + 1);
    }
    if (link !== this.link) return;
    this.link = null;
    this.clearTimer("upgrade");
    this.clearTimer("probe");
    if (this.probe) {
      // Probing starts over once the main link is back.
      this.probe.close();
      this.probe = null;
      this.probeFrom = 0;
    }
    if (link.long && this.longRefused(link, result)) return this.reconnectNow();
    if (result.fatal) {
      this.stopListening();
      this.transport = "";
      this.opts.onError(result.error);
      return this.setState("closed", { error: result.error });
    }
    if (typeof navigator === "object" && navigator.onLine === false) return this.suspend("offline"); // online resumes
    if (result.opened && Date.now() - this.openedAt >= this.opts.stableAfter) this.attempt = 0;
    if (!result.opened && !result.edgeAnswered && this.index < this.last) {
      // The path is broken: at once where everything gets through, and
      // probe the better ones from there.
      this.probeFrom = 0;
      return this.connect(this.last);
    }
    const next = result.opened || result.edgeAnswered ? this.index : this.home;
    const delay = result.hint !== undefined ? result.hint : backoff(this.attempt++, this.opts.minDelay, this.opts.maxDelay);
    this.edgeDelay = result.hint !== undefined;
    this.setState("reconnecting", { delay, error: result.error });
    this.timers.retry = setTimeout(() => this.connect(next), delay);
  }

  // scheduleUpgrade tries a better transport later while on a worse one.
  scheduleUpgrade() {
    this.clearTimer("upgrade");
    if (this.index === 0 || !(this.opts.upgradeAfter > 0)) return;
    this.timers.upgrade = setTimeout(() => this.probeNext(0), this.upgradeWait);
  }

  // probeNext probes order[index] in the background, once the main link
  // is open and knows every channel's position (a probe resumes from the
  // cursor; without a position it would start later than the main link
  // and the seam could lose messages). Past the main link's transport it
  // stops, remembers the one in use and tries again after upgradeWait.
  probeNext(index) {
    this.clearTimer("probe");
    this.probeFrom = index;
    if (!this.link || !this.link.isOpen || this.probe) return;
    if (index >= this.index) {
      this.probeFrom = -1;
      this.settle();
      this.upgradeWait = Math.min(this.upgradeWait * 2, 30 * 60000);
      return this.scheduleUpgrade();
    }
    if (this.channels.some((ch) => !this.positions.has(ch))) return; // position() comes back here
    this.probeFrom = -1;
    this.probe = new LINKS[this.order[index]](this, this.opts.probeTimeout);
  }

  // messages delivers a transport's messages: each exactly once, in order
  // per channel, whichever transport (or two, while switching) brings it.
  // Joins and leaves (objects with a member) go to presence. A delta is
  // handed on as the full message it stands for; one that cannot be
  // applied is not, nor is anything after it in its channel: the client
  // recovers with a full resend from the cursor before it.
  messages(list) {
    let broken = null;
    for (let m of list) {
      if (m && m.member) {
        this.presence(m);
        continue;
      }
      if (this.state === "closed" || !m || typeof m.channel !== "string" || typeof m.id !== "string") continue;
      if (broken && broken.has(m.channel)) continue;
      const last = this.positions.get(m.channel);
      if (last !== undefined && compareIDs(m.id, last) <= 0) continue;
      if (this.deltaOn() || typeof m.delta === "string") {
        const full = this.undelta(m);
        if (!full) {
          (broken = broken || new Set()).add(m.channel);
          continue;
        }
        m = full;
      }
      this.positions.set(m.channel, m.id);
      this.opts.onMessage(m);
    }
    if (broken) this.recover();
  }

  // deltaOn reports whether connections ask for deltas: the option, unless
  // the subscription conflates (which gets whole messages), until three
  // deltas in a row could not be applied.
  deltaOn() {
    return this.opts.delta === true && !this.opts.conflate && this.failures < 3;
  }

  // undelta returns the full message m stands for, keeping its payload
  // as the base of its channel and key; null when m is a delta whose base
  // the client does not hold or whose checksum fails.
  undelta(m) {
    const slot = m.channel + "\n" + (typeof m.key === "string" ? m.key : "");
    let bytes;
    try {
      bytes = payloadBytes(m);
      if (typeof m.delta === "string") {
        const base = this.bases.get(slot);
        if (!base || base.id !== m.delta) throw new Error("delta: base not held");
        bytes = applyDelta(base.bytes, bytes);
        m = withPayload(m, bytes);
        this.failures = 0;
        this.applied++;
      }
    } catch {
      return null;
    }
    this.bases.delete(slot); // the newest last: the first is the stalest
    this.bases.set(slot, { id: m.id, bytes });
    if (this.bases.size > MAX_DELTA_BASES) this.bases.delete(this.bases.keys().next().value);
    return m;
  }

  // recover resends in full from the cursor what a delta the client could
  // not apply stood for: a new connection on the same transport, which
  // starts each key with a full message (a long-poll's first poll asks
  // without deltas).
  recover() {
    this.recoveries++;
    this.failures++;
    this.fullOnce = true;
    if (this.state !== "closed") this.restart();
  }

  // takeFullOnce reports, once, that a recovery asks for a poll without
  // deltas.
  takeFullOnce() {
    const once = this.fullOnce;
    this.fullOnce = false;
    return once;
  }

  // _testCorruptBases spoils the payloads (how "bytes") or ids (how "id")
  // the client keeps as delta bases: tests use it to force a mismatch.
  _testCorruptBases(how) {
    for (const base of this.bases.values()) {
      if (how === "id") base.id = "0-1";
      else base.bytes = base.bytes.map((b) => b ^ 0x5a);
    }
  }

  position(channel, id) {
    const last = this.positions.get(channel);
    if (typeof id === "string" && id !== "" && (last === undefined || compareIDs(id, last) > 0)) this.positions.set(channel, id);
    if (this.probeFrom >= 0 && this.link && this.link.isOpen && !this.probe && !this.timers.probe) {
      this.timers.probe = setTimeout(() => this.probeNext(this.probeFrom), 0);
    }
  }

  gap(channel) {
    if (this.state !== "closed") this.opts.onGap(channel);
  }

  // presence hands a join or leave to onPresence. They are not history:
  // they move no cursor, and a reconnect does not replay them.
  presence(p) {
    if (this.state !== "closed" && typeof p.channel === "string") this.opts.onPresence(p);
  }

  // pause closes the connection, keeping the cursor, until resume (a page
  // that becomes visible does not resume it).
  pause() {
    if (this.state === "closed") return;
    this.held = true;
    this.suspend("paused");
  }

  resume() {
    this.held = false;
    if (this.state === "paused" || this.state === "offline") this.reconnectNow();
  }

  // suspend closes the connection, keeping the cursor.
  suspend(state) {
    this.clearTimer("retry");
    this.clearTimer("upgrade");
    for (const l of [this.link, this.probe]) if (l) l.close();
    this.link = this.probe = null;
    this.setState(state);
  }

  reconnectNow() {
    this.attempt = 0;
    this.connect(this.home);
  }

  // heartbeat is the heartbeat (ms) a new connection asks for: the long
  // one while the page stays connected in the background.
  heartbeat() {
    return this.background() ? this.opts.hiddenHeartbeat : this.opts.heartbeat;
  }

  // pollTimeout is the hold (ms) the next long-poll asks for.
  pollTimeout() {
    return this.background() ? this.opts.hiddenPollTimeout : this.opts.pollTimeout;
  }

  // background reports whether connections ask for the hidden page's
  // longer heartbeat and hold: the page has been hidden for hiddenDelay,
  // stays connected (pauseWhenHidden false), and no long one failed.
  background() {
    return this.hidden === true && !this.shortOnly;
  }

  // longRefused reports whether a link that asked for the hidden page's
  // heartbeat or hold ended because of it: the edge refused the value
  // (an edge with narrower bounds), or the path was cut while quiet,
  // before a long heartbeat was due (a proxy's idle timeout). From then on
  // this subscription asks for the visible values only.
  longRefused(link, result) {
    const refused = result.fatal && result.error && result.error.code === "bad_request";
    const long = link.kind === "poll" ? this.opts.hiddenPollTimeout : this.opts.hiddenHeartbeat;
    const cut = result.opened && !result.edgeAnswered && !result.fatal && Date.now() - link.since < long;
    if (refused || cut) this.shortOnly = true;
    return refused;
  }

  // restart drops the connection, which a network change may have left
  // dead without a word, and reconnects at once from the cursor.
  restart() {
    for (const l of [this.link, this.probe]) if (l) l.close();
    this.link = this.probe = null;
    this.clearTimer("upgrade");
    this.clearTimer("probe");
    this.reconnectNow();
  }

  // hide runs once the page has been hidden for hiddenDelay: it pauses,
  // or, with pauseWhenHidden false, moves a stream to the long heartbeat
  // (a long-poll asks for the long hold with its next poll).
  hide() {
    if (this.state === "offline" || this.state === "paused" || this.held) return;
    if (this.opts.pauseWhenHidden) return this.suspend("paused");
    this.hidden = true;
    this.renegotiate();
  }

  // show runs when the page is visible again: a paused subscription
  // resumes from its cursor, a stream on the long heartbeat moves back.
  show() {
    const was = this.hidden;
    this.hidden = this.frozen = false;
    if (this.held || this.state === "offline") return;
    if (this.state === "paused") return this.reconnectNow();
    if (was) this.renegotiate();
  }

  // renegotiate reconnects a stream from its cursor when it runs on a
  // heartbeat other than the one the page's visibility calls for.
  renegotiate() {
    if (this.link && this.link.beat !== undefined && this.link.beat !== this.heartbeat()) this.restart();
  }

  listen() {
    if (typeof addEventListener !== "function") return;
    this.onVisibility = () => {
      if (this.state === "closed") return;
      this.clearTimer("hidden");
      if (document.visibilityState === "hidden") {
        this.timers.hidden = setTimeout(() => this.hide(), this.opts.hiddenDelay);
      } else {
        this.show();
      }
    };
    // offline: no attempts until online, which reconnects at once, without
    // trusting a connection that lived through the change, and without
    // waiting out a backoff (unless the edge itself said when to come back).
    this.onOffline = () => {
      if (this.state !== "closed" && this.state !== "paused" && !this.held) this.suspend("offline");
    };
    this.onOnline = () => {
      if (this.state === "closed" || this.state === "paused" || this.held) return;
      if (this.timers.retry && this.edgeDelay) return;
      this.restart();
    };
    // A frozen page (Page Lifecycle) runs nothing and its connection may
    // be dropped meanwhile: close it at freeze, resume from the cursor at
    // resume (or when visible again, for a hidden page that pauses).
    this.onFreeze = () => {
      if (this.state === "closed" || this.state === "paused" || this.state === "offline" || this.held) return;
      this.frozen = true;
      this.suspend("paused");
    };
    this.onResume = () => {
      if (!this.frozen) return;
      this.frozen = false;
      const hidden = typeof document === "object" && document.visibilityState === "hidden";
      if (this.state === "paused" && !this.held && !(hidden && this.opts.pauseWhenHidden)) this.reconnectNow();
    };
    if (typeof document === "object") {
      document.addEventListener("visibilitychange", this.onVisibility);
      document.addEventListener("freeze", this.onFreeze);
      document.addEventListener("resume", this.onResume);
    }
    addEventListener("offline", this.onOffline);
    addEventListener("online", this.onOnline);
    // A page opened in a background tab is hidden from the start.
    if (typeof document === "object" && document.visibilityState === "hidden") this.onVisibility();
  }

  stopListening() {
    for (const name of Object.keys(this.timers)) this.clearTimer(name);
    if (!this.onOnline) return;
    if (typeof document === "object") {
      document.removeEventListener("visibilitychange", this.onVisibility);
      document.removeEventListener("freeze", this.onFreeze);
      document.removeEventListener("resume", this.onResume);
    }
    removeEventListener("offline", this.onOffline);
    removeEventListener("online", this.onOnline);
  }

  clearTimer(name) {
    clearTimeout(this.timers[name]);
    delete this.timers[name];
  }

  close() {
    if (this.state === "closed") return;
    this.suspend("closed");
    this.stopListening();
    this.transport = "";
  }
}

/**
 * subscribe receives the messages of channels from the edge at base.
 * See client.d.ts for the options.
 */
function subscribe(base, channels, options = {}) {
  return new Subscription(base, channels, options);
}

const edge = { subscribe, compareIDs, backoff, EdgeError, version: VERSION };

export { subscribe, compareIDs, backoff, EdgeError, VERSION as version };
export default edge;
