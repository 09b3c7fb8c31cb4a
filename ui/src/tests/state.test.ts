import { describe, expect, it } from "vitest";
import { AppState, entity } from "../lib/state/app.svelte";
import { FakeBackend } from "../lib/backend/fake";

/** A scheduler the test runs by hand: one call = one animation frame. */
function manualFrames() {
  const pending: (() => void)[] = [];
  return {
    schedule: (cb: () => void) => void pending.push(cb),
    frame: () => pending.splice(0).forEach((cb) => cb()),
    waiting: () => pending.length,
  };
}

async function setup(entities = [entity("approval", "a1", { title: "Deploy", status: "pending", created_at: 1 })]) {
  const backend = new FakeBackend(entities);
  const frames = manualFrames();
  const app = new AppState(backend, frames.schedule);
  await app.init();
  return { backend, frames, app };
}

describe("AppState", () => {
  it("paints from the bootstrap", async () => {
    const { app } = await setup();
    expect(app.loaded).toBe(true);
    expect(app.pendingApprovals.map((a) => a.id)).toEqual(["a1"]);
    expect(app.counts.pending_approvals).toBe(1);
  });

  it("coalesces a burst into one frame and drops nothing", async () => {
    const { backend, frames, app } = await setup([]);
    const before = app.frames;
    for (let i = 0; i < 10_000; i++) {
      backend.emit("updates", { updates: [{ kind: "agent", id: `ag${i % 500}`, data: { id: `ag${i % 500}`, name: `A${i % 500}`, n: i } }] });
    }
    expect(frames.waiting()).toBe(1);
    frames.frame();
    expect(app.frames - before).toBe(1);
    expect(app.applied).toBe(10_000);
    expect(app.agents).toHaveLength(500);
    expect(app.get("agent", "ag499")?.n).toBe(9999);
  });

  it("new approvals are marked fresh, decided ones leave", async () => {
    const { backend, frames, app } = await setup();
    backend.push(entity("approval", "a2", { title: "New", status: "pending", created_at: 2 }));
    frames.frame();
    const a2 = app.pendingApprovals.find((a) => a.id === "a2");
    expect(a2?.fresh).toBe(true);
    backend.push(entity("approval", "a1", { title: "Deploy", status: "approved", created_at: 1 }));
    frames.frame();
    const a1 = app.pendingApprovals.find((a) => a.id === "a1");
    expect(a1?.leaving).toBe(true);
    await new Promise((r) => setTimeout(r, 500));
    expect(app.pendingApprovals.map((a) => a.id)).toEqual(["a2"]);
  });

  it("approve: done is reconciled with the server's state", async () => {
    const { frames, app } = await setup();
    const outcome = await app.approve("a1");
    expect(outcome?.outcome).toBe("done");
    frames.frame();
    expect(app.get("approval", "a1")?.status).toBe("approved");
    expect(app.overlays.size).toBe(0);
  });

  it("offline: a move is queued, shown as pending, and settles on reconnect", async () => {
    const { backend, frames, app } = await setup([entity("ticket", "t1", { title: "Fix", state: "todo" })]);
    backend.online = false;
    const outcome = await app.moveTicket("t1", "done");
    expect(outcome?.outcome).toBe("queued");
    // Optimistic: already in its new column, marked queued.
    const t = app.tickets.find((x) => x.id === "t1")!;
    expect(t.data.state).toBe("done");
    expect(t.pending).toBe("queued");
    expect(app.outbox).toHaveLength(1);
    backend.reconnect();
    await new Promise((r) => setTimeout(r, 10));
    frames.frame();
    expect(app.outbox).toHaveLength(0);
    const after = app.tickets.find((x) => x.id === "t1")!;
    expect(after.data.state).toBe("done");
    expect(after.pending).toBeUndefined();
  });

  it("a conflict reverts the optimistic change and is shown", async () => {
    const { backend, frames, app } = await setup([entity("ticket", "t1", { title: "Fix", state: "todo" })]);
    backend.nextOutcome = { outcome: "conflict", message: "moved by someone else", current: { id: "t1", title: "Fix", state: "review" } };
    await app.moveTicket("t1", "done");
    frames.frame();
    expect(app.get("ticket", "t1")?.state).toBe("review");
    expect(app.toasts.some((t) => t.kind === "error" && t.text.includes("moved by someone else"))).toBe(true);
  });

  it("a refused action is shown, never dropped silently", async () => {
    const { backend, app } = await setup();
    backend.nextOutcome = { outcome: "rejected", message: "forbidden" };
    await app.reject("a1", "no");
    expect(app.toasts.at(-1)?.text).toContain("forbidden");
    expect(app.overlays.size).toBe(0);
  });

  it("updates arriving before the bootstrap answers are kept", async () => {
    const backend = new FakeBackend([]);
    const frames = manualFrames();
    const app = new AppState(backend, frames.schedule);
    const init = app.init();
    backend.emit("updates", { updates: [{ kind: "agent", id: "early", data: { id: "early" } }] });
    await init;
    frames.frame();
    expect(app.get("agent", "early")).toBeTruthy();
  });

  it("a connection event that comes while the bootstrap is on its way is kept", async () => {
    const backend = new FakeBackend([]);
    const app = new AppState(backend, manualFrames().schedule);
    const real = backend.bootstrap.bind(backend);
    const connecting = { state: { state: "connecting" as const, attempt: 1 }, last_sync_ms: null, server: null, demo: false, caveat: null };
    backend.bootstrap = async () => {
      // The shell read its view (still connecting), then the session went Live and
      // its event overtook the answer.
      const boot = { ...(await real()), connection: connecting };
      backend.emit("connection", { ...connecting, state: { state: "live" } });
      return boot;
    };
    await app.init();
    expect(app.connection.state.state).toBe("live");
    // With no event meanwhile, the bootstrap's copy is the newest and is used.
    backend.bootstrap = async () => ({ ...(await real()), connection: connecting });
    await app.reload();
    expect(app.connection.state.state).toBe("connecting");
  });

  it("navigate events open the item", async () => {
    const { backend, app } = await setup();
    backend.emit("navigate", { page: "approvals", kind: "approval", id: "a1" });
    expect(app.page).toBe("approvals");
    expect(app.selected).toEqual({ kind: "approval", id: "a1" });
  });

  it("notification centre merges raised and server notifications with read state", async () => {
    const { backend, frames, app } = await setup([entity("notification", "n1", { title: "Server says", read: false, created_at: 5 })]);
    backend.emit("notified", { key: "approval:a1", title: "Approval needed", body: "Deploy", kind: "approval", target: null, at_ms: 10, actions: ["approve"] });
    frames.frame();
    expect(app.notifications.map((n) => n.key)).toEqual(["approval:a1", "notification:n1"]);
    expect(app.unread).toBe(2);
    await app.markRead(["approval:a1"]);
    expect(app.unread).toBe(1);
    expect(backend.calls.some((c) => c.name === "mark_read")).toBe(true);
  });
});
