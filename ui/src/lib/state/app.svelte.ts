// The UI's state: a mirror of the backend's cache plus optimistic overlays.
//
// Updates from the backend are queued and applied soon after they arrive
// (`onArrival`): at once when the page is quiet, and under a flood at most once per
// `APPLY_GAP_MS` (or twice the last apply's cost, if more), so a burst's batches are
// applied together and the page's work per second stays bounded. None is dropped:
// every queued batch is applied, in order, by the next apply. Entities live in plain
// maps (no deep `$state` proxies); each kind has its own version signal, so an apply
// of agent heartbeats recomputes only what reads agents. The lists are kept up to
// date by what changed, not rebuilt: `list` replaces only the rows of entities that
// changed (or whose overlay or arrival mark did), and the sorted lists reuse their
// order where the changed rows kept their sort keys (`SortMemo`): the same rows, in
// the same order, as a rebuild from scratch. Actions are optimistic: the change shows
// at once, then the backend's answer (done / queued / conflict / rejected) and the
// server's event reconcile it. A conflict or refusal is shown as an error, never
// silently dropped.
//
// The bootstrap comes in pieces: the first carries the counts and the first rows of
// each kind, and the page is marked loaded once it is applied; the rest follows in
// bounded chunks, one per frame (`stream`), until the page holds every entity. A
// chunk never overwrites an entity a live update or an action's answer set since the
// bootstrap (those are newer), and while a kind still streams `loading(kind)` says
// so, so no list shows a wrong "empty". The state after the last chunk is the state
// a whole bootstrap gives.
import type {
  Account,
  Action,
  Bootstrap,
  BootstrapChunk,
  ConnectionView,
  Counts,
  Entity,
  EntityKind,
  ActionOutcome,
  Intent,
  Page,
  OutboxEntry,
  ProfileInfo,
  RaisedNotification,
  SettledAction,
  Settings,
  Target,
  UpdateBatch, UpdateStatus } from "../generated/types";
import { ENTITY_KINDS, NOTIFICATION_HISTORY } from "../generated/types";
import { flushSync } from "svelte";
import { isEscalated, isPendingApproval, isUnread, kindNamed, pageOfKind } from "../domain";
import { errorMessage, type Backend, type Unlisten } from "../backend/backend";
import { defaultSettings } from "../backend/fake";

export type Data = Record<string, unknown>;
export interface Item {
  kind: EntityKind;
  id: string;
  data: Data;
  /** Set while an action on it is in flight or queued. */
  pending?: "sending" | "queued";
  /** Arrived after the first paint, less than FRESH_MS ago. */
  fresh?: boolean;
  /** Decided/removed, animating out. */
  leaving?: boolean;
}

export interface Toast {
  id: number;
  kind: "error" | "info" | "success";
  text: string;
}

/** What `list` last answered for a kind: its rows, each entity's place in them, the
 * entities whose row may change without an update (an overlay or an arrival mark),
 * and the entities set since. */
interface ListCache {
  out: Item[];
  pos: Map<string, number>;
  marked: Set<string>;
  dirty: Set<string>;
  /** An entity was removed: rebuild (in the map's order), reusing the rows. */
  stale: boolean;
}

interface Overlay {
  action: Action;
  patch: Data;
  phase: "sending" | "queued";
  outboxId?: number;
}

/** Runs an apply of the queued updates later; called once per apply wanted. It may
 * answer when the apply is due (in its clock: `performance.now()` in the page), which
 * only the latency trace reads. */
export type Scheduler = (cb: () => void) => number | void;

/** The shortest time between two applies of updates while they keep coming. */
export const APPLY_GAP_MS = 4;
/** The longest: one frame. */
export const APPLY_GAP_MAX_MS = 16;
/** How many of the last applies' costs the gap follows (their median). */
export const APPLY_COSTS = 5;

/** What `onArrival` needs of the page (a clock, a microtask, a timer). */
export interface ArrivalEnv {
  now: () => number;
  soon: (cb: () => void) => void;
  later: (ms: number, cb: () => void) => void;
}

const pageEnv: ArrivalEnv = {
  now: () => performance.now(),
  soon: (cb) => queueMicrotask(cb),
  later: (ms, cb) => void setTimeout(cb, ms),
};

/**
 * The default scheduler: apply when the updates arrive (in a microtask, so what
 * arrives in the same task is applied together, and Svelte writes the DOM right
 * after), unless the last apply ended less than the gap ago; then at the end of the
 * gap, with everything that came meanwhile. The gap is `APPLY_GAP_MS`, or twice
 * what the applies cost if more (an expensive page applies less often, with bigger
 * batches), at most `APPLY_GAP_MAX_MS`. What they cost is the median of the last
 * `APPLY_COSTS` applies: one slow apply (a GC pause, the process descheduled) does
 * not make the next update wait twice as long, a page that stays expensive does.
 * Quiet: latency ≈ the IPC's; a flood of N batches a second costs at most
 * 1000 / gap applies a second, not N. Answers when the apply is due.
 */
export function onArrival(env: ArrivalEnv = pageEnv): Scheduler {
  let readyAt = -Infinity;
  const costs: number[] = [];
  let next = 0;
  return (cb) => {
    const run = () => {
      const t0 = env.now();
      // The DOM is written here too (not in a later microtask), so its cost counts.
      flushSync(cb);
      const t1 = env.now();
      costs[next] = t1 - t0;
      next = (next + 1) % APPLY_COSTS;
      const cost = costs.slice().sort((a, b) => a - b)[costs.length >> 1];
      readyAt = t1 + Math.min(APPLY_GAP_MAX_MS, Math.max(APPLY_GAP_MS, 2 * cost));
    };
    const t = env.now();
    const wait = readyAt - t;
    if (wait <= 0) env.soon(run);
    else env.later(wait, run);
    return Math.max(t, readyAt);
  };
}

/** Now, epoch ms (the page's clock, as `performance.timeOrigin` counts; the shell's
 * `latency::epoch_ms` counts the same way). */
const now = () => performance.timeOrigin + performance.now();

/** When each traced batch reached the page (epoch ms). */
const arrivals = new WeakMap<UpdateBatch, number>();

/**
 * One traced batch that held a stats block (the desktop benchmark's markers are
 * stats blocks), under the shell's `PULSE_LATENCY_TRACE=1`: the shell's marks
 * (`received` from the core, `emitted` to the webview), then the page's (`arrived`
 * in the event handler, `due`: when the scheduler meant to apply it, `applied`: its
 * apply began), epoch ms, and the blocks' data. `applied − due` is how late the
 * page ran it (a busy thread, the host). The apply's end is the DOM's mutation,
 * which the benchmark observes.
 */
export interface LatencyTrace {
  received: number;
  emitted: number;
  arrived: number;
  due: number;
  applied: number;
  updates: number;
  stats: Data[];
}

/** The most traces kept (`globalThis.__pulseLatency`, oldest dropped). */
export const LATENCY_TRACES = 20_000;

/** Record the traces of `batches` (an apply beginning) in `globalThis.__pulseLatency`. */
function traceApply(batches: UpdateBatch[], due: number | void): void {
  const applied = now();
  const dueAt = typeof due === "number" ? performance.timeOrigin + due : applied;
  const g = globalThis as { __pulseLatency?: LatencyTrace[] };
  const out = (g.__pulseLatency ??= []);
  for (const b of batches) {
    const stats = b.updates.filter((u) => u.kind === "stats" && u.data).map((u) => u.data as Data);
    if (!b.trace || !stats.length) continue;
    const arrived = arrivals.get(b) ?? applied;
    // A batch that came after the apply was planned is due when it came, at the latest.
    out.push({ ...b.trace, arrived, due: Math.max(arrived, Math.min(dueAt, applied)), applied, updates: b.updates.length, stats });
  }
  if (out.length > LATENCY_TRACES) out.splice(0, out.length - LATENCY_TRACES);
}

export const PAGES: { id: Page; label: string; key: string }[] = [
  { id: "overview", label: "Overview", key: "1" },
  { id: "agents", label: "Agents", key: "2" },
  { id: "board", label: "Board", key: "3" },
  { id: "approvals", label: "Approvals", key: "4" },
  { id: "conversations", label: "Conversations", key: "5" },
  { id: "notifications", label: "Notifications", key: "6" },
  { id: "settings", label: "Settings", key: "7" },
];

export const FRESH_MS = 2500;
/** Without input in the window this long, an `online` user is said `away`. */
export const IDLE_MS = 5 * 60_000;
/** Seed 002's `presence.update` statuses. */
export type Presence = "online" | "away" | "busy";
export const PRESENCES: Presence[] = ["online", "away", "busy"];
export const LEAVE_MS = 450;

const keyOf = (kind: EntityKind, id: string) => `${kind}:${id}`;

/** `String.prototype.localeCompare` with the default locale and options, without a
 * collator made per call. */
export const compareText = new Intl.Collator().compare;

/**
 * A sort that reuses its last order when the items are the same entities in the same
 * input order with the same sort keys: the result is then what sorting them again
 * would give (a stable sort's output depends only on its input order and the
 * comparator's answers, which depend only on the keys). `sig` must cover everything
 * `cmp` reads. Items are taken as immutable: an item object given last time is not
 * looked at again (its key is the one it had), so an apply that changed a few rows
 * costs a pass of identity checks and a copy, not a key per item.
 */
export class SortMemo<T extends { id: string }> {
  private items: T[] | null = null;
  private sigs: unknown[] = [];
  /** Input index → place in `out`. */
  private inv: number[] = [];
  private out: T[] = [];

  constructor(
    private sig: (t: T) => unknown,
    private cmp: (a: T, b: T) => number,
  ) {}

  sort(items: T[]): T[] {
    const prev = this.items;
    if (prev === items) return this.out;
    if (prev && items.length === prev.length) {
      const moved: number[] = [];
      let same = true;
      for (let i = 0; i < items.length; i++) {
        const t = items[i];
        if (t === prev[i]) continue;
        if (t.id !== prev[i].id || !Object.is(this.sig(t), this.sigs[i])) {
          same = false;
          break;
        }
        moved.push(i);
      }
      if (same) {
        this.items = items;
        if (!moved.length) return this.out;
        const out = this.out.slice();
        for (const i of moved) out[this.inv[i]] = items[i];
        this.out = out;
        return out;
      }
    }
    const sigs = items.map(this.sig);
    const idx = items.map((_, i) => i);
    idx.sort((a, b) => this.cmp(items[a], items[b]));
    const inv = new Array<number>(items.length);
    idx.forEach((i, place) => (inv[i] = place));
    this.items = items;
    this.sigs = sigs;
    this.inv = inv;
    this.out = idx.map((i) => items[i]);
    return this.out;
  }
}

function actionTarget(a: Action): { kind: EntityKind; id: string } {
  switch (a.action) {
    case "approve":
    case "reject":
    case "edit":
    case "respond":
      return { kind: "approval", id: a.id };
    case "move_ticket":
      return { kind: "ticket", id: a.id };
    case "terminate_agent":
      return { kind: "agent", id: a.id };
  }
}


/** "approve “Deploy build 42”" — by the entity's title or name when known. */
export function describeAction(a: Action, name?: string): string {
  const what = name ? `“${name}”` : a.id;
  switch (a.action) {
    case "approve":
      return `approve ${what}`;
    case "reject":
      return `reject ${what}`;
    case "edit":
      return `approve ${what} with edits`;
    case "respond":
      return `answer ${what}`;
    case "move_ticket":
      return `move ${what} to ${a.state.replace(/_/g, " ")}`;
    case "terminate_agent":
      return `terminate ${what}`;
  }
}

/**
 * Shown on action buttons (disabled) and pages of a server that takes no actions
 * (`Account.takes_actions` false: a server followed through a profile, whose dialect
 * has no action endpoints, so the shell refuses approve / reject / move / terminate).
 */
export const NO_ACTIONS_NOTE = "This server's dialect has no actions; act in its own dashboard";

const ACTION_LABEL: Record<Action["action"], string> = {
  approve: "approve",
  reject: "reject",
  edit: "edit",
  respond: "respond",
  move_ticket: "move",
  terminate_agent: "terminate",
};

/**
 * Shown where a server takes some actions but not this one (its profile declares
 * no `[actions.NAME]` for it).
 */
export function undeclaredNote(kind: Action["action"]): string {
  return `This server's profile declares no “${ACTION_LABEL[kind]}” action; act in its own dashboard`;
}

export class AppState {
  private maps = new Map<EntityKind, Map<string, Data>>(ENTITY_KINDS.map((k) => [k, new Map()]));
  /** Per kind, what `list` last answered, kept up to date by what changed since. */
  private lists = new Map<EntityKind, ListCache>();
  private queue: UpdateBatch[] = [];
  private scheduled = false;
  private unlisten: Unlisten[] = [];
  private arrived = new Map<string, number>();
  private leavingData = new Map<string, Data>();
  private toastSeq = 0;

  /** Bumped once per applied frame: reading it makes a derivation depend on the data. */
  version = $state(0);
  /** Bumped once per applied frame that changed entities of that kind: what reads a
   * kind (`get`, `list`) depends on it alone. */
  private kindVersion = $state<Record<string, number>>(Object.fromEntries(ENTITY_KINDS.map((k) => [k, 0])));
  loaded = $state(false);
  /** Kinds whose entities are still streaming in after the bootstrap's first piece. */
  private loadingKinds = $state<ReadonlySet<EntityKind>>(new Set());
  /** Keys set by updates or actions while the bootstrap streams (newer than its
   * chunks); `null` when no stream runs. */
  private streamed: Set<string> | null = null;
  /** Bumped by each reload: a stream of an older one stops. */
  private reloadSeq = 0;
  connection = $state<ConnectionView>({ state: { state: "connecting", attempt: 1 }, last_sync_ms: null, server: null, demo: false, caveat: null });
  counts = $state<Counts>({
    pending_approvals: 0,
    open_escalations: 0,
    unread_notifications: 0,
    tasks_in_progress: 0,
    oldest_pending_since_ms: null,
    tasks_total: 0,
    tasks_done: 0,
    open_conversations: 0,
    live_agents: 0,
    working_agents: 0,
    failing_agents: 0,
  });
  settings = $state<Settings>(defaultSettings());
  account = $state<Account | null>(null);
  /** The built-in server profiles (for the settings form). */
  profiles = $state<ProfileInfo[]>([]);
  outbox = $state<OutboxEntry[]>([]);
  raised = $state<RaisedNotification[]>([]);
  read = $state<Set<string>>(new Set());
  overlays = $state<Map<string, Overlay>>(new Map());
  page = $state<Page>("overview");
  selected = $state<{ kind: EntityKind; id: string } | null>(null);
  /** The board's project filter (seed 000's `filterProject`: a ticket's `project_id`); null: all. */
  boardProject = $state<string | null>(null);
  search = $state("");
  toasts = $state<Toast[]>([]);
  version_ = $state("");
  /** The last update check's answer (Settings → Updates, and the banner at start). */
  update = $state<UpdateStatus | null>(null);
  updateError = $state<string | null>(null);
  checkingUpdates = $state(false);
  /** The banner was dismissed (the answer stays in Settings). */
  updateDismissed = $state(false);
  /** Frames applied and updates applied in all (diagnostics, tests). */
  frames = 0;
  applied = 0;

  /** When queued updates are applied (`onArrival` in the app). */
  private schedule: Scheduler;
  /** When the scheduled apply is due, if the scheduler said (the latency trace). */
  private due: number | void = undefined;
  /** When the bootstrap's next chunk is taken: after the frame that paints the last
   * one, so the first piece paints before any chunk is applied (the app's animation
   * frame; a test's own scheduler when it gives one). */
  private frame: Scheduler;

  constructor(
    public backend: Backend,
    schedule?: Scheduler,
    frame?: Scheduler,
  ) {
    this.schedule = schedule ?? onArrival();
    this.frame = frame ?? schedule ?? ((cb) => void requestAnimationFrame(() => cb()));
  }

  // ----- lifecycle -----

  async init(): Promise<void> {
    const b = this.backend;
    this.initAt = now();
    // The listeners are asked for first and the bootstrap right after, without
    // waiting for their answers (each is a round trip to the shell; nine of them in
    // series before the bootstrap were most of the page's start). Nothing is lost
    // meanwhile: the shell registers them in the order they were asked, before the
    // bootstrap, and its session (the source of updates) starts only once the page
    // said it painted, which it says only once they are all in place (`painted`).
    const listening = Promise.all([
      b.on("updates", (u) => this.enqueue(u)),
      b.on("reset", () => void this.reload()),
      b.on("connection", (c) => {
        this.seen.connection++;
        this.connection = c;
      }),
      b.on("counts", (c) => {
        this.seen.counts++;
        this.counts = c;
      }),
      b.on("outbox", (o) => this.onOutbox(o)),
      b.on("settled", (s) => this.onSettled(s)),
      b.on("notified", (n) => (this.raised = [n, ...this.raised.filter((x) => x.key !== n.key)].slice(0, NOTIFICATION_HISTORY))),
      b.on("navigate", (t) => this.open(t)),
      b.on("settings", (s) => {
        this.seen.settings++;
        this.settings = s;
      }),
    ]).then((u) => {
      this.unlisten = u;
      this.listeningAt = now();
    });
    this.listening = listening;
    await Promise.all([listening, this.reload()]);
  }

  /** When `init` began and when its listeners were in place (the start-up trace). */
  private initAt = 0;
  private listeningAt = 0;
  /** Settles once `init`'s listeners are in place. */
  private listening: Promise<void> = Promise.resolve();

  /** Check the settings' update endpoint (the shell verifies a release before it offers it). */
  async checkUpdates(): Promise<void> {
    this.checkingUpdates = true;
    this.updateError = null;
    try {
      this.update = await this.backend.checkUpdates();
      this.updateDismissed = false;
    } catch (e) {
      this.update = null;
      this.updateError = errorMessage(e);
    } finally {
      this.checkingUpdates = false;
    }
  }

  /** At start, where the settings ask for it. */
  async checkUpdatesAtStart(): Promise<void> {
    if (this.settings.updates?.check_at_start && this.settings.updates.endpoint) await this.checkUpdates();
  }

  destroy(): void {
    for (const u of this.unlisten) u();
    this.unlisten = [];
  }

  /** What was lost when this server's corrupt cache was moved aside (the shell's
   * `Bootstrap.cache_set_aside`), until the user dismisses it. */
  cacheSetAside = $state<string | null>(null);
  private dismissedSetAside: string | null = null;

  /** Hide the set-aside message (it stays hidden across reloads of the same run). */
  dismissSetAside(): void {
    this.dismissedSetAside = this.cacheSetAside;
    this.cacheSetAside = null;
  }

  /** Events of each kind received so far: a bootstrap answer does not overwrite what
   * came by event while it was on its way (see `reload`). */
  private seen = { connection: 0, counts: 0, settings: 0 };

  /** Load everything from the backend's cache (first paint, and after a reset).
   * Events and command answers travel apart, so a `connection`, `counts` or `settings`
   * event that arrives while the bootstrap is on its way is newer than the copy in its
   * answer, and is kept: otherwise a session that went Live meanwhile would show
   * "Connecting" until its next change, which may never come. */
  async reload(): Promise<void> {
    const before = { ...this.seen };
    const seq = ++this.reloadSeq;
    const asked = now();
    let boot: Bootstrap;
    try {
      boot = await this.backend.bootstrap();
    } catch (e) {
      this.toast("error", `Could not read the local cache: ${errorMessage(e)}`);
      return;
    }
    if (seq !== this.reloadSeq) return;
    const trace: [string, number][] | null = boot.trace && !this.loaded ? [["page origin", performance.timeOrigin], ["script evaluated", (globalThis as { __pulseScriptAt?: number }).__pulseScriptAt ?? 0], ["init", this.initAt], ["listening", this.listeningAt], ["mounted", (globalThis as { __pulseMountedAt?: number }).__pulseMountedAt ?? 0], ["bootstrap asked", asked], ["bootstrap answered", now()]] : null;
    this.trace = trace;
    for (const m of this.maps.values()) m.clear();
    this.lists.clear();
    for (const e of boot.entities) this.maps.get(e.kind)?.set(e.id, e.data);
    this.streamed = boot.more !== null ? new Set() : null;
    this.loadingKinds = new Set(boot.more !== null ? boot.loading : []);
    // Updates queued before the bootstrap answered are newer: they are applied on top
    // at the next frame.
    if (this.seen.connection === before.connection) this.connection = boot.connection;
    if (this.seen.counts === before.counts) this.counts = boot.counts;
    if (this.seen.settings === before.settings) this.settings = boot.settings;
    this.account = boot.account;
    this.profiles = boot.profiles;
    this.outbox = boot.outbox;
    this.cacheSetAside = boot.cache_set_aside && boot.cache_set_aside !== this.dismissedSetAside ? boot.cache_set_aside : null;
    if (boot.notifications.length) this.raised = boot.notifications;
    this.read = new Set(boot.read);
    this.version_ = boot.version;
    const first = !this.loaded;
    this.loaded = true;
    this.touch(ENTITY_KINDS);
    if (first && boot.open) this.open(boot.open);
    if (this.queue.length) this.requestFrame();
    // The server may be another one now: say the presence to it (where it takes it).
    this.saidPresence = null;
    this.syncPresence();
    if (trace) trace.push(["first piece applied", now()]);
    if (first) {
      // The frame that paints the first piece: then the shell starts what the first
      // screen did not need (`painted`).
      requestAnimationFrame(() => {
        if (trace) {
          trace.push(["first piece painted (frame)", now()]);
          if (boot.more === null) this.sendTrace();
        }
        // Only once listening: the shell starts the session (its events) then.
        void this.listening.then(() => this.backend.painted?.()).catch(() => {});
      });
    }
    // The rest after the frame that paints this piece (not in it).
    const more = boot.more;
    if (more !== null) this.frame(() => this.frame(() => void this.stream(seq, more)));
  }

  /** Whether entities of `kind` are still streaming in (a list of it may be partial). */
  loading(kind: EntityKind): boolean {
    return this.loadingKinds.has(kind);
  }

  /** Whether any kind is still streaming in. */
  get streaming(): boolean {
    return this.loadingKinds.size > 0;
  }

  /** Take the bootstrap's next chunk of stream `id`, then the next one a frame
   * later, until the last; stops when a newer reload began. */
  private async stream(seq: number, id: number): Promise<void> {
    if (seq !== this.reloadSeq) return;
    let chunk: BootstrapChunk;
    try {
      chunk = await this.backend.bootstrapMore(id);
    } catch (e) {
      if (seq !== this.reloadSeq) return;
      this.streamed = null;
      this.loadingKinds = new Set();
      this.toast("error", `Could not read the local cache: ${errorMessage(e)}`);
      return;
    }
    if (seq !== this.reloadSeq) return;
    const newer = this.streamed;
    for (const e of chunk.entities) {
      if (newer?.has(keyOf(e.kind, e.id))) continue;
      this.maps.get(e.kind)?.set(e.id, e.data);
    }
    // A kind's lists are recomputed once, when its last entity has come (not once
    // per chunk: a list of a kind still loading shows its first rows meanwhile).
    const still = new Set(chunk.more ? chunk.loading : []);
    const done = [...this.loadingKinds].filter((k) => !still.has(k));
    this.loadingKinds = still;
    // The chunks' entities went into the maps without marking rows changed: the
    // finished kinds' lists are rebuilt (reusing the rows they had).
    for (const k of done) {
      const c = this.lists.get(k);
      if (c) c.stale = true;
    }
    if (done.length) this.touch(done);
    if (chunk.more) this.frame(() => void this.stream(seq, id));
    else {
      this.streamed = null;
      this.trace?.push(["last chunk applied", now()]);
      this.sendTrace();
    }
  }

  /** The start-up phases of the first bootstrap, when the shell traces. */
  private trace: [string, number][] | null = null;

  private sendTrace(): void {
    const t = this.trace;
    this.trace = null;
    if (t) this.backend.startupMarks?.(t).catch(() => {});
  }

  // ----- what the client says: presence -----

  /** The presence the user chose (the menu); `online` by default. */
  presenceChoice = $state<Presence>("online");
  /** Nobody at the desktop for IDLE_MS (lib/idle.ts watches, from App.svelte). */
  idle = $state(false);
  /** What is said: the choice, except that an idle `online` user is `away`. */
  presence = $derived<Presence>(this.presenceChoice === "online" && this.idle ? "away" : this.presenceChoice);
  private saidPresence: Presence | null = null;

  /** Whether the active server takes `intent` (its profile declares it: Account.intents). */
  takes(intent: Intent): boolean {
    return this.account?.intents.includes(intent) ?? false;
  }

  /** Say the presence when it changed, to a server that takes it. */
  private syncPresence(): void {
    if (!this.takes("presence")) return;
    const p = this.presence;
    if (p === this.saidPresence) return;
    this.saidPresence = p;
    this.say("presence", p);
  }

  /** The user chose a presence. */
  setPresence(p: Presence): void {
    this.presenceChoice = p;
    this.syncPresence();
  }

  /** The window went idle, or is used again. */
  setIdle(idle: boolean): void {
    if (this.idle === idle) return;
    this.idle = idle;
    this.syncPresence();
  }

  // ----- live updates, applied as they arrive (see `onArrival`) -----

  enqueue(batch: UpdateBatch): void {
    // Only under the shell's PULSE_LATENCY_TRACE=1 does a batch carry a trace.
    if (batch.trace) arrivals.set(batch, now());
    this.queue.push(batch);
    this.requestFrame();
  }

  private requestFrame(): void {
    if (this.scheduled) return;
    this.scheduled = true;
    this.due = this.schedule(() => this.flush());
  }

  /** Apply every queued batch, in order (called by the scheduler, once per apply). */
  flush(): void {
    this.scheduled = false;
    if (!this.queue.length) return;
    const batches = this.queue;
    this.queue = [];
    if (batches[0].trace) traceApply(batches, this.due);
    const now = Date.now();
    let overlaysChanged = false;
    const overlays = this.overlays;
    const touched = new Set<EntityKind>();
    for (const batch of batches) {
      for (const u of batch.updates) {
        const map = this.maps.get(u.kind);
        if (!map) continue;
        touched.add(u.kind);
        const k = keyOf(u.kind, u.id);
        this.streamed?.add(k);
        const before = map.get(u.id);
        if (u.data === null) {
          if (before && u.kind === "approval" && isPendingApproval(before)) this.leave(k, before);
          map.delete(u.id);
          this.changed(u.kind, u.id, true);
        } else {
          // While the bootstrap streams, an entity not yet here may be a cached one
          // whose chunk has not come: not marked as new.
          if (!before && this.loaded && !this.loading(u.kind)) {
            this.arrived.set(k, now);
            // A server's notice of an error (seed 003's `error` event) is shown at once.
            if (u.kind === "notification" && u.data.level === "error") {
              const title = str(u.data.title) || "The server reported an error";
              this.toast("error", u.data.body ? `${title}: ${str(u.data.body)}` : title);
            }
          }
          if (before && u.kind === "approval" && isPendingApproval(before) && !isPendingApproval(u.data)) this.leave(k, u.data);
          map.set(u.id, u.data);
          this.changed(u.kind, u.id, false);
        }
        // The server's event reconciles an optimistic change once it agrees with it.
        const o = overlays.get(k);
        if (o && o.phase === "sending" && u.data && Object.entries(o.patch).every(([f, v]) => u.data![f] === v)) {
          overlays.delete(k);
          overlaysChanged = true;
        }
        this.applied++;
      }
    }
    if (overlaysChanged) this.overlays = new Map(overlays);
    this.frames++;
    this.touch(touched);
  }

  /** Say that entities of `kinds` changed (and the data as a whole). */
  private touch(kinds: Iterable<EntityKind>): void {
    for (const k of kinds) this.kindVersion[k] = (this.kindVersion[k] ?? 0) + 1;
    this.version++;
  }

  private leave(key: string, data: Data): void {
    this.leavingData.set(key, data);
    setTimeout(() => {
      this.leavingData.delete(key);
      this.touch(["approval"]);
    }, LEAVE_MS);
  }

  // ----- reads (depend on `version`) -----

  get(kind: EntityKind, id: string): Data | undefined {
    void this.kindVersion[kind];
    const d = this.maps.get(kind)?.get(id);
    const o = this.overlays.get(keyOf(kind, id));
    return d && o ? { ...d, ...o.patch } : d;
  }

  /** Say that entity `id` of `kind` was set (`removed`: deleted) in its map. */
  private changed(kind: EntityKind, id: string, removed: boolean): void {
    const c = this.lists.get(kind);
    if (!c) return;
    // A removal shifts the rows after it: the next `list` rebuilds (reusing the rows).
    if (removed) c.stale = true;
    else c.dirty.add(id);
  }

  /** The row of one entity: the last one (`prev`) while nothing it shows changed. */
  private row(kind: EntityKind, id: string, data: Data, overlays: Map<string, Overlay>, now: number, prev: Item | undefined): Item {
    const k = keyOf(kind, id);
    const o = overlays.get(k);
    const at = this.arrived.get(k);
    const fresh = at !== undefined && now - at < FRESH_MS;
    if (at !== undefined && !fresh) this.arrived.delete(k);
    // An overlaid row is made anew each time (its data is a merged copy).
    if (o) return { kind, id, data: { ...data, ...o.patch }, pending: o.phase, fresh };
    // The same entity state, unmarked the same way: the same row object.
    if (prev && prev.data === data && prev.fresh === fresh && prev.pending === undefined) return prev;
    return { kind, id, data, pending: undefined, fresh };
  }

  /**
   * Every entity of `kind` (in its map's order), with optimistic overlays and arrival
   * marks. What it answered last is kept: only the rows of entities set since, of
   * those with an overlay then or now, and of those with an arrival mark are made
   * again (a removal rebuilds); the answer is what a rebuild would give.
   */
  list(kind: EntityKind): Item[] {
    void this.kindVersion[kind];
    const overlays = this.overlays;
    const now = Date.now();
    const map = this.maps.get(kind) ?? new Map<string, Data>();
    const c = this.lists.get(kind);
    const prefix = `${kind}:`;
    if (!c || c.stale) {
      const out: Item[] = [];
      const pos = new Map<string, number>();
      const marked = new Set<string>();
      for (const [id, data] of map) {
        const at = c?.pos.get(id);
        const r = this.row(kind, id, data, overlays, now, at === undefined ? undefined : c!.out[at]);
        pos.set(id, out.length);
        out.push(r);
        if (r.pending !== undefined || this.arrived.has(keyOf(kind, id))) marked.add(id);
      }
      this.lists.set(kind, { out, pos, marked, dirty: new Set(), stale: false });
      return out;
    }
    const todo = new Set<string>(c.dirty);
    for (const id of c.marked) todo.add(id);
    for (const k of overlays.keys()) if (k.startsWith(prefix)) todo.add(k.slice(prefix.length));
    c.dirty = new Set();
    if (!todo.size) return c.out;
    const out = c.out.slice();
    let changed = false;
    // New entities were added at the end of the map, in the order they were marked.
    for (const id of todo) {
      const data = map.get(id);
      if (data === undefined) continue;
      let i = c.pos.get(id);
      const prev = i === undefined ? undefined : out[i];
      const r = this.row(kind, id, data, overlays, now, prev);
      if (i === undefined) {
        i = out.length;
        c.pos.set(id, i);
        out.push(r);
      } else out[i] = r;
      changed ||= r !== prev;
      if (r.pending !== undefined || this.arrived.has(keyOf(kind, id))) c.marked.add(id);
      else c.marked.delete(id);
    }
    if (!changed) return c.out;
    c.out = out;
    return out;
  }

  /** Approvals waiting for a decision, newest first, plus those animating out. */
  pendingApprovals = $derived.by(() => {
    const items = this.list("approval").filter((i) => isPendingApproval(i.data));
    for (const [k, data] of this.leavingData) {
      if (k.startsWith("approval:")) {
        const id = k.slice("approval:".length);
        if (!items.some((i) => i.id === id)) items.push({ kind: "approval", id, data, leaving: true });
      }
    }
    return items.sort((a, b) => num(b.data.created_at) - num(a.data.created_at) || compareText(a.id, b.id));
  });

  private agentOrder = new SortMemo<Item>(
    (a) => str(a.data.name),
    (a, b) => compareText(str(a.data.name), str(b.data.name)) || compareText(a.id, b.id),
  );
  agents = $derived.by(() => this.agentOrder.sort(this.list("agent")));
  tickets = $derived.by(() => this.list("ticket"));
  private conversationOrder = new SortMemo<Item>(
    (c) => `${Number(isEscalated(c.data))}:${num(c.data.last_message_at ?? c.data.created_at)}`,
    (a, b) => {
      const esc = Number(isEscalated(b.data)) - Number(isEscalated(a.data));
      return esc || num(b.data.last_message_at ?? b.data.created_at) - num(a.data.last_message_at ?? a.data.created_at);
    },
  );
  conversations = $derived.by(() => this.conversationOrder.sort(this.list("conversation")));

  /**
   * Chats of a server that sends messages but no conversation entities (seed 002's
   * `chat.message` with its `chatId`, which the profile maps to `conversation_id`):
   * one per chat id no conversation has, newest activity first, with the last
   * message's text, time and the number of messages.
   */
  chats = $derived.by(() => {
    const known = new Set(this.list("conversation").map((c) => c.id));
    const byChat = new Map<string, { id: string; last: Item; count: number; fresh: boolean }>();
    for (const m of this.list("message")) {
      const chat = m.data.conversation_id;
      if (chat === undefined || chat === null || chat === "") continue;
      const id = String(chat);
      if (known.has(id)) continue;
      const c = byChat.get(id);
      if (!c) byChat.set(id, { id, last: m, count: 1, fresh: !!m.fresh });
      else {
        c.count++;
        c.fresh ||= !!m.fresh;
        if (num(m.data.ts) >= num(c.last.data.ts)) c.last = m;
      }
    }
    return [...byChat.values()].sort((a, b) => num(b.last.data.ts) - num(a.last.data.ts) || compareText(a.id, b.id));
  });

  messagesOf(conversationId: string): Item[] {
    return this.list("message")
      .filter((m) => String(m.data.conversation_id) === conversationId)
      .sort((a, b) => num(a.data.ts) - num(b.data.ts) || compareText(a.id, b.id));
  }

  /**
   * Tell the server what the user does (`Backend.say`): sent only where the server's
   * profile declares it; a failure is logged, never shown (the server does not need it).
   */
  say(intent: Intent, value: string): void {
    this.backend.say(intent, value).catch((e) => console.warn(`say ${intent}: ${errorMessage(e)}`));
  }

  stats(scope: string): Data | undefined {
    return this.get("stats", scope);
  }

  /** The notification centre: raised by the app and sent by the server, newest first. */
  notifications = $derived.by(() => {
    const fromServer = this.list("notification").map((n) => ({
      key: `notification:${n.id}`,
      title: str(n.data.title) || "Notification",
      body: str(n.data.body),
      kind: str(n.data.level) || "info",
      at: num(n.data.created_at),
      read: !isUnread(n.data) || this.read.has(`notification:${n.id}`),
      target: linkTarget(n.data.link),
    }));
    const raised = this.raised.map((n) => ({
      key: n.key,
      title: n.title,
      body: n.body,
      kind: n.kind,
      at: n.at_ms,
      read: this.read.has(n.key),
      target: n.target,
    }));
    return [...raised, ...fromServer].sort((a, b) => b.at - a.at);
  });

  unread = $derived(this.notifications.filter((n) => !n.read).length);

  /**
   * Why actions are unavailable on the active server (the shell says it takes none:
   * `Account.takes_actions`), or `null` where they work (a Pulse gateway, the demo).
   * The pages disable their action controls with this as the tooltip.
   */
  actionsBlocked = $derived<string | null>(this.account && !this.account.takes_actions ? NO_ACTIONS_NOTE : null);

  /**
   * Why actions of `kind` are unavailable on the active server (the shell's
   * `Account.actions`: a profile that does not declare it), or `null` where they work.
   */
  blockedFor(kind: Action["action"]): string | null {
    const a = this.account;
    if (!a || a.actions[kind]) return null;
    return a.takes_actions ? undeclaredNote(kind) : NO_ACTIONS_NOTE;
  }

  // ----- actions -----

  async act(action: Action): Promise<ActionOutcome | null> {
    // A server that does not take this action: say so, and never show an optimistic
    // change that the shell's refusal would only undo.
    const blocked = this.blockedFor(action.action);
    if (blocked) {
      this.toast("info", `${blocked}.`);
      return null;
    }
    const t = actionTarget(action);
    const k = keyOf(t.kind, t.id);
    // The optimistic change is the server's dialect's (the core's answer: a Pulse
    // gateway's fixed one, or what a profile declares), never re-derived here.
    let patch: Data = {};
    try {
      patch = await this.backend.optimistic(action);
    } catch {
      // No optimistic change is shown; the action is still sent.
    }
    this.overlays = new Map(this.overlays).set(k, { action, patch, phase: "sending" });
    let outcome: ActionOutcome;
    try {
      outcome = await this.backend.perform(action);
    } catch (e) {
      this.dropOverlay(k);
      this.toast("error", `Could not ${describeAction(action)}: ${errorMessage(e)}`);
      return null;
    }
    this.settle(k, action, outcome);
    return outcome;
  }

  private settle(k: string, action: Action, outcome: ActionOutcome): void {
    const t = actionTarget(action);
    const cur = this.maps.get(t.kind)?.get(t.id);
    const describe = (a: Action) => describeAction(a, cur ? str(cur.title ?? cur.key ?? cur.name) || undefined : undefined);
    switch (outcome.outcome) {
      case "done":
        // Apply the server's answer now (not at the next frame), so the item never
        // flickers back to its old state between the overlay and the update.
        {
          const { kind, id, data } = outcome.entity;
          const before = this.maps.get(kind)?.get(id);
          if (kind === "approval" && before && isPendingApproval(before) && !isPendingApproval(data)) this.leave(keyOf(kind, id), data);
          this.streamed?.add(keyOf(kind, id));
          this.maps.get(kind)?.set(id, data);
          this.changed(kind, id, false);
          this.touch([kind]);
        }
        this.dropOverlay(k);
        break;
      case "queued": {
        const o = this.overlays.get(k);
        if (o) this.overlays = new Map(this.overlays).set(k, { ...o, phase: "queued", outboxId: outcome.outbox_id });
        this.toast("info", `Offline: ${describe(action)} is queued and will be sent on reconnect`);
        break;
      }
      case "conflict":
        this.dropOverlay(k);
        this.toast("error", `Conflict — could not ${describe(action)}: ${outcome.message}`);
        if (outcome.current) {
          this.enqueue({ updates: [{ kind: t.kind, id: t.id, data: outcome.current as Data }] });
        }
        break;
      case "rejected":
        this.dropOverlay(k);
        this.toast("error", `Refused — could not ${describe(action)}: ${outcome.message}`);
        break;
    }
  }

  private dropOverlay(k: string): void {
    if (!this.overlays.has(k)) return;
    const m = new Map(this.overlays);
    m.delete(k);
    this.overlays = m;
  }

  private onOutbox(list: OutboxEntry[]): void {
    this.outbox = list;
  }

  private onSettled(s: SettledAction): void {
    const t = actionTarget(s.action);
    const k = keyOf(t.kind, t.id);
    this.settle(k, s.action, s.outcome);
    if (s.outcome.outcome === "done") {
      const cur = this.maps.get(t.kind)?.get(t.id);
      this.toast("success", `Sent: ${describeAction(s.action, cur ? str(cur.title ?? cur.name) || undefined : undefined)}`);
    }
  }

  approve(id: string, reason?: string) {
    return this.act({ action: "approve", id, reason: reason?.trim() || null });
  }
  reject(id: string, reason?: string) {
    return this.act({ action: "reject", id, reason: reason?.trim() || null });
  }
  /** Approve with edited arguments (a JSON object: check it with `parseEditedArgs`). */
  edit(id: string, args: Record<string, unknown>) {
    return this.act({ action: "edit", id, args });
  }
  /** Answer in words. */
  respond(id: string, text: string) {
    return this.act({ action: "respond", id, text: text.trim() });
  }
  moveTicket(id: string, state: string) {
    const cur = this.get("ticket", id);
    if (cur && cur.state === state) return Promise.resolve(null);
    return this.act({ action: "move_ticket", id, state });
  }
  terminate(id: string, reason?: string) {
    return this.act({ action: "terminate_agent", id, reason: reason?.trim() || null });
  }

  async retry(): Promise<void> {
    try {
      await this.backend.retryNow();
    } catch (e) {
      this.toast("error", errorMessage(e));
    }
  }

  async markRead(keys: string[]): Promise<void> {
    const todo = keys.filter((k) => !this.read.has(k));
    if (!todo.length) return;
    this.read = new Set([...this.read, ...todo]);
    try {
      await this.backend.markRead(todo);
    } catch (e) {
      this.toast("error", errorMessage(e));
    }
  }

  async saveSettings(s: Settings): Promise<boolean> {
    try {
      this.settings = await this.backend.saveSettings(s);
      return true;
    } catch (e) {
      this.toast("error", `Settings not saved: ${errorMessage(e)}`);
      return false;
    }
  }

  // ----- navigation -----

  open(t: Target): void {
    this.page = t.page;
    this.selected = t.kind && t.id ? { kind: t.kind, id: t.id } : null;
    this.search = "";
  }

  go(page: Page): void {
    this.page = page;
  }

  toast(kind: Toast["kind"], text: string): void {
    const id = ++this.toastSeq;
    this.toasts = [...this.toasts, { id, kind, text }].slice(-5);
    setTimeout(() => this.dismiss(id), kind === "error" ? 9000 : 4000);
  }

  dismiss(id: number): void {
    this.toasts = this.toasts.filter((t) => t.id !== id);
  }
}

export function num(v: unknown): number {
  if (typeof v === "number") return v;
  if (typeof v === "string") {
    const n = Number(v);
    if (!Number.isNaN(n)) return n;
    const d = Date.parse(v);
    return Number.isNaN(d) ? 0 : d;
  }
  return 0;
}

export function str(v: unknown): string {
  return typeof v === "string" ? v : v === null || v === undefined ? "" : String(v);
}

/** What a server notification's `link: {kind, id}` opens (`null`: no kind it names). */
function linkTarget(link: unknown): Target | null {
  if (!link || typeof link !== "object") return null;
  const l = link as { kind?: unknown; id?: unknown };
  const kind = kindNamed(l.kind);
  const page = pageOfKind(l.kind);
  if (!kind || !page) return null;
  return { kind, id: typeof l.id === "string" ? l.id : l.id == null ? null : String(l.id), page };
}

/** Entities as DTOs (tests). */
export function entity(kind: EntityKind, id: string, data: Data): Entity {
  return { kind, id, data: { id, ...data } };
}
