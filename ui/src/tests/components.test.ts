import { describe, expect, it } from "vitest";
import { render, fireEvent } from "@testing-library/svelte";
import { tick } from "svelte";
import App from "../App.svelte";
import { AppState, entity } from "../lib/state/app.svelte";
import { FakeBackend } from "../lib/backend/fake";

const frame = () => new Promise((r) => setTimeout(r, 40));

async function mountApp(entities = [entity("approval", "a1", { title: "Deploy to prod", status: "pending", agent_name: "Atlas", created_at: 1 })]) {
  const backend = new FakeBackend(entities);
  const app = new AppState(backend, (cb) => setTimeout(cb, 0));
  const r = render(App, { props: { backend, app } });
  await frame();
  return { backend, app, ...r };
}

describe("App", () => {
  it("shows the connection indicator on every page and switches pages with 1-7", async () => {
    const { getByTestId } = await mountApp();
    expect(getByTestId("connection-label").textContent).toBe("Live");
    await fireEvent.keyDown(window, { key: "4" });
    await tick();
    expect(getByTestId("page-approvals")).toBeTruthy();
    expect(getByTestId("connection")).toBeTruthy();
    await fireEvent.keyDown(window, { key: "7" });
    await tick();
    expect(getByTestId("page-settings")).toBeTruthy();
  });

  it("approvals: Approve sends the action and the item leaves", async () => {
    const { backend, app, getByTestId, findAllByTestId } = await mountApp();
    app.go("approvals");
    await tick();
    const [button] = await findAllByTestId("approve");
    await fireEvent.click(button);
    await frame();
    await frame();
    expect(backend.calls.find((c) => c.name === "perform")?.args).toEqual({ action: "approve", id: "a1", reason: null });
    await new Promise((r) => setTimeout(r, 500));
    expect(getByTestId("approvals-empty")).toBeTruthy();
  });

  it("approvals: keyboard a approves the selected one, r asks for a reason", async () => {
    const { backend, app, getByTestId } = await mountApp([
      entity("approval", "a1", { title: "One", status: "pending", created_at: 2 }),
      entity("approval", "a2", { title: "Two", status: "pending", created_at: 1 }),
    ]);
    app.go("approvals");
    await tick();
    // The newest is selected at once; j/k move.
    expect(document.querySelector(".approval.selected")?.getAttribute("data-id")).toBe("a1");
    await fireEvent.keyDown(window, { key: "j" });
    await tick();
    expect(app.selected?.id).toBe("a2");
    await fireEvent.keyDown(window, { key: "k" });
    await tick();
    expect(app.selected?.id).toBe("a1");
    await fireEvent.keyDown(window, { key: "r" });
    await tick();
    const input = getByTestId("reason-input") as HTMLTextAreaElement;
    await fireEvent.input(input, { target: { value: "too risky" } });
    await fireEvent.click(getByTestId("reason-confirm"));
    await frame();
    expect(backend.calls.find((c) => c.name === "perform")?.args).toEqual({ action: "reject", id: "a1", reason: "too risky" });
    // Selection moved on: a approves a2.
    await fireEvent.keyDown(window, { key: "a" });
    await frame();
    expect(backend.calls.filter((c) => c.name === "perform").map((c) => (c.args as { id: string }).id)).toEqual(["a1", "a2"]);
  });

  it("virtualises 10,000 approvals", async () => {
    const many = Array.from({ length: 10_000 }, (_, i) => entity("approval", `a${i}`, { title: `Item ${i}`, status: "pending", created_at: i }));
    const { app, getByTestId } = await mountApp(many);
    app.go("approvals");
    await tick();
    const list = getByTestId("approvals-list");
    expect(list.dataset.count).toBe("10000");
    expect(list.querySelectorAll("[data-testid=approval-row]").length).toBeLessThan(60);
  });

  it("new approvals pushed live appear", async () => {
    const { backend, app, findAllByTestId } = await mountApp([]);
    app.go("approvals");
    await tick();
    backend.push(entity("approval", "live1", { title: "Live one", status: "pending", created_at: 5 }));
    await frame();
    const rows = await findAllByTestId("approval-row");
    expect(rows[0].dataset.id).toBe("live1");
    expect(rows[0].classList.contains("fresh")).toBe(true);
  });

  it("offline state is visible with the cached data's time", async () => {
    const { backend, getByTestId } = await mountApp();
    backend.setConnection({ state: { state: "reconnecting", attempt: 1, retry_at_ms: Date.now() + 3000, error: "refused" } });
    await tick();
    expect(getByTestId("connection-label").textContent).toBe("Reconnecting");
    expect(getByTestId("connection-detail").textContent).toMatch(/Offline — data from \d\d:\d\d/);
  });
});

describe("Board", () => {
  it("dropping a card on a column moves it optimistically, then the server agrees", async () => {
    const { backend, app, getByTestId } = await mountApp([entity("ticket", "t1", { title: "Fix login", state: "todo" })]);
    app.go("board");
    await tick();
    const done = document.querySelector('[data-testid="column"][data-state="done"]') as HTMLElement;
    const card = document.querySelector('[data-testid="ticket-card"][data-id="t1"]') as HTMLElement;
    await fireEvent.dragStart(card);
    await fireEvent.dragOver(done);
    await fireEvent.drop(done);
    await tick();
    // At once, before the backend answered.
    expect(done.querySelector('[data-id="t1"]')).toBeTruthy();
    await frame();
    await frame();
    expect(backend.calls.find((c) => c.name === "perform")?.args).toEqual({ action: "move_ticket", id: "t1", state: "done" });
    expect(app.get("ticket", "t1")?.state).toBe("done");
    expect(getByTestId("page-board")).toBeTruthy();
  });
});

describe("Connection indicator", () => {
  it("Failed offers Retry, which asks the backend to reconnect", async () => {
    const { backend, getByTestId } = await mountApp();
    backend.setConnection({ state: { state: "failed", attempts: 10, retry_at_ms: Date.now() + 60_000, error: "connection refused" } });
    await tick();
    expect(getByTestId("connection").dataset.level).toBe("failed");
    await fireEvent.click(getByTestId("retry"));
    expect(backend.calls.some((c) => c.name === "retry_now")).toBe(true);
  });

  it("Signed out offers Sign in, which opens Settings", async () => {
    const { backend, app, getByTestId, getByText } = await mountApp();
    backend.setConnection({ state: { state: "signed_out", message: "Signed out of Work: sign in under Settings" } });
    await tick();
    expect(getByTestId("connection-label").textContent).toBe("Signed out");
    await fireEvent.click(getByText("Sign in"));
    await tick();
    expect(app.page).toBe("settings");
  });
});

describe("Agents", () => {
  it("shows heartbeat age and terminates an agent after confirmation", async () => {
    const { backend, app, findAllByTestId, getByTestId } = await mountApp([
      entity("agent", "ag1", { name: "Atlas", status: "working", last_heartbeat: Date.now() - 5000 }),
    ]);
    app.go("agents");
    await tick();
    const [rowEl] = await findAllByTestId("agent-row");
    expect(rowEl.textContent).toMatch(/Atlas.*Working.*5 s ago/s);
    await fireEvent.click(getByTestId("terminate"));
    await tick();
    await fireEvent.input(getByTestId("reason-input"), { target: { value: "stuck in a loop" } });
    await fireEvent.click(getByTestId("reason-confirm"));
    await frame();
    expect(backend.calls.find((c) => c.name === "perform")?.args).toEqual({ action: "terminate_agent", id: "ag1", reason: "stuck in a loop" });
    await frame();
    expect(app.get("agent", "ag1")?.status).toBe("terminated");
  });
});
