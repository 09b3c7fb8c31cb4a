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
