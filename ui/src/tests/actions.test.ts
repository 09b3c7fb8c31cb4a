// Actions on a profile server: it takes the actions its profile declares
// (`Account.actions`, the core's answer), and the shell refuses the others. The UI
// says so up front (those controls disabled, with the reason) and never shows an
// optimistic change the refusal would undo. On a Pulse gateway (saved native server,
// or the demo) everything works as before.
import { describe, expect, it } from "vitest";
import { render, fireEvent } from "@testing-library/svelte";
import { tick } from "svelte";
import App from "../App.svelte";
import { AppState, NO_ACTIONS_NOTE, entity, undeclaredNote } from "../lib/state/app.svelte";
import { FakeBackend } from "../lib/backend/fake";
import type { Entity, SavedServer } from "../lib/generated/types";

const frame = () => new Promise((r) => setTimeout(r, 40));

const tasks: SavedServer = { id: "tasks", name: "Tasks", url: "http://127.0.0.1:3004", profile: "tasks-gateway", tenant: null, username: null, projects: [], force_polling: false, nodes: [], allow_plain_http: false };
const monitor: SavedServer = { id: "mon", name: "Monitor", url: "http://127.0.0.1:3000", profile: "agent-monitor", tenant: "acme", username: null, projects: [], force_polling: false, nodes: [], allow_plain_http: false };
const gateway: SavedServer = { id: "gw", name: "Gateway", url: "http://127.0.0.1:7780", profile: "native", tenant: null, username: "ops", projects: [], force_polling: false, nodes: [], allow_plain_http: false };

const ENTITIES: Entity[] = [
  entity("approval", "a1", { title: "Deploy to prod", status: "pending", agent_name: "Atlas", created_at: 2 }),
  entity("approval", "a2", { title: "Rotate keys", status: "pending", agent_name: "Atlas", created_at: 1 }),
  entity("ticket", "t1", { title: "Fix login", state: "todo" }),
  entity("agent", "ag1", { name: "Atlas", status: "working", last_heartbeat: Date.now() }),
];

/** The app following `server` (null: the demo). */
async function mountOn(server: SavedServer | null) {
  const backend = new FakeBackend(ENTITIES);
  if (server) {
    backend.settings.servers = [server];
    backend.settings.active_server = server.id;
    backend.connection = { ...backend.connection, demo: false, server: server.url };
  }
  const app = new AppState(backend, (cb) => setTimeout(cb, 0));
  const r = render(App, { props: { backend, app } });
  await frame();
  return { backend, app, ...r };
}

const performs = (b: FakeBackend) => b.calls.filter((c) => c.name === "perform");
const q = <T extends Element = HTMLElement>(sel: string) => document.querySelector(sel) as T | null;

// "Only a Pulse gateway takes actions" is the core's rule, tested where it lives
// (crates/pulse-core/src/saved_profile.rs); the UI reads `Account.takes_actions`.

describe("on a profile server, actions are disabled, never attempted", () => {
  it("the state refuses at once: no optimistic change, nothing sent, an info note instead of an error", async () => {
    const { backend, app } = await mountOn(tasks);
    expect(app.account?.profile).toBe("tasks-gateway");
    expect(app.actionsBlocked).toBe(NO_ACTIONS_NOTE);
    for (const run of [() => app.approve("a1"), () => app.reject("a1", "no"), () => app.moveTicket("t1", "done"), () => app.terminate("ag1")]) {
      const p = run();
      // Synchronously after the call: no overlay, the data unchanged.
      expect(app.overlays.size).toBe(0);
      expect(await p).toBeNull();
    }
    expect(app.get("ticket", "t1")?.state).toBe("todo");
    expect(app.get("agent", "ag1")?.status).toBe("working");
    expect(performs(backend)).toEqual([]);
    expect(app.toasts.some((t) => t.kind === "error")).toBe(false);
    expect(app.toasts.at(-1)?.text).toBe(`${NO_ACTIONS_NOTE}.`);
  });

  it("approvals: Approve / Reject (row and detail) are disabled with the reason; clicks and a/r send nothing", async () => {
    const { backend, app, getByTestId, getAllByTestId, queryByTestId } = await mountOn(tasks);
    app.go("approvals");
    await tick();
    expect(getByTestId("no-actions-note").textContent).toContain(NO_ACTIONS_NOTE);
    const buttons = [...getAllByTestId("approve"), ...getAllByTestId("reject"), getByTestId("detail-approve"), getByTestId("detail-reject")] as HTMLButtonElement[];
    expect(buttons.length).toBe(6);
    for (const b of buttons) {
      expect(b.disabled).toBe(true);
      expect(b.title).toBe(NO_ACTIONS_NOTE);
      await fireEvent.click(b);
    }
    await tick();
    expect(queryByTestId("reason-input")).toBeNull();
    // The keys: a does nothing but say why; r opens no dialog. j/k still move.
    await fireEvent.keyDown(window, { key: "a" });
    await fireEvent.keyDown(window, { key: "r" });
    await tick();
    expect(queryByTestId("reason-input")).toBeNull();
    await fireEvent.keyDown(window, { key: "j" });
    await tick();
    expect(app.selected?.id).toBe("a2");
    await frame();
    await frame();
    expect(performs(backend)).toEqual([]);
    expect(app.overlays.size).toBe(0);
    // Both still pending, neither leaving nor "Sending…".
    expect(getAllByTestId("approval-row").map((r) => r.dataset.id)).toEqual(["a1", "a2"]);
    expect(document.body.textContent).not.toContain("Sending…");
    expect(app.toasts.some((t) => t.kind === "error")).toBe(false);
  });

  it("board: cards are not draggable, a drop moves nothing, Move to is disabled", async () => {
    const { backend, app, getByTestId } = await mountOn(tasks);
    app.go("board");
    await tick();
    expect(getByTestId("no-actions-note").textContent).toContain(NO_ACTIONS_NOTE);
    const card = q('[data-testid="ticket-card"][data-id="t1"]')!;
    expect(card.getAttribute("draggable")).toBe("false");
    expect(card.title).toBe(NO_ACTIONS_NOTE);
    const done = q('[data-testid="column"][data-state="done"]')!;
    await fireEvent.dragStart(card);
    await fireEvent.dragOver(done);
    await fireEvent.drop(done);
    await tick();
    expect(done.querySelector('[data-id="t1"]')).toBeNull();
    expect(done.classList.contains("over")).toBe(false);
    const select = card.querySelector('[data-testid="move-select"]') as HTMLSelectElement;
    expect(select.disabled).toBe(true);
    expect(select.title).toBe(NO_ACTIONS_NOTE);
    select.value = "done";
    await fireEvent.change(select);
    await frame();
    await frame();
    expect(performs(backend)).toEqual([]);
    expect(app.overlays.size).toBe(0);
    expect(app.get("ticket", "t1")?.state).toBe("todo");
    expect(q('[data-testid="column"][data-state="todo"] [data-id="t1"]')).toBeTruthy();
  });

  it("agents: Terminate is disabled with the reason and opens no dialog", async () => {
    const { backend, app, getByTestId, queryByTestId } = await mountOn(tasks);
    app.go("agents");
    await tick();
    expect(getByTestId("no-actions-note").textContent).toContain(NO_ACTIONS_NOTE);
    const b = getByTestId("terminate") as HTMLButtonElement;
    expect(b.disabled).toBe(true);
    expect(b.title).toBe(NO_ACTIONS_NOTE);
    await fireEvent.click(b);
    await tick();
    expect(queryByTestId("reason-input")).toBeNull();
    await frame();
    expect(performs(backend)).toEqual([]);
    expect(app.get("agent", "ag1")?.status).toBe("working");
  });

  it("any profile counts, a TOML file too", async () => {
    const { app, getByTestId } = await mountOn({ ...tasks, profile: "/etc/pulse/ours.toml" });
    app.go("agents");
    await tick();
    expect((getByTestId("terminate") as HTMLButtonElement).disabled).toBe(true);
  });
});

describe("on a Pulse gateway, actions work as before", () => {
  for (const [label, server] of [["a saved native server", gateway], ["the demo", null]] as const) {
    it(`${label}: buttons enabled, no note; approve, move and terminate are sent`, async () => {
      const { backend, app, getByTestId, getAllByTestId, queryByTestId } = await mountOn(server);
      expect(app.actionsBlocked).toBeNull();

      app.go("approvals");
      await tick();
      expect(queryByTestId("no-actions-note")).toBeNull();
      const [approve] = getAllByTestId("approve") as HTMLButtonElement[];
      expect(approve.disabled).toBe(false);
      expect(approve.title).toBe("");
      expect((getByTestId("detail-approve") as HTMLButtonElement).disabled).toBe(false);
      await fireEvent.click(approve);
      await frame();
      expect(performs(backend).at(-1)?.args).toEqual({ action: "approve", id: "a1", reason: null });

      app.go("board");
      await tick();
      expect(queryByTestId("no-actions-note")).toBeNull();
      const card = q('[data-testid="ticket-card"][data-id="t1"]')!;
      expect(card.getAttribute("draggable")).toBe("true");
      const done = q('[data-testid="column"][data-state="done"]')!;
      await fireEvent.dragStart(card);
      await fireEvent.dragOver(done);
      await fireEvent.drop(done);
      await tick();
      // Optimistic: there at once, before the backend answered.
      expect(done.querySelector('[data-id="t1"]')).toBeTruthy();
      await frame();
      await frame();
      expect(performs(backend).at(-1)?.args).toEqual({ action: "move_ticket", id: "t1", state: "done" });
      expect(app.get("ticket", "t1")?.state).toBe("done");

      app.go("agents");
      await tick();
      const term = getByTestId("terminate") as HTMLButtonElement;
      expect(term.disabled).toBe(false);
      await fireEvent.click(term);
      await tick();
      await fireEvent.click(getByTestId("reason-confirm"));
      await frame();
      expect(performs(backend).at(-1)?.args).toEqual({ action: "terminate_agent", id: "ag1", reason: null });
      await frame();
      expect(app.get("agent", "ag1")?.status).toBe("terminated");
      expect(app.toasts.some((t) => t.kind === "error")).toBe(false);
    });
  }
});

describe("on a profile server that declares some actions, those work and the others say why", () => {
  it("agent-monitor: the board's drag and Terminate are sent; Approve / Reject are disabled with the reason", async () => {
    const { backend, app, getByTestId, getAllByTestId } = await mountOn(monitor);
    expect(app.account?.actions).toEqual({ approve: false, reject: false, edit: false, respond: false, move_ticket: true, terminate_agent: true });
    expect(app.blockedFor("move_ticket")).toBeNull();
    expect(app.blockedFor("approve")).toBe(undeclaredNote("approve"));

    app.go("board");
    await tick();
    const card = q('[data-testid="ticket-card"][data-id="t1"]')!;
    expect(card.getAttribute("draggable")).toBe("true");
    const done = q('[data-testid="column"][data-state="done"]')!;
    await fireEvent.dragStart(card);
    await fireEvent.dragOver(done);
    await fireEvent.drop(done);
    await tick();
    expect(done.querySelector('[data-id="t1"]')).toBeTruthy();
    await frame();
    await frame();
    expect(performs(backend).at(-1)?.args).toEqual({ action: "move_ticket", id: "t1", state: "done" });
    // The optimistic change was asked of the backend (the core's dialect), not made up.
    expect(backend.calls.filter((c) => c.name === "optimistic").map((c) => c.args)).toEqual([{ action: "move_ticket", id: "t1", state: "done" }]);

    app.go("agents");
    await tick();
    const term = getByTestId("terminate") as HTMLButtonElement;
    expect(term.disabled).toBe(false);
    await fireEvent.click(term);
    await tick();
    await fireEvent.click(getByTestId("reason-confirm"));
    await frame();
    expect(performs(backend).at(-1)?.args).toEqual({ action: "terminate_agent", id: "ag1", reason: null });

    // Whatever the dialect says is what shows while the action is on its way.
    backend.optimistic = async () => ({ status: "stopping" });
    backend.perform = () => new Promise(() => {});
    void app.terminate("ag1");
    await frame();
    expect(app.get("agent", "ag1")?.status).toBe("stopping");

    app.go("approvals");
    await tick();
    expect(getByTestId("no-actions-note").textContent).toContain(undeclaredNote("approve"));
    for (const b of getAllByTestId("approve") as HTMLButtonElement[]) {
      expect(b.disabled).toBe(true);
      expect(b.title).toBe(undeclaredNote("approve"));
    }
    const before = performs(backend).length;
    expect(await app.approve("a1")).toBeNull();
    expect(performs(backend).length).toBe(before);
    expect(app.toasts.at(-1)?.text).toBe(`${undeclaredNote("approve")}.`);
    expect(app.toasts.some((t) => t.kind === "error")).toBe(false);
  });
});
