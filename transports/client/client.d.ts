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

/** What a state change comes with. */
export interface StateInfo {
  /** The transport in use or being tried; "" once closed. */
  transport: Transport | "";
  /** Milliseconds until the next attempt, while reconnecting. */
  delay?: number;
  /** Why the last connection ended, when it failed. */
  error?: EdgeError;
}

export interface Options {
  /** Transports to try, best first. Default ["ws", "sse", "poll"]. */
  transports?: Transport[];
  /** A cursor to resume from (a Subscription's cursor from earlier). Default: only new messages. */
  since?: string;
  /** Milliseconds a transport has to prove it gets through (a first WebSocket frame, first SSE bytes, a first poll answer) before the next is tried. Default 8000. */
  openTimeout?: number;
  /** Backoff of reconnects: full jitter, uniform in [0, min(maxDelay, minDelay * 2^attempt)). Defaults 1000 and 30000 ms. */
  minDelay?: number;
  maxDelay?: number;
  /** A connection open this long (ms) resets the backoff. Default 30000. */
  stableAfter?: number;
  /** While on a worse transport than the first, try the better ones again after this many ms (doubling after each failed try); 0 never. Default 60000. */
  upgradeAfter?: number;
  /** Remember the transport that worked for the edge's origin in sessionStorage and start with it next time. Default true. */
  remember?: boolean;
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
  /** Called with every message, exactly once, in order within its channel. */
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
