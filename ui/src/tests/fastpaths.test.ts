// The UI state's fast paths give what the slow ones give (issue 12): per-kind
// versions, rows kept up to date by what changed and reused sort orders show the same
// DOM after a burst applied one update per frame, applied as it arrives (`onArrival`,
// on a clock the test moves) and coalesced into one frame, and the lists equal a
// rebuild and a sort from scratch.
import { afterEach, describe, expect, it, vi } from "vitest";
import { render } from "@testing-library/svelte";
import { tick } from "svelte";
import App from "../App.svelte";
import { APPLY_GAP_MAX_MS, APPLY_GAP_MS, AppState, SortMemo, compareText, entity, onArrival, str, type ArrivalEnv, type Item, type Scheduler } from "../lib/state/app.svelte";
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

/** `onArrival`'s page on a clock the test moves: microtasks run for real, timers
 * when the clock passes them (`advance`), or all of them (`drain`). */
function manualClock() {
  let t = 1000;
  let timers: { at: number; cb: () => void }[] = [];
  const soon: string[] = [];
  const env: ArrivalEnv = {
    now: () => t,
    soon: (cb) => {
      soon.push("soon");
      queueMicrotask(cb);
    },
    later: (ms, cb) => void timers.push({ at: t + ms, cb }),
  };
  const runDue = () => {
    const due = timers.filter((x) => x.at <= t);
    timers = timers.filter((x) => x.at > t);
    due.forEach((x) => x.cb());
  };
  return {
    env,
    soon,
    timers: () => timers,
    set: (now: number) => void (t = now),
    advance: (ms: number) => {
      t += ms;
      runDue();
    },
    drain: () => {
      while (timers.length) {
        t = Math.max(t, ...timers.map((x) => x.at));
        runDue();
      }
    },
  };
}

async function mount(schedule?: Scheduler) {
  const backend = new FakeBackend(seed());
  const frames = manualFrames();
  const app = new AppState(backend, schedule ?? frames.schedule);
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
  afterEach(() => vi.useRealTimers());
  it("a burst applied one update per frame, applied as it arrives and coalesced into one frame give the same DOM", async () => {
    // The slow path takes seconds on a loaded machine: with the wall clock moving, an
    // arrival mark (FRESH_MS) could expire in one app and not in another. Date stands
    // still here, and a decided approval's exit (LEAVE_MS, a real timer) is waited
    // out in every app before the DOMs are compared.
    vi.useFakeTimers({ toFake: ["Date"] });
    const clock = manualClock();
    const slow = await mount();
    const fast = await mount();
    const arriving = await mount(onArrival(clock.env));
    const start = await pages(slow.app, slow.container);
    expect(await pages(fast.app, fast.container)).toEqual(start);
    expect(await pages(arriving.app, arriving.container)).toEqual(start);
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
      // As they arrive: some alone (the page was quiet), some together (they came
      // within the gap of the last apply and waited for its end).
      for (const u of updates) {
        arriving.backend.emit("updates", { updates: [u] });
        if (r() < 0.3) await Promise.resolve();
        clock.advance(Math.floor(r() * 3));
      }
      await Promise.resolve();
      clock.drain();
      await tick();
      await vi.waitFor(
        () => {
          for (const m of [slow, fast, arriving]) expect(m.app.pendingApprovals.filter((a) => a.leaving)).toEqual([]);
        },
        { timeout: 10_000, interval: 20 },
      );
      const a = await pages(slow.app, slow.container);
      const b = await pages(fast.app, fast.container);
      const c = await pages(arriving.app, arriving.container);
      expect(b).toEqual(a);
      expect(c).toEqual(a);
      // Something was shown, and it moved.
      expect(a.agents).toContain("data-testid");
    }
    expect(fast.app.applied).toBe(slow.app.applied);
    expect(arriving.app.applied).toBe(slow.app.applied);
    // The arrival path did coalesce: fewer applies than updates, more than one.
    expect(arriving.app.frames).toBeLessThan(slow.app.frames);
    expect(arriving.app.frames).toBeGreaterThan(fast.app.frames);
    slow.unmount();
    fast.unmount();
    arriving.unmount();
  }, 120_000);

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

  it("the lists kept up to date by what changed equal a rebuild, with overlays and arrival marks", async () => {
    const { backend, frames, app, unmount } = await mount();
    // The slow path: `list` with what it kept forgotten (a rebuild from the maps).
    const rebuilt = (kind: Item["kind"]) => {
      (app as unknown as { lists: Map<string, unknown> }).lists.delete(kind);
      return app.list(kind);
    };
    const shape = (items: Item[]) => items.map((i) => [i.id, i.data, i.pending, i.fresh]);
    const r = rng(31);
    const acts: Promise<unknown>[] = [];
    for (let round = 0; round < 40; round++) {
      const updates = burst(30, r);
      // New entities too (they arrive marked fresh, at the end of their map).
      if (r() < 0.5) updates.push({ kind: "agent", id: `new${round}`, data: { id: `new${round}`, name: `Agent ${round % 13}`, status: "idle" } });
      backend.emit("updates", { updates });
      frames.frame();
      // Optimistic overlays on some, settled later.
      if (r() < 0.3) acts.push(app.moveTicket(`tk${Math.floor(r() * 40)}`, "review"));
      if (r() < 0.3) acts.push(app.approve(`ap${Math.floor(r() * 40)}`));
      await Promise.resolve();
      for (const kind of ["agent", "ticket", "approval", "conversation", "stats"] as const) {
        const kept = app.list(kind);
        expect(shape(kept)).toEqual(shape(rebuilt(kind)));
      }
      expect(app.agents.map((a) => a.id)).toEqual(
        app
          .list("agent")
          .slice()
          .sort((a, b) => str(a.data.name).localeCompare(str(b.data.name)) || a.id.localeCompare(b.id))
          .map((a) => a.id),
      );
    }
    await Promise.all(acts);
    frames.frame();
    for (const kind of ["agent", "ticket", "approval"] as const) expect(shape(app.list(kind))).toEqual(shape(rebuilt(kind)));
    // Some rows were overlaid, some fresh: the cases were exercised.
    expect(backend.calls.some((c) => c.name === "perform")).toBe(true);
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
    // A removal rebuilds the list, and still reuses the rows of the others.
    const kept = new Map(app.agents.map((a) => [a.id, a]));
    backend.emit("updates", { updates: [{ kind: "agent", id: "ag2", data: null }] });
    frames.frame();
    expect(app.agents.some((a) => a.id === "ag2")).toBe(false);
    expect(app.agents).toHaveLength(kept.size - 1);
    for (const a of app.agents) expect(a).toBe(kept.get(a.id));
    unmount();
  });
});

describe("onArrival", () => {
  it("applies at once when quiet, and within the gap after the last apply otherwise, never dropping one", async () => {
    const clock = manualClock();
    const schedule = onArrival(clock.env);
    const ran: number[] = [];
    // Quiet: in a microtask, no timer.
    schedule(() => ran.push(1));
    expect(clock.timers()).toHaveLength(0);
    expect(ran).toEqual([]);
    await Promise.resolve();
    expect(ran).toEqual([1]);
    // Right after an apply: at the end of the gap.
    schedule(() => ran.push(2));
    expect(clock.timers()).toHaveLength(1);
    expect(clock.timers()[0].at - 1000).toBe(APPLY_GAP_MS);
    clock.advance(APPLY_GAP_MS - 1);
    expect(ran).toEqual([1]);
    clock.advance(1);
    expect(ran).toEqual([1, 2]);
    // After the gap: at once again.
    clock.advance(APPLY_GAP_MS);
    schedule(() => ran.push(3));
    expect(clock.timers()).toHaveLength(0);
    await Promise.resolve();
    expect(ran).toEqual([1, 2, 3]);
    // One expensive apply (5 ms on the clock) among cheap ones leaves the gap as it
    // was (the median of the last APPLY_COSTS applies' costs)...
    const expensive = (ms: number, k: number) => () => {
      clock.set(clock.env.now() + ms);
      ran.push(k);
    };
    schedule(expensive(5, 4));
    clock.advance(APPLY_GAP_MS);
    expect(ran).toEqual([1, 2, 3, 4]);
    let t = clock.env.now();
    expect(schedule(() => ran.push(5))).toBe(t + APPLY_GAP_MS);
    expect(clock.timers()[0].at - t).toBe(APPLY_GAP_MS);
    clock.drain();
    expect(ran).toEqual([1, 2, 3, 4, 5]);
    // ...a page that stays expensive widens it to twice their cost...
    const gapAfter = async (ms: number[], k: number) => {
      for (const c of ms) {
        clock.advance(APPLY_GAP_MAX_MS);
        schedule(expensive(c, k));
        await Promise.resolve();
      }
      const at = clock.env.now();
      schedule(() => ran.push(k + 1));
      const gap = clock.timers()[0].at - at;
      clock.drain();
      return gap;
    };
    expect(await gapAfter([5, 5], 10)).toBe(10);
    // ...but never beyond one frame.
    expect(await gapAfter([50, 50, 50], 20)).toBe(APPLY_GAP_MAX_MS);
    expect(ran).toEqual([1, 2, 3, 4, 5, 10, 10, 11, 20, 20, 20, 21]);
  });

  it("an app on it applies batches in order, none dropped, once per gap under a flood", async () => {
    const clock = manualClock();
    const backend = new FakeBackend(seed());
    const app = new AppState(backend, onArrival(clock.env));
    await app.init();
    await Promise.resolve();
    const before = app.frames;
    const mark = (k: number) => backend.emit("updates", { updates: [{ kind: "stats", id: "bench", data: { id: "bench", marker: k } }] });
    // What arrives in one task is applied together, in a microtask.
    mark(1);
    mark(2);
    expect(app.stats("bench")?.marker).toBe(0);
    await Promise.resolve();
    expect(app.stats("bench")?.marker).toBe(2);
    // 98 batches apart, within the gap: they wait for its end, then go together.
    for (let k = 3; k <= 100; k++) {
      mark(k);
      await Promise.resolve();
    }
    expect(app.stats("bench")?.marker).toBe(2);
    clock.drain();
    expect(app.stats("bench")?.marker).toBe(100);
    expect(app.applied).toBe(100);
    expect(app.frames - before).toBe(2);
    app.destroy();
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
