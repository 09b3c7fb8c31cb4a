import { afterEach, beforeEach, describe, expect, it, vi } from "vitest";
import { IdleWatch } from "../lib/idle";

const IDLE = 300_000;

function watch(system: () => number | null) {
  const states: boolean[] = [];
  const w = new IdleWatch({ setIdle: (v) => states.push(v) }, async () => system(), IDLE, 15_000);
  return { w, states, last: () => states[states.length - 1] };
}

describe("idle watch", () => {
  beforeEach(() => vi.useFakeTimers());
  afterEach(() => vi.useRealTimers());

  it("where the desktop cannot tell, no input to the window for the limit is idle", async () => {
    const { w, last } = watch(() => null);
    w.active();
    await vi.advanceTimersByTimeAsync(IDLE - 1);
    expect(last()).toBe(false);
    await vi.advanceTimersByTimeAsync(1);
    expect(last()).toBe(true);
    w.active();
    expect(last()).toBe(false);
    w.stop();
  });

  it("input in other applications keeps the user present, and ends idle when it comes back", async () => {
    let sys = 20_000; // the user typed elsewhere 20 s ago
    const { w, last } = watch(() => sys);
    w.active();
    await vi.advanceTimersByTimeAsync(IDLE);
    expect(last()).toBe(false);
    // Nobody at the desktop since: idle once the desktop's own idle time reaches the limit.
    sys = IDLE;
    await vi.advanceTimersByTimeAsync(IDLE - 20_000);
    expect(last()).toBe(true);
    // Back at another application: seen within one poll.
    sys = 1_000;
    await vi.advanceTimersByTimeAsync(15_000);
    expect(last()).toBe(false);
    w.stop();
  });

  it("a failing shell is read as cannot tell, and stop clears every timer", async () => {
    const states: boolean[] = [];
    const w = new IdleWatch({ setIdle: (v) => states.push(v) }, () => Promise.reject(new Error("no shell")), IDLE);
    w.active();
    await vi.advanceTimersByTimeAsync(IDLE);
    expect(states.at(-1)).toBe(true);
    w.stop();
    w.active();
    await vi.advanceTimersByTimeAsync(IDLE * 2);
    expect(states.at(-1)).toBe(true);
    expect(vi.getTimerCount()).toBe(0);
  });
});
