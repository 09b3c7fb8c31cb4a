import type { OutboxEntry, Owner } from "./generated/types";

/**
 * The queued actions of `owner` (the shell's `Account.owner`): those its session
 * sends and a sign-out's "discard" drops. The rule is the core's
 * (`store::Owner`: server and account both equal); the shell applies it, and
 * this counts the same way for what the UI shows. Entries with no owner (queued
 * before owners were recorded) are nobody's.
 */
export function queuedFor(entries: OutboxEntry[], owner: Owner | null | undefined): OutboxEntry[] {
  if (!owner) return [];
  return entries.filter((e) => e.owner !== null && e.owner.server === owner.server && e.owner.account === owner.account);
}
