// A TypeScript program using the client's API: tsc
// must accept it against client.d.ts (client_test.go TestTypesCompile).
import edge, { subscribe, compareIDs, backoff, EdgeError, version, type Message, type State, type StateInfo, type PresenceEvent, type Member, type Probe } from "./client.js";

const sub = subscribe("https://edge.example", ["prices", "news"], {
  onMessage: (m: Message) => console.log(m.channel, m.id, m.event, m.key ?? "", m.data, m.encoding),
  onGap: (channel: string) => console.warn(channel),
  onStateChange: (state: State, info: StateInfo) => console.log(state, info.transport, info.delay, info.error?.code, info.deltaRecoveries, info.probes.map((p: Probe) => `${p.transport} ${p.outcome} ${p.ms} ${p.status ?? p.code ?? ""} ${p.error ?? ""}`)),
  onError: (e: EdgeError) => console.error(e.code, e.status),
  transports: ["ws", "sse", "poll"],
  heartbeat: 60000,
  token: () => "eyJ...",
  linger: 2000,
  delta: true,
  probeTimeout: 2000,
  rememberFor: 86400000,
  presence: true,
  info: JSON.stringify({ name: "Ann" }),
  onPresence: (p: PresenceEvent) => {
    const m: Member = p.member;
    console.log(p.channel, p.event === "join" ? "+" : "-", m.conn, m.sub, m.info, m.node);
  },
});
const c: string = sub.cursor;
const why: string = sub.probes.filter((p) => p.outcome !== "ok").map((p) => p.transport).join(",");
sub.pause(); sub.resume(); sub.close();
edge.subscribe("", ["a"]);
const n: number = compareIDs("1-0", "2-0") + backoff(1, 1000, 30000);
const v: string = version;
// @ts-expect-error: not a transport
subscribe("", ["a"], { transports: ["carrier-pigeon"] });
// @ts-expect-error: not an outcome
const bad: Probe = { transport: "ws", outcome: "maybe", ms: 1 };
console.log(c, n, v, why, bad);
