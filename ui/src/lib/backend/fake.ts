// An in-memory backend: for UI tests (drive it with emit/set*) and for running the UI
// in a plain browser (`npm run dev`), where `simulate()` makes it busy.
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
  ActionSet,
  Intent,
  OutboxEntry,
  QueuedOnSignOut,
  ProfileInfo,
  Settings,
  UpdateStatus,
} from "../generated/types";
import { NATIVE_PROFILE } from "../generated/types";
import { countFromStats, isActiveTicket, isDoneTicket, isEscalated, isFailedAgent, isLiveAgent, isOpenConversation, isPendingApproval, isUnread, isWorkingAgent, oldestWaitingSince } from "../domain";
import type { Backend, BackendEvents, Unlisten } from "./backend";
import { queuedFor } from "../outbox";

type Handler = (payload: never) => void;

/** The fake shell's stand-in for the core's `saved_profile::is_native`. */
const speaksNative = (profile: string) => profile.trim() === "" || profile.trim() === NATIVE_PROFILE;

const ALL_ACTIONS: ActionSet = { approve: true, reject: true, edit: true, respond: true, move_ticket: true, terminate_agent: true };
const NO_ACTIONS: ActionSet = { approve: false, reject: false, edit: false, respond: false, move_ticket: false, terminate_agent: false };
/** What the built-in `agent-monitor` profile declares (seed 000: moves, terminations). */
const MONITOR_ACTIONS: ActionSet = { ...NO_ACTIONS, move_ticket: true, terminate_agent: true };

/** The fake shell's stand-in for the core's `Speaks::actions`. */
function fakeActions(profile: string): ActionSet {
  if (speaksNative(profile)) return ALL_ACTIONS;
  return profile.trim() === "agent-monitor" ? MONITOR_ACTIONS : NO_ACTIONS;
}

export function defaultSettings(): Settings {
  return {
    servers: [],
    active_server: null,
    notifications: {
      enabled: true,
      approvals: true,
      escalations: true,
      agent_failures: false,
      escalations_bypass_dnd: true,
      dnd_until_ms: null,
      remind_after_min: 0,
    },
    start_at_login: false,
    theme: "system",
    updates: { endpoint: null, check_at_start: false },
    ca_file: null,
  };
}

/** The built-in profiles, as the shell lists them. */
export const FAKE_PROFILES: ProfileInfo[] = [
  { name: "agent-monitor", description: "000: agent monitor + kanban (Node `ws`, tenant rooms)", needs_token: true, caveat: "no replay of missed events" },
  { name: "event-bridge", description: "001: event bridge stats badges (Node `ws`, `/ws?token=`)", needs_token: true, caveat: "this server cannot replay missed events" },
  { name: "nest-realtime", description: "002: NestJS Socket.IO `/realtime` (approvals, agents, notifications, chat)", needs_token: true, caveat: "replay only while the server keeps the session" },
  { name: "fastapi-dashboard", description: "003: FastAPI `/ws/dashboard?token=` (stats, executions)", needs_token: true, caveat: "no replay" },
  { name: "tasks-gateway", description: "004: NestJS Socket.IO tasks gateway (dashboard + task rooms, resync)", needs_token: false, caveat: "no authentication, no replay" },
];

export class FakeBackend implements Backend {
  entities = new Map<string, Entity>();
  connection: ConnectionView = { state: { state: "live" }, last_sync_ms: Date.now(), server: "http://127.0.0.1:1", demo: true, caveat: null };
  settings: Settings = defaultSettings();
  outbox: OutboxEntry[] = [];
  /** What `bootstrap` says about a cache moved aside at open (tests set it). */
  cacheSetAside: string | null = null;
  online = true;
  /** Set to make the next perform answer this (conflict/rejected tests). */
  nextOutcome: ActionOutcome | null = null;
  calls: { name: string; args: unknown }[] = [];
  private handlers = new Map<string, Set<Handler>>();
  private nextOutbox = 1;
  private timer: ReturnType<typeof setInterval> | null = null;

  constructor(entities: Entity[] = []) {
    for (const e of entities) this.entities.set(`${e.kind}:${e.id}`, e);
  }

  // ----- test helpers -----
  emit<K extends keyof BackendEvents>(name: K, payload: BackendEvents[K]): void {
    for (const h of this.handlers.get(name) ?? []) (h as (p: BackendEvents[K]) => void)(payload);
  }
  /** Upsert entities as the server would (applied to the fake's cache and pushed). */
  push(...entities: Entity[]): void {
    for (const e of entities) this.entities.set(`${e.kind}:${e.id}`, e);
    this.emit("updates", { updates: entities.map((e) => ({ kind: e.kind, id: e.id, data: e.data })) });
    this.emitCounts();
  }
  remove(kind: EntityKind, id: string): void {
    this.entities.delete(`${kind}:${id}`);
    this.emit("updates", { updates: [{ kind, id, data: null }] });
    this.emitCounts();
  }
  setConnection(c: Partial<ConnectionView>): void {
    this.connection = { ...this.connection, ...c };
    this.emit("connection", this.connection);
  }
  listeners(name: keyof BackendEvents): number {
    return this.handlers.get(name)?.size ?? 0;
  }

  /** As the core's CountTracker: entities held, else the stats blocks (domain.countFromStats). */
  private counts(): Counts {
    const all = [...this.entities.values()];
    const of = (kind: EntityKind) => all.filter((x) => x.kind === kind);
    const count = (name: keyof Counts, kind: EntityKind, pred: (d: Record<string, unknown>) => boolean) => {
      const held = of(kind);
      if (held.length) return held.filter((x) => pred(x.data)).length;
      return countFromStats(name, (id) => this.entities.get(`stats:${id}`)?.data) ?? 0;
    };
    return {
      pending_approvals: count("pending_approvals", "approval", isPendingApproval),
      open_escalations: count("open_escalations", "conversation", isEscalated),
      unread_notifications: count("unread_notifications", "notification", isUnread),
      tasks_in_progress: count("tasks_in_progress", "ticket", isActiveTicket),
      oldest_pending_since_ms: oldestWaitingSince(of("approval").map((x) => x.data)),
      tasks_total: count("tasks_total", "ticket", () => true),
      tasks_done: count("tasks_done", "ticket", isDoneTicket),
      open_conversations: count("open_conversations", "conversation", isOpenConversation),
      live_agents: of("agent").filter((a) => isLiveAgent(a.data)).length,
      working_agents: of("agent").filter((a) => isLiveAgent(a.data) && isWorkingAgent(a.data)).length,
      failing_agents: of("agent").filter((a) => isLiveAgent(a.data) && isFailedAgent(a.data)).length,
    };
  }

  /** As the core's pump: the counts after a change, when they changed. */
  private lastCounts = "";
  private emitCounts(): void {
    if (!this.handlers.get("counts")?.size) return;
    const c = this.counts();
    const j = JSON.stringify(c);
    if (j === this.lastCounts) return;
    this.lastCounts = j;
    this.emit("counts", c);
  }

  /** Bootstrap in pieces as the shell does (`Shell::bootstrap`): `null` (the default)
   * answers every entity at once; a number is the chunk size of the rest, after a
   * first piece of the stats and the first `firstRows` of each other kind. */
  chunk: number | null = null;
  firstRows = 100;
  private stream: { id: number; rest: Entity[] } | null = null;
  private streamSeq = 0;

  /** The kinds with entities still in `rest`. */
  private static loadingOf(rest: Entity[]): EntityKind[] {
    return [...new Set(rest.map((e) => e.kind))];
  }

  // ----- Backend -----
  async bootstrap(): Promise<Bootstrap> {
    this.calls.push({ name: "bootstrap", args: null });
    let entities = [...this.entities.values()];
    let more: number | null = null;
    let loading: EntityKind[] = [];
    this.stream = null;
    if (this.chunk !== null) {
      const first: Entity[] = [];
      const rest: Entity[] = [];
      const taken = new Map<EntityKind, number>();
      for (const e of entities) {
        const n = taken.get(e.kind) ?? 0;
        if (e.kind === "stats" || n < this.firstRows) {
          first.push(e);
          taken.set(e.kind, n + 1);
        } else rest.push(e);
      }
      if (rest.length) {
        more = ++this.streamSeq;
        this.stream = { id: more, rest };
        loading = FakeBackend.loadingOf(rest);
      }
      entities = first;
    }
    return {
      entities,
      more,
      loading,
      trace: false,
      connection: this.connection,
      counts: this.counts(),
      outbox: [...this.outbox],
      notifications: [],
      read: [],
      settings: structuredClone(this.settings),
      account: this.account(),
      version: "0.0.0-fake",
      open: null,
      profiles: structuredClone(FAKE_PROFILES),
      cache_set_aside: this.cacheSetAside,
    };
  }

  async bootstrapMore(stream: number): Promise<BootstrapChunk> {
    this.calls.push({ name: "bootstrapMore", args: stream });
    const st = this.stream;
    if (!st || st.id !== stream) throw { code: "stale", message: "a newer bootstrap replaced this one" };
    const entities = st.rest.splice(0, Math.max(1, this.chunk ?? st.rest.length));
    if (!st.rest.length) this.stream = null;
    return { entities, more: st.rest.length > 0, loading: FakeBackend.loadingOf(st.rest) };
  }

  /** As the core's dialects: a move shows in its column, a termination as terminating. */
  async optimistic(action: Action): Promise<Record<string, unknown>> {
    this.calls.push({ name: "optimistic", args: action });
    if (!this.account().actions[action.action]) return {};
    switch (action.action) {
      case "move_ticket":
        return { state: action.state };
      case "terminate_agent":
        return { status: "terminating" };
      default:
        return {};
    }
  }

  /** What `approvalSteps` answers, by approval id (tests set it). */
  steps = new Map<string, { steps: Record<string, unknown>[] }>();

  async approvalSteps(id: string): Promise<{ steps: Record<string, unknown>[] }> {
    this.calls.push({ name: "approvalSteps", args: id });
    const s = this.steps.get(id);
    if (!s) throw { code: "unavailable", message: `approval \`${id}\` has no agent run to show` };
    return s;
  }

  async perform(action: Action): Promise<ActionOutcome> {
    this.calls.push({ name: "perform", args: action });
    // As the shell: a server that takes no actions (a profile server) refuses them.
    const acct = this.account();
    if (!acct.actions[action.action]) {
      throw { code: "unsupported", message: `${acct.server_name} speaks the “${acct.profile}” profile, which declares no \`${action.action}\` action: act on it in its own dashboard` };
    }
    if (this.nextOutcome) {
      const o = this.nextOutcome;
      this.nextOutcome = null;
      return o;
    }
    if (!this.online) {
      const entry: OutboxEntry = { id: this.nextOutbox++, owner: acct.owner, action, queued_at: Date.now(), last_error: null };
      this.outbox.push(entry);
      this.emit("outbox", [...this.outbox]);
      return { outcome: "queued", outbox_id: entry.id };
    }
    const kind: EntityKind = action.action === "move_ticket" ? "ticket" : action.action === "terminate_agent" ? "agent" : "approval";
    const cur = this.entities.get(`${kind}:${action.id}`);
    if (!cur) return { outcome: "rejected", message: `no ${kind} ${action.id}` };
    const data = { ...cur.data };
    if (action.action === "approve") data.status = "approved";
    if (action.action === "reject") { data.status = "rejected"; data.reason = action.reason; }
    if (action.action === "move_ticket") data.state = action.state;
    if (action.action === "terminate_agent") data.status = "terminated";
    const entity = { kind, id: action.id, data };
    // The server's event follows the answer.
    setTimeout(() => this.push(entity), 0);
    return { outcome: "done", entity };
  }

  /** Go back online: queued actions are sent and settle. */
  reconnect(): void {
    this.online = true;
    const queued = this.outbox.splice(0);
    for (const q of queued) {
      void this.perform(q.action).then((outcome) => this.emit("settled", { outbox_id: q.id, action: q.action, outcome }));
    }
    this.emit("outbox", []);
    this.setConnection({ state: { state: "live" }, last_sync_ms: Date.now() });
  }

  /** The intents this fake server takes (as a profile declares them; a Pulse gateway none); tests set them. */
  intents = new Set<Intent>();
  async say(intent: Intent, value: string): Promise<boolean> {
    this.calls.push({ name: "say", args: { intent, value } });
    return this.intents.has(intent);
  }
  /** The desktop's idle time the fake reports (`null`: it cannot tell); tests set it. */
  systemIdle: number | null = null;
  async systemIdleMs(): Promise<number | null> {
    return this.systemIdle;
  }
  async openLink(url: string): Promise<void> {
    this.calls.push({ name: "open_link", args: url });
  }
  async retryNow(): Promise<void> {
    this.calls.push({ name: "retry_now", args: null });
  }
  async saveSettings(settings: Settings): Promise<Settings> {
    this.calls.push({ name: "save_settings", args: settings });
    this.settings = structuredClone(settings);
    return structuredClone(settings);
  }
  async login(serverId: string, username: string, password: string): Promise<Account> {
    this.calls.push({ name: "login", args: { serverId, username } });
    if (password !== "demo") throw { code: "auth", message: `sign-in refused for user \`${username}\`: wrong user name or password` };
    const p = this.settings.servers.find((s) => s.id === serverId);
    return { server_name: p?.name ?? serverId, server_url: p?.url ?? "", username, intents: [...this.intents], keyring_available: this.keyringError === null, keyring_error: this.keyringError, profile: NATIVE_PROFILE, token_saved: false, takes_actions: true, actions: ALL_ACTIONS, owner: { server: serverId, account: username } };
  }
  /** Access tokens by server id: the fake's keyring (never in `settings`). */
  tokens = new Map<string, string>();
  /** Set to play a system without a keyring. */
  keyringError: string | null = null;
  private account(): Account {
    const p = this.settings.servers.find((s) => s.id === this.settings.active_server);
    if (!p) return { server_name: "Demo (built-in)", server_url: this.connection.server ?? "", username: "demo", intents: [...this.intents], keyring_available: this.keyringError === null, keyring_error: this.keyringError, profile: NATIVE_PROFILE, token_saved: false, takes_actions: true, actions: ALL_ACTIONS, owner: { server: "demo", account: "demo" } };
    // As the shell: only a Pulse gateway takes actions (the core's rule; the UI reads
    // the answer, `takes_actions`, and never derives it).
    return { server_name: p.name, server_url: p.url, username: p.username, intents: [...this.intents], keyring_available: this.keyringError === null, keyring_error: this.keyringError, profile: p.profile, token_saved: this.tokens.has(p.id), takes_actions: fakeActions(p.profile) !== NO_ACTIONS, actions: fakeActions(p.profile), owner: { server: p.id, account: p.username ?? null } };
  }
  async setToken(serverId: string, token: string): Promise<Account> {
    this.calls.push({ name: "set_token", args: { serverId, token: token ? "***" : "" } });
    const p = this.settings.servers.find((s) => s.id === serverId);
    if (!p) throw { code: "invalid", message: "no such server" };
    if (speaksNative(p.profile)) throw { code: "invalid", message: "a Pulse gateway takes a sign-in, not an access token" };
    if (token.trim()) this.tokens.set(serverId, token.trim());
    else this.tokens.delete(serverId);
    return this.account();
  }
  async discardQueued(ids: number[]): Promise<OutboxEntry[]> {
    this.calls.push({ name: "discard_queued", args: ids });
    this.outbox = this.outbox.filter((e) => !ids.includes(e.id));
    this.emit("outbox", [...this.outbox]);
    return [...this.outbox];
  }
  async logout(queued: QueuedOnSignOut): Promise<void> {
    this.calls.push({ name: "logout", args: queued });
    if (queued === "discard") {
      // As the shell: only the signed-in account's entries.
      const mine = queuedFor(this.outbox, this.account().owner);
      this.outbox = this.outbox.filter((e) => !mine.includes(e));
      this.emit("outbox", [...this.outbox]);
    }
  }
  async pauseNotifications(minutes: number | null): Promise<Settings> {
    this.settings.notifications.dnd_until_ms = minutes === null ? null : Date.now() + minutes * 60_000;
    return structuredClone(this.settings);
  }
  /** What `checkUpdates` answers (tests set it); `installError` makes `installUpdate` fail with it. */
  updateStatus: UpdateStatus = { status: "not_configured" };
  installError: { code: string; message: string } | null = null;
  async checkUpdates(): Promise<UpdateStatus> {
    this.calls.push({ name: "check_updates", args: null });
    return structuredClone(this.updateStatus);
  }
  async installUpdate(): Promise<void> {
    this.calls.push({ name: "install_update", args: null });
    if (this.installError) throw this.installError;
  }
  async markRead(keys: string[]): Promise<void> {
    this.calls.push({ name: "mark_read", args: keys });
  }
  async on<K extends keyof BackendEvents>(name: K, handler: (p: BackendEvents[K]) => void): Promise<Unlisten> {
    let set = this.handlers.get(name);
    if (!set) this.handlers.set(name, (set = new Set()));
    set.add(handler as Handler);
    return () => set!.delete(handler as Handler);
  }

  /** Make the fake busy (browser dev mode). */
  simulate(): void {
    if (this.timer) return;
    const names = ["Atlas", "Briar", "Cobalt", "Delta", "Ember", "Flint"];
    for (let i = 0; i < names.length; i++) {
      this.push({ kind: "agent", id: `agent-${i}`, data: { id: `agent-${i}`, name: names[i], status: "working", role: "builder", last_heartbeat: Date.now() } });
    }
    const states = ["backlog", "todo", "in_progress", "review", "done"];
    for (let i = 1; i <= 40; i++) {
      this.push({ kind: "ticket", id: `t-${i}`, data: { id: `t-${i}`, key: `OPS-${i}`, title: `Ticket number ${i}`, state: states[i % 5], priority: ["low", "medium", "high", "urgent"][i % 4] } });
    }
    let n = 0;
    this.timer = setInterval(() => {
      n++;
      const a = `agent-${n % names.length}`;
      const cur = this.entities.get(`agent:${a}`);
      if (cur) this.push({ ...cur, data: { ...cur.data, last_heartbeat: Date.now() } });
      if (n % 8 === 0) {
        this.push({ kind: "approval", id: `ap-${n}`, data: { id: `ap-${n}`, title: `Deploy build ${n} to production`, agent_name: names[n % names.length], risk: n % 3 ? "medium" : "high", status: "pending", created_at: Date.now() } });
      }
      if (n % 13 === 0) {
        this.push({ kind: "conversation", id: `c-${n}`, data: { id: `c-${n}`, customer: "Ada Lovelace", subject: "Refund request", status: n % 26 ? "open" : "escalated", reason: "Customer asked for a human", created_at: Date.now() } });
      }
    }, 700);
  }
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = null;
  }
}
