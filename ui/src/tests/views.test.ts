// Issue 9 "everything a seed sends is shown": stats blocks, chat, task detail, board
// filter, badges of stats-only servers, server notices.
import { describe, expect, it, vi } from "vitest";
import { render } from "@testing-library/svelte";
import { tick } from "svelte";
import App from "../App.svelte";
import { AppState, entity } from "../lib/state/app.svelte";
import { FakeBackend } from "../lib/backend/fake";

const frame = () => new Promise((r) => setTimeout(r, 40));

export async function mountViews(entities = [] as ReturnType<typeof entity>[]) {
  const backend = new FakeBackend(entities);
  const app = new AppState(backend, (cb) => setTimeout(cb, 0));
  const r = render(App, { props: { backend, app } });
  await frame();
  return { backend, app, ...r };
}

describe("stats blocks", () => {
  it("show labelled figures only: never the block's id or update time", async () => {
    // As every store holds a block: its scope as `id`, an `updated_at` stamp.
    const { app, getByTestId } = await mountViews([
      entity("stats", "agents", { id: "agents", total: 4, active: 2, updated_at: 1_700_000_000_000 }),
      entity("stats", "system", { id: "system", cpu: 41.5, status: "ok", memory: { used_pct: 63 } }),
    ]);
    app.go("overview");
    await tick();
    const blocks = [...getByTestId("server-stats").querySelectorAll("[data-testid=stats-block]")];
    expect(blocks.map((b) => b.getAttribute("data-id"))).toEqual(["agents", "system"]);
    const rows = (b: Element) => [...b.querySelectorAll("dt")].map((d) => `${d.textContent} = ${d.nextElementSibling?.textContent}`);
    expect(rows(blocks[0])).toEqual(["Total = 4", "Active = 2"]);
    expect(rows(blocks[1])).toEqual(["Cpu = 41.5", "Memory · Used pct = 63"]);
    expect(getByTestId("server-stats").textContent).not.toMatch(/\bId\b|Updated at/);
  });
});

describe("chat of a server without conversation entities (seed 002)", () => {
  it("groups messages by chat and shows a new one live", async () => {
    // As the nest-realtime profile stores `chat.message`: `chatId` as `conversation_id`.
    const msg = (id: string, chat: string, text: string, ts: string, author?: string) =>
      entity("message", id, { id, chatId: chat, conversation_id: chat, text, ts, ...(author ? { author } : {}) });
    const { app, backend, getAllByTestId, getByTestId } = await mountViews([
      msg("m0", "c1", "earlier", "2026-12-01T09:00:00Z"),
      msg("m1", "c2", "other chat", "2026-12-01T09:30:00Z"),
    ]);
    app.go("conversations");
    await tick();
    const rows = () => getAllByTestId("conversation-row").map((r) => r.getAttribute("data-id"));
    expect(rows()).toEqual(["c2", "c1"]);
    expect(getAllByTestId("conversation-row").every((r) => r.hasAttribute("data-chat"))).toBe(true);

    app.selected = { kind: "conversation", id: "c1" };
    await tick();
    const texts = () => [...getByTestId("messages").querySelectorAll(".bubble")].map((b) => b.textContent);
    expect(texts()).toEqual(["earlier"]);

    backend.push(msg("m2", "c1", "hello", "2026-12-01T10:00:00Z", "Bo"));
    await frame();
    expect(texts()).toEqual(["earlier", "hello"]);
    expect(rows()).toEqual(["c1", "c2"]);
    expect(getByTestId("chat-header").textContent).toBe("2 messages");
    expect(getAllByTestId("conversation-row")[0].textContent).toContain("Bo: hello");
  });

  it("a message of a known conversation stays in it, not in a chat of its own", async () => {
    const { app } = await mountViews([
      entity("conversation", "cv1", { customer: "Acme", status: "open" }),
      entity("message", "m1", { conversation_id: "cv1", text: "hi", ts: 1 }),
      entity("message", "m2", { text: "no chat at all", ts: 2 }),
    ]);
    expect(app.chats).toEqual([]);
    expect(app.messagesOf("cv1").map((m) => m.id)).toEqual(["m1"]);
  });
});

describe("task detail", () => {
  const task = (over: Record<string, unknown> = {}) =>
    entity("ticket", "t1", {
      id: "t1",
      title: "Add login",
      state: "in_progress",
      project_id: "web",
      agent_id: "ag1",
      pr: { number: 12, status: "open", url: "https://git.example.com/acme/pull/12" },
      status_history: [
        { status: "analyzing", ts: 1 },
        { status: "analyzing", ts: 2 },
        { status: "in_progress", ts: 3 },
      ],
      timeline: [{ type: "build", text: "compiling", ts: 1_700_000_000_000 }],
      ...over,
    });
  const says = (b: FakeBackend) => b.calls.filter((c) => c.name === "say").map((c) => c.args);

  it("opening says open_task, closing close_task; the PR opens in the browser", async () => {
    const { app, backend, getByTestId, queryByTestId } = await mountViews([
      task(),
      entity("ticket", "t2", { id: "t2", title: "Other", state: "todo" }),
      entity("agent", "ag1", { name: "Atlas", status: "terminated", terminated_reason: "manual" }),
    ]);
    app.go("board");
    await tick();
    expect(queryByTestId("task-detail")).toBeNull();
    app.selected = { kind: "ticket", id: "t1" };
    await frame();
    expect(says(backend)).toEqual([{ intent: "open_task", value: "t1" }]);
    expect(getByTestId("task-agent").textContent).toContain("Atlas · terminated (manual)");
    // Consecutive repeats are one step.
    expect(getByTestId("task-history").querySelectorAll("li").length).toBe(2);
    expect(getByTestId("task-history").textContent).toMatch(/analyzing.*in progress/is);
    getByTestId("task-pr-link").click();
    expect(backend.calls.find((c) => c.name === "open_link")?.args).toBe("https://git.example.com/acme/pull/12");

    app.selected = { kind: "ticket", id: "t2" };
    await frame();
    getByTestId("task-detail-close").click();
    await frame();
    expect(queryByTestId("task-detail")).toBeNull();
    expect(says(backend)).toEqual([
      { intent: "open_task", value: "t1" },
      { intent: "close_task", value: "t1" },
      { intent: "open_task", value: "t2" },
      { intent: "close_task", value: "t2" },
    ]);
  });

  it("a PR that is not https is no link", async () => {
    const { app, backend, getByTestId, queryByTestId } = await mountViews([task({ pr: { number: 3, url: "http://git.example.com/p/3" } })]);
    app.go("board");
    app.selected = { kind: "ticket", id: "t1" };
    await frame();
    expect(queryByTestId("task-pr-link")).toBeNull();
    expect(getByTestId("task-pr").textContent).toContain("PR #3");
    expect(backend.calls.some((c) => c.name === "open_link")).toBe(false);
  });

  it("the timeline grows live and follows its newest entry", async () => {
    const { app, backend, getByTestId } = await mountViews([task()]);
    app.go("board");
    app.selected = { kind: "ticket", id: "t1" };
    await frame();
    const log = getByTestId("task-timeline");
    // jsdom lays nothing out: give the list a height to scroll through.
    let top = 0;
    Object.defineProperty(log, "scrollHeight", { configurable: true, get: () => 100 * log.children.length });
    Object.defineProperty(log, "clientHeight", { configurable: true, get: () => 100 });
    Object.defineProperty(log, "scrollTop", { configurable: true, get: () => top, set: (v: number) => (top = v) });
    const t = task();
    backend.push(entity("ticket", "t1", { ...t.data, timeline: [...(t.data.timeline as unknown[]), { type: "test", text: "passed", ts: 1_700_000_001_000 }] }));
    await frame();
    const lines = [...log.querySelectorAll("[data-testid=timeline-entry] .line")].map((e) => e.textContent?.replace(/\s+/g, " ").trim());
    expect(lines).toEqual(["Build compiling", "Test passed"]);
    expect(top).toBe(200);
  });
});

describe("board project filter (seed 000's filterProject)", () => {
  it("shows only the chosen project's tickets, new ones included", async () => {
    const { app, backend, getByTestId, getAllByTestId } = await mountViews([
      entity("ticket", "t1", { title: "Web one", state: "todo", project_id: "web", project_name: "Website" }),
      entity("ticket", "t2", { title: "API one", state: "todo", project_id: "api" }),
      entity("ticket", "t3", { title: "No project", state: "done" }),
    ]);
    app.go("board");
    await tick();
    const cards = () => getAllByTestId("ticket-card").map((c) => c.getAttribute("data-id")).sort();
    const select = getByTestId("project-filter") as HTMLSelectElement;
    expect([...select.options].map((o) => [o.value, o.textContent])).toEqual([["", "All projects"], ["api", "api"], ["web", "Website"]]);
    expect(cards()).toEqual(["t1", "t2", "t3"]);
    select.value = "web";
    select.dispatchEvent(new Event("change", { bubbles: true }));
    await tick();
    expect(cards()).toEqual(["t1"]);
    backend.push(entity("ticket", "t4", { title: "API two", state: "todo", project_id: "api" }), entity("ticket", "t5", { title: "Web two", state: "todo", project_id: "web" }));
    await frame();
    expect(cards()).toEqual(["t1", "t5"]);
    select.value = "";
    select.dispatchEvent(new Event("change", { bubbles: true }));
    await tick();
    expect(cards()).toEqual(["t1", "t2", "t3", "t4", "t5"]);
  });
});

describe("badges of a stats-only server (seeds 001, 003)", () => {
  it("the sidebar shows the counts its stats blocks give", async () => {
    const { getByTestId, queryByTestId } = await mountViews([
      entity("stats", "approvals", { id: "approvals", pending: 4, approved: 9 }),
      entity("stats", "conversations", { id: "conversations", open: 5, escalated: 2 }),
      entity("stats", "dashboard", { id: "dashboard", executions: { running: 3, total: 5 } }),
    ]);
    expect(getByTestId("badge-approvals").textContent).toBe("4");
    expect(getByTestId("badge-conversations").textContent).toBe("2");
    expect(getByTestId("badge-board").textContent).toBe("3");
    expect(queryByTestId("badge-notifications")).toBeNull();
  });
});

describe("a server's error notice (seed 003's `error`)", () => {
  it("is shown as a toast and stays in the notification centre", async () => {
    const { app, backend, getByTestId, findByText } = await mountViews();
    backend.push(entity("notification", "error:1:ab", { title: "The server reported an error", body: "bad JSON", level: "error", read: false, created_at: 1 }));
    await frame();
    expect(await findByText("The server reported an error: bad JSON")).toBeTruthy();
    expect(getByTestId("badge-notifications").textContent).toBe("1");
    app.go("notifications");
    await tick();
    expect(getByTestId("page-notifications").textContent).toContain("bad JSON");
  });
});

describe("what the client says: presence and typing (seed 002)", () => {
  const says = (b: FakeBackend, intent?: string) =>
    b.calls.filter((c) => c.name === "say" && (!intent || (c.args as { intent: string }).intent === intent)).map((c) => (c.args as { value: string }).value);

  async function mountTalking(intents: string[], entities = [] as ReturnType<typeof entity>[]) {
    const backend = new FakeBackend(entities);
    backend.intents = new Set(intents as never[]);
    const app = new AppState(backend, (cb) => setTimeout(cb, 0));
    const r = render(App, { props: { backend, app } });
    await frame();
    return { backend, app, ...r };
  }

  it("presence: online at start, the menu's choice, away while idle, never to a server that does not take it", async () => {
    const { app, backend, getByTestId, queryByTestId } = await mountTalking(["presence", "typing_start", "typing_stop"]);
    expect(says(backend, "presence")).toEqual(["online"]);
    const menu = getByTestId("presence") as HTMLSelectElement;
    menu.value = "busy";
    menu.dispatchEvent(new Event("change", { bubbles: true }));
    await tick();
    // Busy stays busy while idle; online becomes away.
    app.setIdle(true);
    menu.value = "online";
    menu.dispatchEvent(new Event("change", { bubbles: true }));
    await tick();
    expect(getByTestId("presence-idle")).toBeTruthy();
    window.dispatchEvent(new KeyboardEvent("keydown", { key: "x" }));
    await tick();
    expect(queryByTestId("presence-idle")).toBeNull();
    expect(says(backend, "presence")).toEqual(["online", "busy", "away", "online"]);

    const other = await mountTalking(["open_task", "close_task"]);
    other.app.setIdle(true);
    expect(says(other.backend, "presence")).toEqual([]);
    expect(other.container.querySelector("[data-testid=presence]")).toBeNull();
  });

  it("typing: one start while composing, one stop after a pause, an emptied draft or leaving", async () => {
    vi.useFakeTimers({ shouldAdvanceTime: true });
    try {
      const { app, backend, getByTestId } = await mountTalking(["typing_start", "typing_stop"], [
        entity("message", "m1", { conversation_id: "c1", text: "hi", ts: 1 }),
        entity("message", "m2", { conversation_id: "c2", text: "yo", ts: 2 }),
      ]);
      app.go("conversations");
      app.selected = { kind: "conversation", id: "c1" };
      await tick();
      const reply = () => getByTestId("reply") as HTMLTextAreaElement;
      const type = async (text: string) => {
        reply().value = text;
        reply().dispatchEvent(new Event("input", { bubbles: true }));
        await tick();
      };
      const typing = () => backend.calls.filter((c) => c.name === "say" && String((c.args as { intent: string }).intent).startsWith("typing")).map((c) => c.args);
      await type("h");
      await type("he");
      await type("hel");
      expect(typing()).toEqual([{ intent: "typing_start", value: "c1" }]);
      vi.advanceTimersByTime(3100);
      expect(typing()).toEqual([{ intent: "typing_start", value: "c1" }, { intent: "typing_stop", value: "c1" }]);
      await type("hello");
      await type("");
      // Another chat: the composer of c1 goes, a stop is said only when typing.
      await type("x");
      app.selected = { kind: "conversation", id: "c2" };
      await tick();
      expect(typing()).toEqual([
        { intent: "typing_start", value: "c1" },
        { intent: "typing_stop", value: "c1" },
        { intent: "typing_start", value: "c1" },
        { intent: "typing_stop", value: "c1" },
        { intent: "typing_start", value: "c1" },
        { intent: "typing_stop", value: "c1" },
      ]);
    } finally {
      vi.useRealTimers();
    }
  });

  it("no composer where the server takes no typing", async () => {
    const { app, queryByTestId } = await mountTalking([], [entity("message", "m1", { conversation_id: "c1", text: "hi", ts: 1 })]);
    app.go("conversations");
    await tick();
    expect(queryByTestId("reply")).toBeNull();
  });
});
