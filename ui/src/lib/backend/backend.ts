// The one interface the UI talks to. Implementations: TauriBackend (the shell, over
// IPC) and FakeBackend (tests and `npm run dev` in a browser).
import type {
  Account,
  Action,
  Bootstrap,
  BootstrapChunk,
  ConnectionView,
  Counts,
  ActionOutcome,
  Intent,
  OutboxEntry,
  QueuedOnSignOut,
  RaisedNotification,
  SettledAction,
  Settings,
  Target,
  UpdateBatch,
  UpdateStatus,
} from "../generated/types";

/** Payloads of the events the backend pushes, by short name. */
export interface BackendEvents {
  updates: UpdateBatch;
  reset: null;
  connection: ConnectionView;
  counts: Counts;
  outbox: OutboxEntry[];
  settled: SettledAction;
  notified: RaisedNotification;
  navigate: Target;
  settings: Settings;
}

export type Unlisten = () => void;

export interface Backend {
  /** Everything for the first paint, read from the local cache (no network): the
   * counts and the first piece of the entities; `more` names the stream the rest
   * comes from (`bootstrapMore`), `null` when the piece is all of them. */
  bootstrap(): Promise<Bootstrap>;
  /** The next chunk of bootstrap stream `stream` (rejects when a newer bootstrap
   * replaced it). */
  bootstrapMore(stream: number): Promise<BootstrapChunk>;
  /** Tell the shell the page's start-up phases, `[name, epoch ms]` (only when its
   * bootstrap says it traces: `Bootstrap.trace`). */
  startupMarks?(marks: [string, number][]): Promise<void>;
  /** Tell the shell the first screen was painted (once, after the first bootstrap's
   * frame): what the first paint does not need starts then (the tray, …). */
  painted?(): Promise<void>;
  /** Approve / reject / move / terminate: done now, queued offline, or a conflict. */
  perform(action: Action): Promise<ActionOutcome>;
  /**
   * The recent steps of the agent run behind an approval (a LangGraph thread's
   * history, newest first): `{steps: [{at, step, next, writes, values?}]}`. Rejects
   * when the server has none to show (not a LangGraph approval, offline).
   */
  approvalSteps(id: string): Promise<{ steps: Record<string, unknown>[] }>;
  /** How the entity `action` acts on looks once done (the server's dialect says). */
  optimistic(action: Action): Promise<Record<string, unknown>>;
  /**
   * Tell the server what the user does (opened / closed a task, presence, typing).
   * Answers `false` when the server's profile does not declare it: nothing is sent.
   */
  say(intent: Intent, value: string): Promise<boolean>;
  /** Open an https link (a task's PR) in the browser; the shell allows no other scheme. */
  openLink(url: string): Promise<void>;
  /** Milliseconds since the last input anywhere on the desktop; `null` where the shell cannot tell. */
  systemIdleMs(): Promise<number | null>;
  /** Reconnect now. */
  retryNow(): Promise<void>;
  saveSettings(settings: Settings): Promise<Settings>;
  login(serverId: string, username: string, password: string): Promise<Account>;
  /** Sign out; `queued` says what becomes of the actions queued and not yet sent. */
  logout(queued: QueuedOnSignOut): Promise<void>;
  /** Discard queued actions by id (another account's, or of no known account); what stays queued. */
  discardQueued(ids: number[]): Promise<OutboxEntry[]>;
  /** Store (or, empty, forget) a profile server's access token: OS keyring only. */
  setToken(serverId: string, token: string): Promise<Account>;
  /** Pause notifications for `minutes`, or resume with null. */
  pauseNotifications(minutes: number | null): Promise<Settings>;
  markRead(keys: string[]): Promise<void>;
  /** Check the settings' update endpoint; a release is offered only once its signature verified. */
  checkUpdates(): Promise<UpdateStatus>;
  /** Install the verified update (where Pulse owns its install; otherwise a message says what to do). */
  installUpdate(): Promise<void>;
  on<K extends keyof BackendEvents>(name: K, handler: (payload: BackendEvents[K]) => void): Promise<Unlisten>;
}

/** An error a command returned ({code, message}) or anything thrown. */
export function errorMessage(e: unknown): string {
  if (e && typeof e === "object" && "message" in e) return String((e as { message: unknown }).message);
  return String(e);
}
