// The domain rules of pulse_protocol::domain, applied to the values Rust exports into
// the generated types: the one place in the UI that decides "pending", "escalated",
// "failed", "unread" and "which page shows this kind". The state, the pages and the
// fake backend all call these; none compares a status string itself.
//
// Same invariants as the Rust side, checked by both against one table of cases
// (crates/pulse-protocol/tests/domain_cases.json, run here by tests/domain.test.ts):
// - statuses compare ASCII-case-insensitively;
// - a status that is absent or not a string counts as absent (an approval without one
//   is pending; a conversation or agent without one is neither escalated nor failed);
// - only `read: true` marks a notification read;
// - a stats block's figures are its finite numbers, top level or one object down,
//   labelled by their key path; its record fields (STATS_RECORD_FIELDS) are none;
// - a ticket's PR link is `pr.url` only when it is an https URL with a host and no
//   whitespace or control character;
// - a ticket is active when its `state` is one of ACTIVE_TICKET_STATES;
// - a count whose entities are not held is read from the stats blocks (STATS_COUNTS:
//   the first source with a non-negative integer at its pointer; none: null);
// - a kind name is read case-insensitively; a name that is no kind has no page.
import { ACTIVE_TICKET_STATES, APPROVAL_SINCE_FIELDS, DONE_TICKET_STATES, ENDED_AGENT_STATUSES, ENTITY_KINDS, ESCALATED_STATUSES, FAILED_AGENT_STATUSES, PAGE_OF_KIND, PENDING_APPROVAL_STATUSES, RESOLVED_CONVERSATION_STATUSES, STATS_COUNTS, STATS_RECORD_FIELDS, WORKING_AGENT_STATUSES } from "./generated/types";
import type { EntityKind, Page } from "./generated/types";

type Fields = Record<string, unknown>;

/** ASCII-only lower case, as Rust's `eq_ignore_ascii_case` compares (a string with
 * no capital is its own: no copy, as for most statuses of a list's every row). */
const asciiLower = (s: string) => (/[A-Z]/.test(s) ? s.replace(/[A-Z]/g, (c) => c.toLowerCase()) : s);

/** Each list of values, lowered once. */
const loweredValues = new WeakMap<readonly string[], Set<string>>();

/** The `status` field, when it is a string. */
export function statusOf(data: Fields): string | undefined {
  return typeof data.status === "string" ? data.status : undefined;
}

/** Whether `status` is one of `values` (a constant list: it is lowered once), ignoring
 * ASCII case (`undefined`: none of them). */
export function statusIn(status: string | undefined, values: readonly string[]): boolean {
  if (status === undefined) return false;
  let lowered = loweredValues.get(values);
  if (!lowered) loweredValues.set(values, (lowered = new Set(values.map(asciiLower))));
  return lowered.has(asciiLower(status));
}

/** Whether an approval with these fields still waits for a decision. */
export function isPendingApproval(data: Fields): boolean {
  const s = statusOf(data);
  return s === undefined || statusIn(s, PENDING_APPROVAL_STATUSES);
}

/** Milliseconds since the Unix epoch of an RFC 3339 date-time
 * (`YYYY-MM-DDTHH:MM:SS[.fraction](Z|±HH:MM)`), the same grammar and ranges as
 * pulse_protocol::time::parse_rfc3339_ms (years 1970–9999); anything else: null. */
export function parseRfc3339Ms(text: string): number | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})[Tt ](\d{2}):(\d{2}):(\d{2})(?:\.(\d+))?(?:([Zz])|([+-])(\d{2}):(\d{2}))$/.exec(text.trim());
  if (!m) return null;
  const [y, mo, d, h, mi, s] = m.slice(1, 7).map(Number);
  if (y < 1970 || y > 9999 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 || s > 60) return null;
  let off = 0;
  if (!m[8]) {
    const oh = Number(m[10]), om = Number(m[11]);
    if (oh > 23 || om > 59) return null;
    off = (m[9] === "+" ? 1 : -1) * (oh * 3600 + om * 60);
  }
  const ms = m[7] ? Number(m[7].slice(0, 3).padEnd(3, "0")) : 0;
  // Date.UTC rolls days past a month's end over, as the Rust rule's civil arithmetic does.
  return Date.UTC(y, mo - 1, d, h, mi, 0) + (s - off) * 1000 + ms;
}

/** Since when an approval waits, ms since the Unix epoch: the first of
 * APPROVAL_SINCE_FIELDS that is a whole number or an RFC 3339 date-time (none: null). */
export function approvalWaitingSince(data: Fields): number | null {
  for (const f of APPROVAL_SINCE_FIELDS) {
    const v = data[f];
    if (typeof v === "number" && Number.isInteger(v) && Math.abs(v) < 9e15) return v;
    if (typeof v === "string") {
      const t = parseRfc3339Ms(v);
      if (t !== null) return t;
    }
  }
  return null;
}

/** The oldest `approvalWaitingSince` among the pending approvals of `list` (none: null). */
export function oldestWaitingSince(list: Fields[]): number | null {
  let oldest: number | null = null;
  for (const d of list) {
    if (!isPendingApproval(d)) continue;
    const at = approvalWaitingSince(d);
    if (at !== null && (oldest === null || at < oldest)) oldest = at;
  }
  return oldest;
}

/** Whether a conversation with these fields is escalated. */
export function isEscalated(data: Fields): boolean {
  return statusIn(statusOf(data), ESCALATED_STATUSES);
}

/** Whether an agent with these fields has failed. */
export function isFailedAgent(data: Fields): boolean {
  return statusIn(statusOf(data), FAILED_AGENT_STATUSES);
}

/** Whether a notification with these fields is unread. */
export function isUnread(data: Fields): boolean {
  return data.read !== true;
}

/** The kind named `name`, ignoring ASCII case (`null`: no such kind). */
export function kindNamed(name: unknown): EntityKind | null {
  if (typeof name !== "string") return null;
  const n = asciiLower(name);
  return ENTITY_KINDS.find((k) => k === n) ?? null;
}

/** The page that shows entities of the kind named `name` (`null`: no such kind). */
export function pageOfKind(name: unknown): Page | null {
  const k = kindNamed(name);
  return k ? PAGE_OF_KIND[k] : null;
}

/** One figure of a stats block: its key path (`["by_state", "todo"]`) and its number. */
export type Figure = [label: string[], value: number];

const isFigure = (v: unknown): v is number => typeof v === "number" && Number.isFinite(v);

/** The labelled figures of a stats block (order not part of the rule). */
export function statsFigures(data: Fields): Figure[] {
  const out: Figure[] = [];
  for (const [k, v] of Object.entries(data)) {
    if (STATS_RECORD_FIELDS.includes(k)) continue;
    if (isFigure(v)) out.push([[k], v]);
    else if (v && typeof v === "object" && !Array.isArray(v)) {
      for (const [k2, v2] of Object.entries(v as Fields)) if (isFigure(v2)) out.push([[k, k2], v2]);
    }
  }
  return out;
}

/** The URL a ticket's PR opens in the browser: https only (`null`: no link). */
export function prLink(data: Fields): string | null {
  const pr = data.pr;
  if (!pr || typeof pr !== "object" || Array.isArray(pr)) return null;
  const url = (pr as Fields).url;
  if (typeof url !== "string" || url.length < 8) return null;
  const host = url.slice(8).split(/[/?#]/)[0];
  const clean = !/[\s\p{Cc}]/u.test(url);
  return asciiLower(url.slice(0, 8)) === "https://" && host !== "" && !host.startsWith("@") && clean ? url : null;
}

/** Whether a ticket with these fields is being worked on. */
export function isActiveTicket(data: Fields): boolean {
  return statusIn(typeof data.state === "string" ? data.state : undefined, ACTIVE_TICKET_STATES);
}

/** Whether a ticket with these fields is finished. */
export function isDoneTicket(data: Fields): boolean {
  return statusIn(typeof data.state === "string" ? data.state : undefined, DONE_TICKET_STATES);
}

/** Whether an agent with these fields is still one of the tenant's agents (not ended). */
export function isLiveAgent(data: Fields): boolean {
  return !statusIn(statusOf(data), ENDED_AGENT_STATUSES);
}

/** Whether an agent with these fields is at work. */
export function isWorkingAgent(data: Fields): boolean {
  return statusIn(statusOf(data), WORKING_AGENT_STATUSES);
}

/** Whether a conversation with these fields is open (not resolved). */
export function isOpenConversation(data: Fields): boolean {
  return !statusIn(statusOf(data), RESOLVED_CONVERSATION_STATUSES);
}

/** The value at a JSON pointer (`/a/b`) of `v`. */
function pointer(v: unknown, ptr: string): unknown {
  if (!ptr.startsWith("/")) return undefined;
  let cur = v;
  for (const raw of ptr.slice(1).split("/")) {
    const k = raw.replace(/~1/g, "/").replace(/~0/g, "~");
    if (!cur || typeof cur !== "object" || Array.isArray(cur)) return undefined;
    cur = (cur as Fields)[k];
  }
  return cur;
}

/** The count `count` as the stats blocks give it (`block(id)`: the block held); null: none has it. */
export function countFromStats(count: string, block: (id: string) => Fields | undefined): number | null {
  const entry = STATS_COUNTS.find(([name]) => name === count);
  if (!entry) return null;
  for (const [id, ptr] of entry[2]) {
    const b = block(id);
    if (!b) continue;
    const n = pointer(b, ptr);
    if (typeof n === "number" && Number.isInteger(n) && n >= 0 && n < 9e15) return n;
  }
  return null;
}
