import { describe, expect, it } from "vitest";
import { allows, parseEditedArgs } from "../lib/answers";
import { approvalWaitingSince, oldestWaitingSince } from "../lib/domain";
import { render, fireEvent } from "@testing-library/svelte";
import { tick } from "svelte";
import App from "../App.svelte";
import { AppState, entity } from "../lib/state/app.svelte";
import { FakeBackend } from "../lib/backend/fake";

describe("answers", () => {
  it("an allowed list says exactly which answers; without one, approve and reject", () => {
    const lg = { allowed: ["approve", "edit"] };
    expect([allows(lg, "approve"), allows(lg, "reject"), allows(lg, "edit"), allows(lg, "respond")]).toEqual([true, false, true, false]);
    const plain = {};
    expect([allows(plain, "approve"), allows(plain, "reject"), allows(plain, "edit"), allows(plain, "respond")]).toEqual([true, true, false, false]);
    expect(allows({ allowed: "edit" }, "edit")).toBe(false);
  });
  it("edited arguments must be a JSON object", () => {
    expect(parseEditedArgs('{"to": "ops@example.com"}')).toEqual({ args: { to: "ops@example.com" } });
    for (const bad of ["", "{", "[1]", '"x"', "null", "3"]) {
      const r = parseEditedArgs(bad);
      expect("error" in r, bad).toBe(true);
    }
  });
  it("since when an approval waits", () => {
    expect(approvalWaitingSince({ requested_at: 5, created_at: 3 })).toBe(5);
    expect(approvalWaitingSince({ created_at: 3 })).toBe(3);
    expect(approvalWaitingSince({ created_at: "2026-01-01" })).toBe(null);
    expect(oldestWaitingSince([{ created_at: 9 }, { created_at: 4, status: "approved" }, { requested_at: 7 }])).toBe(7);
    expect(oldestWaitingSince([])).toBe(null);
  });
});

const frame = () => new Promise((r) => setTimeout(r, 40));

describe("a LangGraph approval's detail", () => {
  it("shows the action and arguments, its age, and sends Edit only as a JSON object and Respond as text", async () => {
    const lg = entity("approval", "lg:t1:i1", {
      title: "Send the release notes?", status: "pending", source: "langgraph", graph: "approval", thread_id: "t1",
      action: "send_email", args: { to: "team@example.com" }, allowed: ["approve", "reject", "edit", "respond"],
      shape: "human_interrupt_list", requested_at: Date.now() - 5 * 60_000,
    });
    const backend = new FakeBackend([lg]);
    backend.steps.set("lg:t1:i1", { steps: [
      { at: null, step: 2, next: ["ask"], writes: null, values: { steps: ["planned: write the release notes", "drafted: notes.md"] } },
      { at: null, step: 1, next: ["plan"], writes: null },
    ] });
    const app = new AppState(backend, (cb) => setTimeout(cb, 0));
    const { getByTestId, getAllByTestId } = render(App, { props: { backend, app } });
    await frame();
    app.go("approvals");
    await tick();
    await frame();
    expect(getByTestId("agent-log").textContent).toContain("drafted: notes.md");
    expect(getAllByTestId("step").map((s) => s.textContent)).toEqual(["2 → ask", "1 → plan"]);
    expect(getByTestId("approval-args").textContent).toContain("team@example.com");
    expect(getByTestId("approval-age").textContent).toContain("5 min ago");
    await fireEvent.click(getByTestId("detail-edit"));
    const text = getByTestId("answer-text") as HTMLTextAreaElement;
    expect(JSON.parse(text.value)).toEqual({ to: "team@example.com" });
    await fireEvent.input(text, { target: { value: "[1, 2]" } });
    expect(getByTestId("answer-error").textContent).toContain("JSON object");
    expect((getByTestId("answer-send") as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.input(text, { target: { value: '{"to": "ops@example.com"}' } });
    await fireEvent.click(getByTestId("answer-send"));
    await frame();
    const sent = backend.calls.filter((c) => c.name === "perform").map((c) => c.args);
    expect(sent).toEqual([{ action: "edit", id: "lg:t1:i1", args: { to: "ops@example.com" } }]);
  });

  it("hides the answers the interrupt does not allow", async () => {
    const plain = entity("approval", "lg:t2:i2", { title: "Deploy?", status: "pending", source: "langgraph", shape: "plain", value: "Deploy?", allowed: ["approve", "reject", "respond"] });
    const backend = new FakeBackend([plain]);
    const app = new AppState(backend, (cb) => setTimeout(cb, 0));
    const { getByTestId, queryByTestId } = render(App, { props: { backend, app } });
    await frame();
    app.go("approvals");
    await tick();
    await frame();
    expect(getByTestId("approval-steps").textContent).toContain("Steps not available");
    expect(getByTestId("approval-value").textContent).toBe("Deploy?");
    expect(queryByTestId("detail-edit")).toBeNull();
    await fireEvent.click(getByTestId("detail-respond"));
    await fireEvent.input(getByTestId("answer-text"), { target: { value: "tomorrow" } });
    await fireEvent.click(getByTestId("answer-send"));
    await frame();
    const sent = backend.calls.filter((c) => c.name === "perform").map((c) => c.args);
    expect(sent).toEqual([{ action: "respond", id: "lg:t2:i2", text: "tomorrow" }]);
  });
});
