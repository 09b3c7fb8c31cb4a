// What the connection indicator says, from the backend's ConnectionView.
import type { ConnectionView } from "./generated/types";
import { clock } from "./format.svelte";

export type Level = "live" | "connecting" | "reconnecting" | "offline" | "failed" | "signed_out";

export interface Indicator {
  level: Level;
  /** The short word on the pill: Live, Connecting, Reconnecting, Offline, Failed, Signed out. */
  label: string;
  /** One line of detail. */
  detail: string;
  /** Offer a Retry button. */
  retry: boolean;
  /** Offer a Sign in link. */
  signIn: boolean;
  /** What the server cannot guarantee (a profile server), shown beside the pill. */
  caveat: string | null;
}

/** The caveat as a sentence: "This server cannot replay …". */
export function caveatText(c: ConnectionView): string | null {
  const t = c.caveat?.trim();
  if (!t || c.demo) return null;
  const s = t[0].toUpperCase() + t.slice(1);
  return /[.!?]$/.test(s) ? s : `${s}.`;
}

function dataFrom(c: ConnectionView): string {
  return c.last_sync_ms ? `data from ${clock(c.last_sync_ms)}` : "no data cached yet";
}

/** Attempts after which a reconnecting client is shown as offline. */
export const OFFLINE_AFTER = 3;

export function indicator(c: ConnectionView, now: number = Date.now()): Indicator {
  return { ...state(c, now), caveat: caveatText(c) };
}

function state(c: ConnectionView, now: number): Omit<Indicator, "caveat"> {
  const s = c.state;
  switch (s.state) {
    case "live":
      return { level: "live", label: "Live", detail: c.demo ? "demo server" : "up to date", retry: false, signIn: false };
    case "polling":
      return { level: "live", label: "Live", detail: `polling (${s.reason})`, retry: false, signIn: false };
    case "connecting":
      return s.attempt <= 1
        ? { level: "connecting", label: "Connecting", detail: c.last_sync_ms ? `showing ${dataFrom(c)}` : "first sync…", retry: false, signIn: false }
        : { level: "reconnecting", label: "Reconnecting", detail: `trying now · ${dataFrom(c)}`, retry: false, signIn: false };
    case "reconnecting": {
      const secs = Math.max(0, Math.ceil((s.retry_at_ms - now) / 1000));
      const next = secs > 0 ? `next try in ${secs} s` : "trying now";
      if (s.attempt >= OFFLINE_AFTER) {
        // Reads "Offline — data from 14:02 · next try in 5 s".
        return { level: "offline", label: "Offline", detail: `— ${dataFrom(c)} · ${next}`, retry: true, signIn: false };
      }
      return { level: "reconnecting", label: "Reconnecting", detail: `${next} · Offline — ${dataFrom(c)}`, retry: true, signIn: false };
    }
    case "failed": {
      const secs = Math.max(0, Math.ceil((s.retry_at_ms - now) / 1000));
      return { level: "failed", label: "Failed", detail: `${s.error} · Offline — ${dataFrom(c)}${secs ? ` · retrying in ${secs} s` : ""}`, retry: true, signIn: false };
    }
    // Two states read "Signed out": the session's `unauthorized` (the server refused
    // the credentials it had) and the shell's `signed_out` (no session could start:
    // nothing stored, no keyring, a bad server setting). Either way the user acts.
    case "unauthorized":
    case "signed_out":
      return { level: "signed_out", label: "Signed out", detail: s.message, retry: false, signIn: true };
    case "stopped":
      return { level: "offline", label: "Offline", detail: `— ${dataFrom(c)}`, retry: true, signIn: false };
  }
}
