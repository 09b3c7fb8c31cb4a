// The latency marks of the shell's PULSE_LATENCY_TRACE=1 (src-tauri/src/latency.rs):
// a batch that carries a trace is applied exactly as one without, and the page
// records the marks of each traced batch that held a stats block (the desktop
// benchmark's markers) in `globalThis.__pulseLatency`; untraced batches record nothing.
import { afterEach, describe, expect, it } from "vitest";
import { render } from "@testing-library/svelte";
import { tick } from "svelte";
import App from "../App.svelte";
import { AppState, LATENCY_TRACES, entity, type LatencyTrace } from "../lib/state/app.svelte";
import { FakeBackend } from "../lib/backend/fake";
import type { EntityUpdate, UpdateBatch } from "../lib/generated/types";

const g = globalThis as { __pulseLatency?: LatencyTrace[] };

function seed() {
  const out = [];
  for (let i = 0; i < 10; i++) {
    out.push(entity("agent", `ag${i}`, { name: `Agent ${i}`, status: "idle" }));
    out.push(entity("approval", `ap${i}`, { title: `Deploy ${i}`, status: "pending" }));
  }
  out.push(entity("stats", "bench", { marker: 0 }));
  return out;
}

async function mount() {
  const backend = new FakeBackend(seed());
  const pending: (() => void)[] = [];
  const app = new AppState(backend, (cb) => void pending.push(cb));
  const r = render(App, { props: { backend, app } });
  for (let i = 0; i < 5 && !app.loaded; i++) await new Promise((res) => setTimeout(res, 0));
  const frame = async () => {
    pending.splice(0).forEach((cb) => cb());
    await tick();
  };
  await frame();
  return { backend, app, frame, ...r };
}

/** Heartbeats with a stats marker every fourth batch; batch k holds 3 updates. */
function batches(n: number): EntityUpdate[][] {
  const out: EntityUpdate[][] = [];
  for (let k = 1; k <= n; k++) {
    const b: EntityUpdate[] = [
      { kind: "agent", id: `ag${k % 10}`, data: { id: `ag${k % 10}`, name: `Agent ${k % 10}`, status: k % 3 ? "idle" : "working", load: k } },
      { kind: "approval", id: `ap${k % 10}`, data: { id: `ap${k % 10}`, title: `Deploy ${k % 10}`, status: "pending", note: k } },
    ];
    b.push(k % 4 === 0 ? { kind: "stats", id: "bench", data: { marker: k * 1000 } } : { kind: "agent", id: `ag${(k + 5) % 10}`, data: { id: `ag${(k + 5) % 10}`, name: "x", status: "idle" } });
    out.push(b);
  }
  return out;
}

describe("latency trace", () => {
  afterEach(() => delete g.__pulseLatency);

  it("a traced batch gives the same DOM as an untraced one, and only traced stats batches are recorded", async () => {
    const plain = await mount();
    const traced = await mount();
    const all = batches(12);
    for (const [i, updates] of all.entries()) {
      plain.backend.emit("updates", { updates });
      const b: UpdateBatch = { updates, trace: { received: 1000 + i, emitted: 1000.5 + i } };
      traced.backend.emit("updates", b);
      // Two batches per apply: a traced batch that is not the first of its apply counts too.
      if (i % 2) {
        await plain.frame();
        await traced.frame();
      }
    }
    await plain.frame();
    await traced.frame();
    const html = (c: HTMLElement) => c.querySelector("[data-testid=content]")!.innerHTML;
    expect(html(traced.container)).toEqual(html(plain.container));
    expect(html(plain.container)).toContain("12,000");
    expect(traced.app.applied).toBe(plain.app.applied);

    const t = g.__pulseLatency!;
    // Markers every fourth batch: 4, 8, 12.
    expect(t.map((x) => x.stats[0].marker)).toEqual([4000, 8000, 12000]);
    for (const x of t) {
      expect(x.updates).toBe(3);
      expect(x.emitted - x.received).toBe(0.5);
      expect(x.arrived).toBeGreaterThan(x.emitted);
      expect(x.due).toBeGreaterThanOrEqual(x.arrived);
      expect(x.applied).toBeGreaterThanOrEqual(x.due);
    }
    plain.unmount();
    traced.unmount();
  });

  it("untraced batches record nothing, and the record is bounded", async () => {
    const m = await mount();
    for (const updates of batches(8)) m.backend.emit("updates", { updates });
    await m.frame();
    expect(g.__pulseLatency).toBeUndefined();
    g.__pulseLatency = Array.from({ length: LATENCY_TRACES }, () => ({ received: 0, emitted: 0, arrived: 0, due: 0, applied: 0, updates: 0, stats: [] }));
    m.backend.emit("updates", { updates: [{ kind: "stats", id: "bench", data: { marker: 1 } }], trace: { received: 1, emitted: 2 } });
    await m.frame();
    expect(g.__pulseLatency.length).toBe(LATENCY_TRACES);
    expect(g.__pulseLatency.at(-1)!.stats).toEqual([{ marker: 1 }]);
    m.unmount();
  });
});
