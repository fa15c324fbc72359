// TypeScript declarations for the edge browser client, /v1/client.js.

/** One of the three ways the client can receive messages. */
export type Transport = "ws" | "sse" | "poll";

/**
 * Where a subscription is: connecting the first time, open, reconnecting
 * (after a drop or while trying the next transport), paused while the page
 * is hidden, offline while the browser is, or closed for good.
 */
export type State = "connecting" | "open" | "reconnecting" | "paused" | "offline" | "closed";

/** A message as the edge delivers it. */
export interface Message {
  /** The channel it was published to. */
  channel: string;
  /** Its id, "<ms>-<seq>", strictly increasing within the channel. */
  id: string;
  /** Its event type, "" when it has none. */
  event: string;
  /** Its conflation key (the publish's key=), when it has one. */
  key?: string;
  /** The payload: text, or base64 when encoding is "base64". */
  data: string;
  /** "base64" for a payload that is not UTF-8 text (WebSocket, long-poll, several channels over SSE). */
  encoding?: "base64";
}

/** A subscription of a channel that keeps presence (the edge's --presence), as GET /v1/presence lists it. */
export interface Member {
  /** The connection's id, unique in the fleet. */
  conn: string;
  /** The sub claim of the connection's token, "" without one. */
  sub: string;
  /** What the connection's client said about itself (the info option), "" when nothing. */
  info: string;
  /** The edge node the connection is on. */
  node: string;
}

/** A member joining or leaving a channel. Not history: it has no id and is not replayed on resume. */
export interface PresenceEvent {
  channel: string;
  event: "join" | "leave";
  member: Member;
}

/**
 * How an attempt to open a transport went: "ok" (it proved itself), "timeout" (nothing proved it
 * within probeTimeout or openTimeout: a hanging upgrade, a buffering proxy), "refused" (an HTTP
 * answer other than the stream: status says which) or "failed" (the connection closed or broke
 * first; browsers hide a refused WebSocket's HTTP status, so a WebSocket a proxy refuses fails
 * with code 1006).
 */
export type ProbeOutcome = "ok" | "timeout" | "refused" | "failed";

/** One attempt to open a transport: the main connection's or a background probe's. */
export interface Probe {
  transport: Transport;
  outcome: ProbeOutcome;
  /** Milliseconds from the attempt's start to its outcome. */
  ms: number;
  /** The HTTP status, for "refused". */
  status?: number;
  /** The WebSocket close code, for a WebSocket that "failed". */
  code?: number;
  /** What went wrong, unless "ok". */
  error?: string;
}

/** What a state change comes with. */
export interface StateInfo {
  /** The transport in use or being tried; "" once closed. */
  transport: Transport | "";
  /**
   * Why that transport: the latest attempts (at most 10), oldest first, e.g. on long-polling
   * behind a buffering proxy [{transport: "poll", outcome: "ok"}, {transport: "ws", outcome:
   * "failed", code: 1006}, {transport: "sse", outcome: "timeout"}]. A background probe that fails
   * is reported with the same state again, so this stays current.
   */
  probes: Probe[];
  /** Milliseconds until the next attempt, while reconnecting. */
  delay?: number;
  /** Why the last connection ended, when it failed. */
  error?: EdgeError;
  /**
   * With the delta option: how many deltas the client could not apply (a base it did not hold, a
   * checksum that failed), each recovered by a full resend from the cursor; such a message is
   * never handed to onMessage.
   */
  deltaRecoveries: number;
}

export interface Options {
  /**
   * Transports, best first. Default ["ws", "sse", "poll"]. The client starts on the one remembered
   * for the edge's origin, else on the last (the one that gets through everywhere), and probes the
   * better ones in the background, moving to the best proven one with its cursor.
   */
  transports?: Transport[];
  /** A cursor to resume from (a Subscription's cursor from earlier). Default: only new messages. */
  since?: string;
  /** Milliseconds the last transport (long-polling: its first answer) has to prove it gets through. Default 8000. */
  openTimeout?: number;
  /** Milliseconds any other transport — a background probe, or a remembered one the client starts on — has to prove it gets through (a first WebSocket frame, a first SSE event or heartbeat) before it is abandoned. Default 3000. */
  probeTimeout?: number;
  /** Backoff of reconnects: full jitter, uniform in [0, min(maxDelay, minDelay * 2^attempt)). Defaults 1000 and 30000 ms. */
  minDelay?: number;
  maxDelay?: number;
  /** A connection open this long (ms) resets the backoff. Default 30000. */
  stableAfter?: number;
  /** While on a worse transport than the first, try the better ones again after this many ms (doubling after each failed try); 0 never. Default 60000. */
  upgradeAfter?: number;
  /** Remember the transport that worked for the edge's origin (localStorage, else sessionStorage) and start on it on the next page load, without probing at once. Default true. */
  remember?: boolean;
  /** How long (ms) a remembered transport counts; after that the client starts afresh and probes. Default 7 days. */
  rememberFor?: number;
  /** Close the connection while the page is hidden, resume with the cursor when it is visible again. With false, a page hidden for hiddenDelay stays connected on hiddenHeartbeat and hiddenPollTimeout. Default true. */
  pauseWhenHidden?: boolean;
  /** How long (ms) the page must stay hidden before the connection is paused. Default 10000. */
  hiddenDelay?: number;
  /** Heartbeat interval (ms) asked of the edge for SSE comments and WebSocket pings; longer saves battery. The edge refuses a value outside its bounds (5 s to 5 min by default) with bad_request. Default 25000. */
  heartbeat?: number;
  /** Long-poll hold (ms) without messages. Default 25000. */
  pollTimeout?: number;
  /** With pauseWhenHidden false: the heartbeat (ms) asked for while the page has been hidden for hiddenDelay (a stream reconnects from its cursor to ask, and again when visible). Within the edge's heartbeat bounds; an edge that refuses it, or a path cut before it is due (a proxy's idle timeout), makes the subscription keep heartbeat. Default 120000. */
  hiddenHeartbeat?: number;
  /** With pauseWhenHidden false: the long-poll hold (ms) while the page has been hidden for hiddenDelay; at most the edge's --poll-timeout-max (60 s by default), kept to pollTimeout as hiddenHeartbeat is. Default 60000. */
  hiddenPollTimeout?: number;
  /** Long-poll: once a message is there, keep collecting for this long (ms) before answering, so a burst wakes the device once. Default 0. */
  linger?: number;
  /** SSE: bytes of padding the edge sends first, for proxies that hold back the first kilobytes of a response. Default 0. */
  padding?: number;
  /** A JWT for the edge (sent as access_token=), or a function that returns the current one at each connection, so a refreshed token is used on the next reconnect. Default none. */
  token?: string | (() => string);
  /** Hear joins and leaves of the channels that keep presence (onPresence). Default false. */
  presence?: boolean;
  /** What this client says about itself to the others in presence (at most 256 bytes, no control characters; e.g. JSON.stringify({name})). Default "". */
  info?: string;
  /** Conflation window, a Go duration from "50ms" to "60s" (e.g. "1s"), sent as conflate= on every transport: per window the edge sends only the newest message of each key (the publish's key=; no key: the channel), so a dashboard wakes at most once per window. Messages keep their ids, so the cursor stays exact, but onMessage is not called for every message, and a conflating subscription gets no deltas. The edge refuses a value outside its bounds with bad_request. Default "" (none). */
  conflate?: string;
  /** Ask for a compressed stream (compress=1 on every transport): SSE and long-poll answers gzip-encoded, WebSocket with permessage-deflate, which the browser decodes. It costs the edge memory and CPU per connection (see the edge's --compress); worth it on metered or slow links. Default false. */
  compress?: boolean;
  /**
   * Ask the edge for Fossil deltas (delta=fossil, on every transport): a message may come as the
   * difference from the previous one of its channel and key, which the client applies, verifying
   * the format's checksum, and hands to onMessage as the full message. It keeps the last payload
   * of each channel and key (at most 1024). A delta it cannot apply is recovered by a full resend
   * (StateInfo.deltaRecoveries counts them); after three in a row it stops asking for deltas.
   * Over SSE, events then carry the message object. A conflating subscription gets no deltas. Default false.
   */
  delta?: boolean;
  /** Called with every message (with conflate, the newest of each key per window), exactly once, in order within its channel. */
  onMessage?: (message: Message) => void;
  /** Called when messages of channel were lost from history before they could be delivered. */
  onGap?: (channel: string) => void;
  /** Called with joins and leaves when presence is set; best effort (a long-poll hears only while a poll is held): GET /v1/presence is the truth. A client may hear its own join. */
  onPresence?: (event: PresenceEvent) => void;
  /** Called when the state changes. */
  onStateChange?: (state: State, info: StateInfo) => void;
  /** Called once with the error that closed the subscription for good (a bad channel, a refused cursor, an edge that said not to retry). */
  onError?: (error: EdgeError) => void;
}

/** A running subscription. */
export interface Subscription {
  /** The current state. */
  readonly state: State | "";
  /** The transport in use or being tried. */
  readonly transport: Transport | "";
  /** Why that transport: the latest attempts to open one, oldest first (a copy). */
  readonly probes: Probe[];
  /** The position after the last delivered message, to pass as `since` later. */
  readonly cursor: string;
  /** Pause: close the connection, keep the cursor. */
  pause(): void;
  /** Resume after pause, from the cursor. */
  resume(): void;
  /** Stop for good. */
  close(): void;
}

/** An error the edge answered with ({"error":{"code","message"}}), or "transport" for a broken path. */
export class EdgeError extends Error {
  readonly code: string;
  /** The HTTP status, when there was one. */
  readonly status: number;
}

/** Subscribes to channels of the edge at base (e.g. "https://edge.example", or "" for this page's origin). */
export function subscribe(base: string, channels: string[], options?: Options): Subscription;

/** Orders two message ids: negative, zero or positive. */
export function compareIDs(a: string, b: string): number;

/** The full-jitter backoff the client uses: a delay in [0, min(max, min * 2^attempt)). */
export function backoff(attempt: number, min: number, max: number, random?: () => number): number;

/** The client's version. */
export const version: string;

declare const edge: {
  subscribe: typeof subscribe;
  compareIDs: typeof compareIDs;
  backoff: typeof backoff;
  EdgeError: typeof EdgeError;
  version: string;
};
export default edge;
