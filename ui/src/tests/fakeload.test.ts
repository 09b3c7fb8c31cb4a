import { describe, expect, it } from "vitest";
import { render } from "@testing-library/svelte";
import App from "../App.svelte";
import { AppState } from "../lib/state/app.svelte";
import { FakeBackend } from "../lib/backend/fake";
import { busyUpdates, fakeEntities, fakeLoadFromQuery, MAX_FAKE_ENTITIES } from "../lib/backend/fakeload";

const frame = () => new Promise((r) => setTimeout(r, 40));

describe("the fake load in the page's URL", () => {
  it("reads ?fake=N and ?rate=R", () => {
    expect(fakeLoadFromQuery("")).toBeNull();
    expect(fakeLoadFromQuery("?theme=dark")).toBeNull();
    expect(fakeLoadFromQuery("?fake=10000")).toEqual({ entities: 10000, rate: 0 });
    expect(fakeLoadFromQuery("?fake=10000&rate=1000")).toEqual({ entities: 10000, rate: 1000 });
    expect(fakeLoadFromQuery("?rate=5&fake=0")).toEqual({ entities: 0, rate: 5 });
  });

  it("refuses garbage with an error that names the parameter", () => {
    const bad: [string, RegExp][] = [
      ["?fake=abc", /fake=.*whole number.*"abc"/],
      ["?fake=-1", /fake=.*whole number/],
      ["?fake=1e4", /fake=.*whole number/],
      ["?fake=", /fake=.*whole number/],
      ["?fake=%00", /fake=.*whole number/],
      ["?fake=10.5", /fake=.*whole number/],
      [`?fake=${MAX_FAKE_ENTITIES + 1}`, /at most/],
      ["?fake=99999999999999999999999", /at most/],
      ["?fake=10&rate=fast", /rate=.*whole number/],
      ["?fake=10&rate=1000000000", /rate=.*at most/],
      ["?rate=100", /needs \?fake=/],
      ["?fake=1&fake=2", /more than once/],
    ];
    for (const [q, why] of bad) expect(() => fakeLoadFromQuery(q), q).toThrow(why);
  });
});

describe("the benchmark's entities in the fake", () => {
  it("are the harness's seed_events as the gateway stores them", () => {
    const e = fakeEntities(10, 7);
    expect(e).toHaveLength(10);
    expect(e.map((x) => `${x.kind}:${x.id}`)).toEqual([
      "ticket:tkt-0", "agent:agent-0", "approval:apr-0", "conversation:conv-0", "notification:ntf-0",
      "ticket:tkt-1", "agent:agent-1", "approval:apr-1", "conversation:conv-1", "notification:ntf-1",
    ]);
    // Defaults the gateway's domain rules add: approvals pending, conversations open,
    // notifications unread; every record stamped.
    expect(e[2].data).toEqual({ id: "apr-0", title: "Deploy service-0 v2.0.0", requested_by: "agent-0", status: "pending", updated_at: 7 });
    expect(e[3].data.status).toBe("open");
    expect(e[4].data.read).toBe(false);
    expect(e[5].data).toEqual({ id: "tkt-1", title: "Ticket 1: refund stuck in review", state: "todo", assignee: "agent-1", updated_at: 7 });
    expect(e[6].data.status).toBe("busy");
    expect(new Set(fakeEntities(10_000).map((x) => `${x.kind}:${x.id}`)).size).toBe(10_000);
  });

  it("busy updates carry 20 markers a second and the latest heartbeat of each agent", () => {
    const fake = new FakeBackend(fakeEntities(1000));
    const one = busyUpdates(fake, 0, 1000, 1000, 5);
    // A second at 1,000 events/s: markers every 50th event, coalesced into one
    // stats block holding the last; 200 agents, each touched at most once.
    const stats = one.filter((u) => u.kind === "stats");
    expect(stats).toEqual([{ kind: "stats", id: "bench", data: { id: "bench", marker: 20, updated_at: 5 } }]);
    const agents = one.filter((u) => u.kind === "agent");
    expect(new Set(agents.map((a) => a.id)).size).toBe(agents.length);
    // Events 0, 50, 100, … are markers, so agents 0, 50, 100 and 150 get none.
    expect(agents.length).toBe(196);
    const a1 = agents.find((a) => a.id === "agent-1")!;
    // Kept the agent's fields, added the heartbeat.
    expect(a1.data).toMatchObject({ id: "agent-1", name: "Agent 1", last_heartbeat: 5 });
    expect(busyUpdates(fake, 0, 0, 1000, 5)).toEqual([]);
  });

  it("loads into the page and marks the content loaded, as from the cache", async () => {
    const backend = new FakeBackend(fakeEntities(500));
    const app = new AppState(backend, (cb) => setTimeout(cb, 0));
    const { getByTestId } = render(App, { props: { backend, app } });
    await frame();
    expect(getByTestId("content").dataset.loaded).toBe("true");
    expect(app.list("approval")).toHaveLength(100);
    backend.push(...busyUpdates(backend, 0, 100, 100, 9));
    await frame();
    expect(getByTestId("content").dataset.loaded).toBe("true");
    expect(app.list("stats").find((s) => s.id === "bench")?.data.marker).toBe(20);
  });
});
