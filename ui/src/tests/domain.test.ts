// The UI's domain rules against the table of cases the Rust rules are tested with
// (crates/pulse-protocol/tests/domain_cases.json): one table, both sides.
import { describe, expect, it } from "vitest";
import cases from "../../../crates/pulse-protocol/tests/domain_cases.json";
import { approvalWaitingSince, countFromStats, isActiveTicket, isEscalated, isFailedAgent, isPendingApproval, isUnread, pageOfKind, prLink, statsFigures } from "../lib/domain";

type Case = { data: Record<string, unknown>; expect: boolean };
const rules: [keyof typeof cases, (d: Record<string, unknown>) => boolean][] = [
  ["pending_approval", isPendingApproval],
  ["escalated", isEscalated],
  ["failed_agent", isFailedAgent],
  ["unread", isUnread],
  ["active_ticket", isActiveTicket],
];

describe("domain rules, from the shared table", () => {
  for (const [rule, pred] of rules) {
    it(rule, () => {
      const list = cases[rule] as Case[];
      expect(list.length).toBeGreaterThan(0);
      for (const c of list) expect({ rule, data: c.data, got: pred(c.data) }).toEqual({ rule, data: c.data, got: c.expect });
    });
  }
  it("stats_figures (expect sorted by label)", () => {
    expect(cases.stats_figures.length).toBeGreaterThan(0);
    const key = (l: string[]) => l.join("\u0001");
    for (const c of cases.stats_figures) {
      const got = statsFigures(c.data as Record<string, unknown>).sort((a, b) => (key(a[0]) < key(b[0]) ? -1 : 1));
      expect({ data: c.data, got }).toEqual({ data: c.data, got: c.expect });
    }
  });
  it("approval_waiting_since", () => {
    expect(cases.approval_waiting_since.length).toBeGreaterThan(0);
    for (const c of cases.approval_waiting_since) {
      expect({ data: c.data, got: approvalWaitingSince(c.data as Record<string, unknown>) }).toEqual({ data: c.data, got: c.expect });
    }
  });
  it("count_from_stats", () => {
    expect(cases.count_from_stats.length).toBeGreaterThan(0);
    for (const c of cases.count_from_stats) {
      const blocks = c.blocks as Record<string, Record<string, unknown>>;
      expect({ c, got: countFromStats(c.count, (id) => blocks[id]) }).toEqual({ c, got: c.expect });
    }
  });
  it("pr_link", () => {
    expect(cases.pr_link.length).toBeGreaterThan(0);
    for (const c of cases.pr_link) expect({ data: c.data, got: prLink(c.data as Record<string, unknown>) }).toEqual({ data: c.data, got: c.expect });
  });
  it("page_of_kind", () => {
    expect(cases.page_of_kind.length).toBeGreaterThan(0);
    for (const c of cases.page_of_kind) expect({ kind: c.kind, got: pageOfKind(c.kind) }).toEqual({ kind: c.kind, got: c.page });
  });
});
