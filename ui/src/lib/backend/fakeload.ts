// A load for the in-browser fake backend, chosen by the page's URL: the desktop
// benchmark serves this UI to Debian's Chromium as `index.html?fake=10000&rate=1000`
// to measure what the same UI costs as a web page (crates/pulse-bench/src/desktop).
//
// Invariants:
// - The URL is parsed here and nowhere else (`fakeLoadFromQuery`); anything it cannot
//   read is an error that says which parameter and why, never a silent default.
// - `fakeEntities(n)` makes the same entities the benchmark's gateway holds after the
//   harness's `seed_events(n)` (crates/pulse-bench/src/desktop/mod.rs), as the
//   gateway's domain rules store them (defaults such as an approval's `pending`
//   status, `updated_at`): the two must change together.
// - `driveRate` pushes updates the way the core's update pump does: one batch per
//   16 ms with the latest state of each touched entity.
import type { Entity } from "../generated/types";
import type { FakeBackend } from "./fake";

/** What the page was asked to load: `entities` cached, then `rate` events/s (0: idle). */
export interface FakeLoad {
  entities: number;
  rate: number;
}

/** The largest values taken (more is a typo, not a benchmark). */
export const MAX_FAKE_ENTITIES = 1_000_000;
export const MAX_FAKE_RATE = 100_000;

function count(name: string, raw: string, max: number): number {
  if (!/^[0-9]+$/.test(raw)) throw new Error(`?${name}= must be a whole number, not ${JSON.stringify(raw)}`);
  const n = Number(raw);
  if (n > max) throw new Error(`?${name}= must be at most ${max}, not ${raw}`);
  return n;
}

/**
 * The load a query string (`location.search`) asks for: `null` without `fake=`;
 * `fake=N` (entities) and optional `rate=R` (events/s). Throws on anything else
 * (`fake=abc`, `fake=-1`, a `rate` without `fake`, a repeated parameter).
 */
export function fakeLoadFromQuery(search: string): FakeLoad | null {
  const q = new URLSearchParams(search);
  for (const name of ["fake", "rate"]) {
    if (q.getAll(name).length > 1) throw new Error(`?${name}= is given more than once`);
  }
  const fake = q.get("fake");
  const rate = q.get("rate");
  if (fake === null) {
    if (rate !== null) throw new Error("?rate= needs ?fake= (the number of entities)");
    return null;
  }
  return { entities: count("fake", fake, MAX_FAKE_ENTITIES), rate: rate === null ? 0 : count("rate", rate, MAX_FAKE_RATE) };
}

const STATES = ["backlog", "todo", "in_progress", "review", "done"];
const STATUSES = ["idle", "busy", "waiting"];

/** Entity `i` of `seed_events`, as the gateway stores it (stamped `now`). */
function seedEntity(i: number, now: number): Entity {
  const k = Math.floor(i / 5);
  const state = STATES[k % 5];
  const status = STATUSES[k % 3];
  switch (i % 5) {
    case 0:
      return { kind: "ticket", id: `tkt-${k}`, data: { id: `tkt-${k}`, title: `Ticket ${k}: refund stuck in review`, state, assignee: `agent-${k % 40}`, updated_at: now } };
    case 1:
      return { kind: "agent", id: `agent-${k}`, data: { id: `agent-${k}`, name: `Agent ${k}`, status, updated_at: now } };
    case 2:
      return { kind: "approval", id: `apr-${k}`, data: { id: `apr-${k}`, title: `Deploy service-${k % 37} v2.${k % 20}.0`, requested_by: `agent-${k % 40}`, status: "pending", updated_at: now } };
    case 3:
      return { kind: "conversation", id: `conv-${k}`, data: { id: `conv-${k}`, subject: `Customer ${k} asks about an invoice`, customer: `customer-${k}`, status: "open", updated_at: now } };
    default:
      return { kind: "notification", id: `ntf-${k}`, data: { id: `ntf-${k}`, title: `Build ${k} finished`, body: "all checks passed", read: false, updated_at: now } };
  }
}

/** The `n` entities of the benchmark's gateway (see the invariants above). */
export function fakeEntities(n: number, now = Date.now()): Entity[] {
  const out: Entity[] = new Array(n);
  for (let i = 0; i < n; i++) out[i] = seedEntity(i, now);
  return out;
}

/**
 * The updates of events `from..to` of the busy load, as the benchmark publishes it:
 * agents' heartbeats, and every `rate/20`-th event a `bench` stats block's marker
 * (20 a second), coalesced to the latest state of each touched entity.
 */
export function busyUpdates(fake: FakeBackend, from: number, to: number, rate: number, now: number): Entity[] {
  const agents = Math.max(1, Math.floor(fake.entities.size / 5));
  const every = Math.max(1, Math.floor(rate / 20));
  const touched = new Map<string, Entity>();
  for (let k = from; k < to; k++) {
    if (k % every === 0) {
      const marker = Math.floor(k / every) + 1;
      touched.set("stats:bench", { kind: "stats", id: "bench", data: { id: "bench", marker, updated_at: now } });
      continue;
    }
    const id = `agent-${k % agents}`;
    const key = `agent:${id}`;
    const cur = touched.get(key)?.data ?? fake.entities.get(key)?.data ?? { id };
    touched.set(key, { kind: "agent", id, data: { ...cur, load: k % 100, last_heartbeat: now, updated_at: now } });
  }
  return [...touched.values()];
}

/** Push `rate` events/s into `fake`, one batch per 16 ms; returns a stop function. */
export function driveRate(fake: FakeBackend, rate: number): () => void {
  if (rate <= 0) return () => {};
  const start = performance.now();
  let sent = 0;
  const timer = setInterval(() => {
    const due = Math.floor(((performance.now() - start) / 1000) * rate);
    if (due <= sent) return;
    const updates = busyUpdates(fake, sent, due, rate, Date.now());
    sent = due;
    fake.push(...updates);
  }, 16);
  return () => clearInterval(timer);
}
