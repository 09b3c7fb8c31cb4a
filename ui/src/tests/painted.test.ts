// The shell is told once that the first screen was painted (issue 12, cold start:
// the tray and pulse://'s registration wait for it, `startup::AfterPaint`): after
// the frame of the first bootstrap, not before it, and not again for a later one.
import { describe, expect, it } from "vitest";
import { AppState } from "../lib/state/app.svelte";
import { FakeBackend } from "../lib/backend/fake";
import { fakeEntities } from "../lib/backend/fakeload";

class Counting extends FakeBackend {
  paintedCalls = 0;
  painted(): Promise<void> {
    this.paintedCalls++;
    return Promise.resolve();
  }
}

const nextFrame = () => new Promise<void>((res) => requestAnimationFrame(() => res()));

describe("painted", () => {
  it("is said once, in the frame after the first bootstrap", async () => {
    const backend = new Counting(fakeEntities(500, Date.UTC(2026, 0, 1)));
    const app = new AppState(backend);
    await app.init();
    expect(app.loaded).toBe(true);
    expect(backend.paintedCalls).toBe(0);
    await nextFrame();
    expect(backend.paintedCalls).toBe(1);
    await app.reload();
    await nextFrame();
    await nextFrame();
    expect(backend.paintedCalls).toBe(1);
    app.destroy();
  });

  it("a shell that does not listen for it is no error", async () => {
    const backend = new FakeBackend(fakeEntities(50, Date.UTC(2026, 0, 1)));
    const app = new AppState(backend);
    await app.init();
    await nextFrame();
    expect(app.loaded).toBe(true);
    expect("painted" in backend).toBe(false);
    app.destroy();
  });
});
