import type { OutboxEntry } from "./generated/types";

/**
 * The queued actions of one server and account: those its session sends and a
 * sign-out's "discard" drops. The shell decides that (the core's `store::Owner`:
 * both the server id and the account equal); this only counts the same way for
 * the question asked before signing out. Entries with no owner (queued before
 * owners were recorded) are nobody's.
 */
export function queuedFor(entries: OutboxEntry[], server: string, account: string | null): OutboxEntry[] {
  return entries.filter((e) => e.owner !== null && e.owner.server === server && e.owner.account === account);
}
