// The bootstrap in pieces (issue 12, cold start): the first piece is painted and the
// content marked loaded, the rest streams in one chunk per frame; after the last
// chunk the state (entities, lists, DOM) is the state a whole bootstrap gives, and a
// live update that arrived while streaming is never overwritten by an older chunk.
import { describe, expect, it } from "vitest";
import { render } from "@testing-library/svelte";
import { tick } from "svelte";
import App from "../App.svelte";
import { AppState, entity } from "../lib/state/app.svelte";
import { FakeBackend } from "../lib/backend/fake";
import { fakeEntities } from "../lib/backend/fakeload";
import type { Entity, EntityKind } from "../lib/generated/types";
import { ENTITY_KINDS } from "../lib/generated/types";

/** A scheduler the test runs by hand: one call = one animation frame. */
function manualFrames() {
  const pending: (() => void)[] = [];
  return {
    schedule: (cb: () => void) => void pending.push(cb),
    frame: () => pending.splice(0).forEach((cb) => cb()),
    get waiting() {
      return pending.length;
    },
  };
}

const q = (c: HTMLElement, id: string) => c.querySelector<HTMLElement>(`[data-testid="${id}"]`)!;

const settle = async () => {
  for (let i = 0; i < 5; i++) await new Promise((res) => setTimeout(res, 0));
  await tick();
};

const T0 = Date.UTC(2026, 0, 1);

/** A cache with every kind, statuses that the overview counts, and stats blocks. */
function seed(): Entity[] {
  const out = fakeEntities(1_000, T0);
  for (let i = 0; i < 60; i++) {
    out.push(entity("conversation", `esc-${i}`, { customer: `E${i}`, subject: `S${i}`, status: i % 2 ? "escalated" : "resolved", created_at: T0 + i }));
    out.push(entity("agent", `w-${i}`, { name: `Worker ${i}`, status: ["working", "failed", "terminated"][i % 3] }));
    out.push(entity("message", `m-${i}`, { conversation_id: `chat-${i % 7}`, text: `hi ${i}`, ts: T0 + i }));
  }
  out.push(entity("stats", "system", { cpu: 12, queue: { depth: 3 } }));
  return out;
}

async function mount(chunk: number | null) {
  const backend = new FakeBackend(seed());
  backend.chunk = chunk;
  backend.firstRows = 25;
  const frames = manualFrames();
  const app = new AppState(backend, frames.schedule);
  const r = render(App, { props: { backend, app } });
  await settle();
  frames.frame();
  await tick();
  return { backend, frames, app, ...r };
}

/** Run frames until the stream has ended (bounded: a stream that never ends fails). */
async function streamAll(m: Awaited<ReturnType<typeof mount>>) {
  for (let i = 0; i < 1_000 && (m.app.streaming || m.frames.waiting); i++) {
    m.frames.frame();
    await settle();
  }
  expect(m.app.streaming).toBe(false);
}

/** The rendered pages. */
async function pages(app: AppState, container: HTMLElement): Promise<Record<string, string>> {
  const out: Record<string, string> = {};
  for (const p of ["overview", "agents", "board", "approvals", "conversations", "notifications"] as const) {
    app.go(p);
    await tick();
    out[p] = container.querySelector("[data-testid=content]")!.innerHTML.replace(/<!---->/g, "");
  }
  app.go("overview");
  await tick();
  return out;
}

/** Every entity the page holds, by kind, in its order. */
function held(app: AppState): Record<string, [string, unknown][]> {
  return Object.fromEntries(ENTITY_KINDS.map((k: EntityKind) => [k, app.list(k).map((i) => [i.id, i.data] as [string, unknown])]));
}

function lists(app: AppState) {
  return {
    agents: app.agents.map((a) => a.id),
    tickets: app.tickets.map((t) => t.id),
    conversations: app.conversations.map((c) => c.id),
    approvals: app.pendingApprovals.map((a) => a.id),
    chats: app.chats.map((c) => [c.id, c.count]),
    notifications: app.notifications.map((n) => n.key),
  };
}

describe("bootstrap in pieces", () => {
  it("marks the content loaded after the first piece and ends with the state of a whole bootstrap", async () => {
    const whole = await mount(null);
    expect(whole.app.streaming).toBe(false);
    expect(whole.backend.calls.filter((c) => c.name === "bootstrapMore")).toHaveLength(0);

    const pieces = await mount(150);
    // Loaded from the first piece: the counts are the cache's, the lists partial and
    // said to be loading.
    expect(q(pieces.container, "content").dataset.loaded).toBe("true");
    expect(pieces.app.streaming).toBe(true);
    expect(pieces.app.loading("agent")).toBe(true);
    expect(pieces.app.loading("stats")).toBe(false);
    expect(pieces.app.list("agent").length).toBe(25);
    expect(pieces.app.counts).toEqual(whole.app.counts);
    expect(q(pieces.container, "stat-agents").textContent).toBe(q(whole.container, "stat-agents").textContent);
    expect(q(pieces.container, "stat-tasks").textContent).toBe(q(whole.container, "stat-tasks").textContent);
    expect(q(pieces.container, "stat-conversations").textContent).toBe(q(whole.container, "stat-conversations").textContent);
    // A page of a kind still streaming never says it is empty.
    pieces.app.go("notifications");
    await tick();
    expect(pieces.container.textContent).not.toContain("No notifications");

    await streamAll(pieces);
    const more = pieces.backend.calls.filter((c) => c.name === "bootstrapMore").length;
    expect(more).toBeGreaterThan(3);
    expect(held(pieces.app)).toEqual(held(whole.app));
    expect(lists(pieces.app)).toEqual(lists(whole.app));
    expect(await pages(pieces.app, pieces.container)).toEqual(await pages(whole.app, whole.container));
    expect(pieces.app.counts).toEqual(whole.app.counts);
    whole.unmount();
    pieces.unmount();
  }, 60_000);

  it("an update or deletion that arrives while streaming is not overwritten by an older chunk", async () => {
    const m = await mount(100);
    expect(m.app.streaming).toBe(true);
    // agent-190 and tkt-195 are cached but in a later chunk; the update and the deletion are newer.
    expect(m.app.get("agent", "agent-190")).toBeUndefined();
    expect(m.backend.entities.has("ticket:tkt-195")).toBe(true);
    m.backend.push(entity("agent", "agent-190", { name: "Renamed", status: "working" }));
    m.backend.remove("ticket", "tkt-195");
    m.frames.frame();
    await settle();
    expect(m.app.get("agent", "agent-190")?.name).toBe("Renamed");
    await streamAll(m);
    expect(m.app.get("agent", "agent-190")?.name).toBe("Renamed");
    expect(m.app.get("ticket", "tkt-195")).toBeUndefined();
    // Everything else is the fake's cache, entity for entity.
    for (const e of m.backend.entities.values()) expect(m.app.get(e.kind, e.id)).toEqual(e.data);
    for (const k of ENTITY_KINDS) expect(m.app.list(k).length).toBe([...m.backend.entities.values()].filter((e) => e.kind === k).length);
    m.unmount();
  });

  it("a reload while streaming drops the old stream and ends with the cache", async () => {
    const m = await mount(150);
    expect(m.app.streaming).toBe(true);
    m.backend.emit("reset", null);
    await settle();
    await streamAll(m);
    for (const k of ENTITY_KINDS) expect(m.app.list(k).length).toBe([...m.backend.entities.values()].filter((e) => e.kind === k).length);
    // The old stream was not read after its reload: every call names the current one.
    const errors = m.container.querySelectorAll("[data-testid=toast]");
    expect([...errors].map((e) => e.textContent).join()).not.toContain("local cache");
    m.unmount();
  });

  it("a stream the backend no longer has is reported, not left loading", async () => {
    const m = await mount(150);
    m.backend.chunk = null;
    // The fake forgets the stream (as the shell does when another bootstrap replaced it).
    await m.backend.bootstrap();
    await streamAll(m);
    expect(m.app.toasts.map((t) => t.text).join()).toContain("Could not read the local cache");
    m.unmount();
  });
});
