// The UI state's fast paths give what the slow ones give (issue 12): per-kind
// versions, reused rows and reused sort orders show the same DOM after a burst
// applied one update per frame as after the same burst coalesced into one frame, and
// the lists equal a sort from scratch.
import { describe, expect, it } from "vitest";
import { render } from "@testing-library/svelte";
import { tick } from "svelte";
import App from "../App.svelte";
import { AppState, SortMemo, compareText, entity, str } from "../lib/state/app.svelte";
import { FakeBackend } from "../lib/backend/fake";
import type { EntityUpdate } from "../lib/generated/types";

/** A scheduler the test runs by hand: one call = one animation frame. */
function manualFrames() {
  const pending: (() => void)[] = [];
  return {
    schedule: (cb: () => void) => void pending.push(cb),
    frame: () => pending.splice(0).forEach((cb) => cb()),
  };
}

/** A small pseudo-random sequence, the same on every run. */
function rng(seed: number) {
  let x = seed >>> 0 || 1;
  return () => {
    x ^= x << 13;
    x ^= x >>> 17;
    x ^= x << 5;
    return (x >>> 0) / 2 ** 32;
  };
}

const T0 = Date.UTC(2026, 0, 1);

function seed() {
  const out = [];
  for (let i = 0; i < 40; i++) {
    out.push(entity("agent", `ag${i}`, { name: `Agent ${i % 13}`, status: i % 3 ? "idle" : "working" }));
    out.push(entity("approval", `ap${i}`, { title: `Deploy ${i}`, status: "pending", created_at: T0 + (i % 7) * 1000 }));
    out.push(entity("conversation", `cv${i}`, { customer: `C${i}`, subject: `S${i}`, status: i % 4 ? "open" : "escalated", escalated: i % 4 === 0, created_at: T0 + i }));
    out.push(entity("ticket", `tk${i}`, { title: `Ticket ${i}`, state: ["todo", "in_progress", "done"][i % 3] }));
    out.push(entity("notification", `nt${i}`, { title: `Note ${i}`, created_at: T0 + i }));
  }
  out.push(entity("stats", "bench", { marker: 0 }));
  return out;
}

/** A burst like the bench's: heartbeats, renames, new and decided approvals,
 * escalations, deletions and stats markers. */
function burst(n: number, r: () => number): EntityUpdate[] {
  const out: EntityUpdate[] = [];
  for (let k = 0; k < n; k++) {
    const i = Math.floor(r() * 50);
    const pick = r();
    if (pick < 0.5) out.push({ kind: "agent", id: `ag${i}`, data: { id: `ag${i}`, name: `Agent ${i % 13}`, status: "idle", load: k } });
    else if (pick < 0.6) out.push({ kind: "agent", id: `ag${i}`, data: { id: `ag${i}`, name: `Renamed ${Math.floor(r() * 9)}`, status: "working" } });
    else if (pick < 0.7)
      out.push({ kind: "approval", id: `ap${i}`, data: { id: `ap${i}`, title: `Deploy ${i}`, status: r() < 0.5 ? "approved" : "pending", created_at: T0 + (i % 7) * 1000 } });
    else if (pick < 0.8)
      out.push({ kind: "conversation", id: `cv${i}`, data: { id: `cv${i}`, customer: `C${i}`, subject: `S${i}`, status: "escalated", escalated: true, created_at: T0 + i, last_message_at: T0 + 100 + k } });
    else if (pick < 0.85) out.push({ kind: r() < 0.5 ? "agent" : "ticket", id: r() < 0.5 ? `ag${i}` : `tk${i}`, data: null });
    else if (pick < 0.9) out.push({ kind: "ticket", id: `tk${i}`, data: { id: `tk${i}`, title: `Ticket ${i}`, state: "in_progress" } });
    else out.push({ kind: "stats", id: "bench", data: { id: "bench", marker: k } });
  }
  return out;
}

async function mount() {
  const backend = new FakeBackend(seed());
  const frames = manualFrames();
  const app = new AppState(backend, frames.schedule);
  const r = render(App, { props: { backend, app } });
  // The bootstrap's answer, then its frame.
  for (let i = 0; i < 5 && !app.loaded; i++) await new Promise((res) => setTimeout(res, 0));
  frames.frame();
  await tick();
  return { backend, frames, app, ...r };
}

/** The rendered pages, without what tells the two apps apart (nothing should). */
async function pages(app: AppState, container: HTMLElement): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const p of ["overview", "agents", "board", "approvals", "conversations", "notifications"] as const) {
    app.go(p);
    await tick();
    out[p] = container.querySelector("[data-testid=content]")!.innerHTML.replace(/<!---->/g, "");
  }
  app.go("overview");
  await tick();
  return out;
}

describe("per-frame coalescing with per-kind versions", () => {
  it("a burst applied one update per frame and coalesced into one frame give the same DOM", async () => {
    const slow = await mount();
    const fast = await mount();
    expect(await pages(slow.app, slow.container)).toEqual(await pages(fast.app, fast.container));
    const r = rng(12);
    for (let round = 0; round < 4; round++) {
      const updates = burst(300, r);
      for (const u of updates) {
        slow.backend.emit("updates", { updates: [u] });
        slow.frames.frame();
        await tick();
      }
      for (const u of updates) fast.backend.emit("updates", { updates: [u] });
      fast.frames.frame();
      await tick();
      const a = await pages(slow.app, slow.container);
      const b = await pages(fast.app, fast.container);
      expect(b).toEqual(a);
      // Something was shown, and it moved.
      expect(a.agents).toContain("data-testid");
    }
    expect(fast.app.applied).toBe(slow.app.applied);
    slow.unmount();
    fast.unmount();
  });

  it("the lists equal a rebuild from scratch after every frame", async () => {
    const { backend, frames, app, unmount } = await mount();
    const r = rng(7);
    for (let round = 0; round < 30; round++) {
      backend.emit("updates", { updates: burst(40, r) });
      frames.frame();
      // The slow path: every entity's current state, sorted from scratch.
      const agents = app.list("agent").slice().sort((a, b) => str(a.data.name).localeCompare(str(b.data.name)) || a.id.localeCompare(b.id));
      expect(app.agents.map((a) => a.id)).toEqual(agents.map((a) => a.id));
      expect(app.agents.map((a) => a.data)).toEqual(agents.map((a) => a.data));
      expect(app.tickets.map((t) => [t.id, t.data])).toEqual(app.list("ticket").map((t) => [t.id, t.data]));
    }
    unmount();
  });

  it("an update of one kind leaves the rows of another the same objects", async () => {
    const { backend, frames, app, unmount } = await mount();
    const tickets = app.tickets;
    const agents = app.agents;
    backend.emit("updates", { updates: [{ kind: "agent", id: "ag1", data: { id: "ag1", name: "Agent 1", status: "idle", load: 9 } }] });
    frames.frame();
    expect(app.tickets).toBe(tickets);
    expect(app.agents).not.toBe(agents);
    // Unchanged agents keep their row objects; the changed one has a new row.
    const before = new Map(agents.map((a) => [a.id, a]));
    for (const a of app.agents) {
      if (a.id === "ag1") expect(a).not.toBe(before.get(a.id));
      else expect(a).toBe(before.get(a.id));
    }
    expect(app.get("agent", "ag1")?.load).toBe(9);
    unmount();
  });
});

describe("SortMemo", () => {
  it("gives a sort from scratch under random changes of order keys, members and order", () => {
    const r = rng(99);
    type Row = { id: string; name: string; n: number };
    const cmp = (a: Row, b: Row) => compareText(a.name, b.name) || a.n - b.n;
    const memo = new SortMemo<Row>((x) => `${x.name}\u0000${x.n}`, cmp);
    let rows: Row[] = Array.from({ length: 60 }, (_, i) => ({ id: `r${i}`, name: `N${i % 5}`, n: i % 3 }));
    for (let step = 0; step < 300; step++) {
      const p = r();
      if (p < 0.5) {
        // Same keys (a field the sort does not read changed): the memo's order is reused.
        rows = rows.map((x) => ({ ...x }));
      } else if (p < 0.7) {
        const i = Math.floor(r() * rows.length);
        rows = rows.map((x, j) => (j === i ? { ...x, name: `N${Math.floor(r() * 7)}` } : x));
      } else if (p < 0.8) rows = [...rows, { id: `x${step}`, name: `N${Math.floor(r() * 7)}`, n: step % 4 }];
      else if (p < 0.9 && rows.length > 1) rows = rows.filter((_, j) => j !== Math.floor(r() * rows.length));
      else rows = [...rows.slice(1), rows[0]];
      const want = rows.slice().sort(cmp);
      expect(memo.sort(rows)).toEqual(want);
      expect(memo.sort(rows).every((x, i) => x === want[i])).toBe(true);
    }
  });

  it("compareText orders as localeCompare does", () => {
    const words = ["b", "A", "a", "B", "ä", "z", "Z", "10", "9", "", "é", "e"];
    const a = words.slice().sort((x, y) => x.localeCompare(y));
    const b = words.slice().sort(compareText);
    expect(b).toEqual(a);
  });
});
