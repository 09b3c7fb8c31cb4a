// Issue 9 "everything a seed sends is shown": stats blocks, chat, task detail, board
// filter, badges of stats-only servers, server notices.
import { describe, expect, it } from "vitest";
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
