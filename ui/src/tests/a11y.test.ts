import { describe, expect, it } from "vitest";
import { render, fireEvent } from "@testing-library/svelte";
import { tick } from "svelte";
import App from "../App.svelte";
import { AppState, entity, PAGES } from "../lib/state/app.svelte";
import { FakeBackend } from "../lib/backend/fake";
import { SHORTCUTS } from "../lib/shortcuts";

const frame = () => new Promise((r) => setTimeout(r, 40));
/** The overview's figures of Counts, none of which these tests read. */
const NO_FIGURES = { tasks_total: 0, tasks_done: 0, open_conversations: 0, live_agents: 0, working_agents: 0, failing_agents: 0 };

async function mount(entities = [] as ReturnType<typeof entity>[]) {
  const backend = new FakeBackend(entities);
  const app = new AppState(backend, (cb) => setTimeout(cb, 0));
  const r = render(App, { props: { backend, app } });
  await frame();
  return { backend, app, ...r };
}

describe("Accessibility", () => {
  it("`?` opens the shortcuts overlay, which lists every shortcut; Esc closes it and focus returns", async () => {
    const { getByTestId, queryByTestId, getAllByTestId } = await mount();
    const opener = getByTestId("help-open");
    expect(opener.getAttribute("aria-label")).toBe("Keyboard shortcuts");
    opener.focus();
    await fireEvent.keyDown(window, { key: "?" });
    await tick();
    const dialog = getByTestId("help-overlay");
    expect(dialog.getAttribute("role")).toBe("dialog");
    expect(dialog.getAttribute("aria-modal")).toBe("true");
    expect(document.activeElement).toBe(getByTestId("help-close"));
    const rows = getAllByTestId("shortcut").map((r) => r.textContent ?? "");
    expect(rows).toHaveLength(SHORTCUTS.length);
    for (const p of PAGES) expect(rows.some((r) => r.includes(`Go to ${p.label}`))).toBe(true);
    // Page keys do nothing while it is open.
    await fireEvent.keyDown(window, { key: "2" });
    await fireEvent.keyDown(dialog, { key: "Escape" });
    await tick();
    expect(queryByTestId("help-overlay")).toBeNull();
    expect(document.activeElement).toBe(opener);
    expect(getByTestId("nav-overview").getAttribute("aria-current")).toBe("page");
  });

  it("`?` typed in a field is text, not the overlay", async () => {
    const { app, getByTestId, queryByTestId } = await mount();
    app.go("agents");
    await tick();
    const search = getByTestId("search");
    search.focus();
    await fireEvent.keyDown(search, { key: "?" });
    await tick();
    expect(queryByTestId("help-overlay")).toBeNull();
  });

  it("live regions announce new approvals politely and escalations at once, not the first paint", async () => {
    const { backend, getByTestId } = await mount([entity("approval", "a1", { title: "Deploy", status: "pending", created_at: 1 })]);
    const approvals = getByTestId("announce-approvals");
    const escalations = getByTestId("announce-escalations");
    expect(approvals.getAttribute("aria-live")).toBe("polite");
    expect(escalations.getAttribute("aria-live")).toBe("assertive");
    expect(approvals.textContent).toBe("");
    // The shell sends its counts after it applied the server's events.
    backend.emit("counts", { pending_approvals: 2, open_escalations: 0, unread_notifications: 0, tasks_in_progress: 0, oldest_pending_since_ms: null, ...NO_FIGURES });
    await frame();
    expect(approvals.textContent).toBe("1 new approval: 2 waiting for you");
    backend.emit("counts", { pending_approvals: 2, open_escalations: 1, unread_notifications: 0, tasks_in_progress: 0, oldest_pending_since_ms: null, ...NO_FIGURES });
    await frame();
    expect(escalations.textContent).toBe("1 conversation escalated: 1 open");
    expect(approvals.textContent).toBe("1 new approval: 2 waiting for you");
    // Fewer is not news.
    backend.emit("counts", { pending_approvals: 1, open_escalations: 1, unread_notifications: 0, tasks_in_progress: 0, oldest_pending_since_ms: null, ...NO_FIGURES });
    await frame();
    expect(approvals.textContent).toBe("1 new approval: 2 waiting for you");
  });

  it("icon-only buttons have names; a skip link leads to the page", async () => {
    const { app, getByTestId, container } = await mount();
    expect(getByTestId("skip-link").getAttribute("href")).toBe("#content");
    expect(container.querySelector("#content")).not.toBeNull();
    for (const page of PAGES) {
      app.go(page.id);
      await tick();
      for (const b of container.querySelectorAll("button")) {
        const name = (b.getAttribute("aria-label") ?? b.textContent ?? "").trim();
        expect(name, b.outerHTML).not.toBe("");
        if (/^[^\p{L}\p{N}]+$/u.test((b.textContent ?? "").trim())) expect(b.getAttribute("aria-label"), b.outerHTML).toBeTruthy();
      }
    }
  });
});
