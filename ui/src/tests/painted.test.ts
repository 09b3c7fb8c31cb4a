// The shell is told once that the first screen was painted (issue 12, cold start:
// the tray and pulse://'s registration wait for it, `startup::AfterPaint`): after
// the frame of the first bootstrap, not before it, and not again for a later one.
import { describe, expect, it } from "vitest";
import { render } from "@testing-library/svelte";
import { tick } from "svelte";
import App from "../App.svelte";
import { AppState } from "../lib/state/app.svelte";
import { FakeBackend } from "../lib/backend/fake";
import { fakeEntities } from "../lib/backend/fakeload";
import type { BackendEvents, Unlisten } from "../lib/backend/backend";

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

  it("waits for the listeners: the bootstrap does not, painted does", async () => {
    let release!: () => void;
    const gate = new Promise<void>((res) => (release = res));
    class SlowListen extends Counting {
      async on<K extends keyof BackendEvents>(name: K, handler: (p: BackendEvents[K]) => void): Promise<Unlisten> {
        const u = await super.on(name, handler);
        await gate;
        return u;
      }
    }
    const backend = new SlowListen(fakeEntities(200, Date.UTC(2026, 0, 1)));
    const app = new AppState(backend);
    const started = app.init();
    // The bootstrap was asked while the listeners were still being answered.
    for (let i = 0; i < 5; i++) await new Promise((res) => setTimeout(res, 0));
    expect(backend.calls.filter((c) => c.name === "bootstrap")).toHaveLength(1);
    expect(app.loaded).toBe(true);
    await nextFrame();
    await nextFrame();
    expect(backend.paintedCalls).toBe(0);
    release();
    await started;
    await nextFrame();
    expect(backend.paintedCalls).toBe(1);
    // Events reach the app once listening.
    backend.emit("counts", { ...app.counts, pending_approvals: 7 });
    expect(app.counts.pending_approvals).toBe(7);
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

// main.ts starts the app's init before mounting (its round trips overlap the mount):
// the App then does not start a second one, and paints the same first screen.
describe("an init started before the mount", () => {
  const settle = async () => {
    for (let i = 0; i < 5; i++) await new Promise((res) => setTimeout(res, 0));
    await tick();
  };
  const content = (c: HTMLElement) => c.querySelector("[data-testid=content]")!.innerHTML.replace(/<!---->/g, "");

  it("is the only one, and the first screen is the one an init by the App gives", async () => {
    const T0 = Date.UTC(2026, 0, 1);
    const early = new FakeBackend(fakeEntities(300, T0));
    const earlyApp = new AppState(early);
    const started = earlyApp.init();
    const a = render(App, { props: { backend: early, app: earlyApp, started } });
    await started;
    await settle();
    expect(earlyApp.loaded).toBe(true);
    expect(early.calls.filter((c) => c.name === "bootstrap")).toHaveLength(1);

    const late = new FakeBackend(fakeEntities(300, T0));
    const lateApp = new AppState(late);
    const b = render(App, { props: { backend: late, app: lateApp } });
    await settle();
    expect(lateApp.loaded).toBe(true);
    expect(late.calls.filter((c) => c.name === "bootstrap")).toHaveLength(1);
    expect(content(a.container)).toBe(content(b.container));
    a.unmount();
    b.unmount();
  });
});
