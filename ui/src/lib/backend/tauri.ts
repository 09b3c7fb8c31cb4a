import { invoke } from "@tauri-apps/api/core";
import { listen } from "@tauri-apps/api/event";
import { openUrl } from "@tauri-apps/plugin-opener";
import { EVENTS } from "../generated/types";
import type { Account, Action, Bootstrap, BootstrapChunk, ActionOutcome, Intent, OutboxEntry, QueuedOnSignOut, Settings, UpdateStatus } from "../generated/types";
import type { Backend, BackendEvents, Unlisten } from "./backend";

const NAMES: Record<keyof BackendEvents, string> = {
  updates: EVENTS.UPDATES,
  reset: EVENTS.RESET,
  connection: EVENTS.CONNECTION,
  counts: EVENTS.COUNTS,
  outbox: EVENTS.OUTBOX,
  settled: EVENTS.SETTLED,
  notified: EVENTS.NOTIFIED,
  navigate: EVENTS.NAVIGATE,
  settings: EVENTS.SETTINGS,
};

/** The Tauri shell, over IPC. */
export class TauriBackend implements Backend {
  bootstrap(): Promise<Bootstrap> {
    return invoke("bootstrap");
  }
  bootstrapMore(stream: number): Promise<BootstrapChunk> {
    return invoke("bootstrap_more", { stream });
  }
  startupMarks(marks: [string, number][]): Promise<void> {
    return invoke("startup_marks", { marks });
  }
  painted(): Promise<void> {
    return invoke("painted");
  }
  perform(action: Action): Promise<ActionOutcome> {
    return invoke("perform", { action });
  }
  approvalSteps(id: string): Promise<{ steps: Record<string, unknown>[] }> {
    return invoke("approval_steps", { id });
  }
  optimistic(action: Action): Promise<Record<string, unknown>> {
    return invoke("optimistic", { action });
  }
  say(intent: Intent, value: string): Promise<boolean> {
    return invoke("say", { intent, value });
  }
  systemIdleMs(): Promise<number | null> {
    return invoke("system_idle_ms");
  }
  openLink(url: string): Promise<void> {
    return openUrl(url);
  }
  retryNow(): Promise<void> {
    return invoke("retry_now");
  }
  saveSettings(settings: Settings): Promise<Settings> {
    return invoke("save_settings", { settings });
  }
  login(serverId: string, username: string, password: string): Promise<Account> {
    return invoke("login", { serverId, username, password });
  }
  logout(queued: QueuedOnSignOut): Promise<void> {
    return invoke("logout", { queued });
  }
  discardQueued(ids: number[]): Promise<OutboxEntry[]> {
    return invoke("discard_queued", { ids });
  }
  setToken(serverId: string, token: string): Promise<Account> {
    return invoke("set_token", { serverId, token });
  }
  pauseNotifications(minutes: number | null): Promise<Settings> {
    return invoke("pause_notifications", { minutes });
  }
  markRead(keys: string[]): Promise<void> {
    return invoke("mark_read", { keys });
  }
  checkUpdates(): Promise<UpdateStatus> {
    return invoke("check_updates");
  }
  installUpdate(): Promise<void> {
    return invoke("install_update");
  }
  async on<K extends keyof BackendEvents>(name: K, handler: (p: BackendEvents[K]) => void): Promise<Unlisten> {
    return listen<BackendEvents[K]>(NAMES[name], (e) => handler(e.payload));
  }
}

/** Whether the page runs inside the Tauri shell. */
export function inTauri(): boolean {
  return typeof window !== "undefined" && "__TAURI_INTERNALS__" in window;
}
