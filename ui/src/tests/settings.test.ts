import { describe, expect, it } from "vitest";
import { render, fireEvent } from "@testing-library/svelte";
import { tick } from "svelte";
import App from "../App.svelte";
import { AppState, entity } from "../lib/state/app.svelte";
import { FakeBackend } from "../lib/backend/fake";
import { indicator } from "../lib/connection";
import type { SavedServer } from "../lib/generated/types";

const frame = () => new Promise((r) => setTimeout(r, 40));

async function mountSettings(servers: SavedServer[] = [], active: string | null = null, entities = [] as ReturnType<typeof entity>[]) {
  const backend = new FakeBackend(entities);
  backend.settings.servers = servers;
  backend.settings.active_server = active;
  const app = new AppState(backend, (cb) => setTimeout(cb, 0));
  const r = render(App, { props: { backend, app } });
  await frame();
  app.go("settings");
  await tick();
  return { backend, app, ...r };
}

const bridge: SavedServer = { id: "bridge", name: "Bridge", url: "http://127.0.0.1:4000", profile: "event-bridge", tenant: null, username: null, projects: [], force_polling: false, nodes: [], allow_plain_http: false };

describe("Settings: server profiles", () => {
  it("offers native, every built-in profile and a TOML file; choosing one saves it", async () => {
    const { backend, getByTestId, getAllByTestId, queryByTestId } = await mountSettings();
    await fireEvent.click(getByTestId("page-settings").querySelector("fieldset button.btn.small:not(.danger-ghost)")!);
    await tick();
    const select = getAllByTestId("server-profile")[0] as HTMLSelectElement;
    const values = [...select.options].map((o) => o.value);
    expect(values).toEqual(["native", "agent-monitor", "event-bridge", "nest-realtime", "fastapi-dashboard", "tasks-gateway", "__file__"]);
    expect([...select.options].every((o) => !o.disabled)).toBe(true);

    select.value = "__file__";
    await fireEvent.change(select);
    await tick();
    const file = getByTestId("server-profile-file") as HTMLInputElement;
    await fireEvent.input(file, { target: { value: "/etc/pulse/ours.toml" } });
    await tick();
    await fireEvent.click(getByTestId("save-settings"));
    await frame();
    const saved = backend.calls.filter((c) => c.name === "save_settings").at(-1)!.args as { servers: SavedServer[] };
    expect(saved.servers[0].profile).toBe("/etc/pulse/ours.toml");

    select.value = "event-bridge";
    await fireEvent.change(select);
    await tick();
    expect(queryByTestId("server-profile-file")).toBeNull();
    expect(getByTestId("profile-note").textContent).toContain("cannot replay");
  });

  it("forcing polling and the projects (rooms) are saved per server", async () => {
    const { backend, getByTestId } = await mountSettings([bridge], "bridge");
    const poll = getByTestId("server-force-polling") as HTMLInputElement;
    expect(poll.checked).toBe(false);
    await fireEvent.click(poll);
    const projects = getByTestId("server-projects") as HTMLInputElement;
    await fireEvent.input(projects, { target: { value: " p1, ,p2 " } });
    await tick();
    await fireEvent.click(getByTestId("save-settings"));
    await frame();
    const saved = backend.calls.filter((c) => c.name === "save_settings").at(-1)!.args as { servers: SavedServer[] };
    expect(saved.servers[0].force_polling).toBe(true);
    expect(saved.servers[0].projects).toEqual(["p1", "p2"]);
  });

  it("the other nodes of a server (a cluster) are saved as a list of URLs", async () => {
    const gateway: SavedServer = { ...bridge, id: "gw", name: "Cluster", profile: "native" };
    const { backend, getByTestId } = await mountSettings([gateway], "gw");
    const nodes = getByTestId("server-nodes") as HTMLInputElement;
    expect(nodes.value).toBe("");
    await fireEvent.input(nodes, { target: { value: " http://10.0.0.2:8080, ,http://10.0.0.3:8080 " } });
    await tick();
    await fireEvent.click(getByTestId("save-settings"));
    await frame();
    const saved = backend.calls.filter((c) => c.name === "save_settings").at(-1)!.args as { servers: SavedServer[] };
    expect(saved.servers[0].nodes).toEqual(["http://10.0.0.2:8080", "http://10.0.0.3:8080"]);
    expect(saved.servers[0].url).toBe("http://127.0.0.1:4000");
  });

  it("a non-native server takes an access token, sent only to setToken (never in the settings)", async () => {
    const { backend, app, getByTestId, queryByTestId } = await mountSettings([bridge], "bridge");
    // The password sign-in is for Pulse gateways only.
    expect(queryByTestId("login-user")).toBeNull();
    expect(getByTestId("token-section")).toBeTruthy();
    expect(queryByTestId("token-saved")).toBeNull();
    const input = getByTestId("token-input") as HTMLInputElement;
    expect(input.type).toBe("password");
    await fireEvent.input(input, { target: { value: "  jwt-abc  " } });
    await tick();
    await fireEvent.click(getByTestId("token-save"));
    await frame();
    expect(backend.tokens.get("bridge")).toBe("jwt-abc");
    expect(app.account?.token_saved).toBe(true);
    expect(getByTestId("token-saved").textContent).toContain("OS keyring");
    expect((getByTestId("token-input") as HTMLInputElement).value).toBe("");
    // Nothing token-like went into the settings.
    expect(JSON.stringify(backend.settings)).not.toContain("jwt-abc");
    for (const c of backend.calls.filter((c) => c.name === "save_settings")) expect(JSON.stringify(c.args)).not.toContain("jwt-abc");

    await fireEvent.click(getByTestId("token-forget"));
    await frame();
    expect(backend.tokens.has("bridge")).toBe(false);
    expect(queryByTestId("token-saved")).toBeNull();
  });

  it("says the token stays in memory until quit without a keyring", async () => {
    const backend0 = new FakeBackend();
    backend0.keyringError = "no Secret Service";
    backend0.settings.servers = [bridge];
    backend0.settings.active_server = "bridge";
    const app = new AppState(backend0, (cb) => setTimeout(cb, 0));
    const { getByTestId } = render(App, { props: { backend: backend0, app } });
    await frame();
    app.go("settings");
    await tick();
    expect(getByTestId("token-keyring-note").textContent).toContain("until Pulse quits");
  });

  it("tasks-gateway needs no token", async () => {
    const { getByTestId, queryByTestId } = await mountSettings([{ ...bridge, id: "tasks", profile: "tasks-gateway" }], "tasks");
    expect(getByTestId("token-not-needed")).toBeTruthy();
    expect(queryByTestId("token-input")).toBeNull();
  });
});

describe("profile servers elsewhere", () => {
  it("the caveat is shown beside the connection indicator, in every state", async () => {
    const caveat = "this server cannot replay missed events; Pulse refetches after each reconnect";
    const c = { state: { state: "live" as const }, last_sync_ms: 1, server: "http://x", demo: false, caveat };
    expect(indicator(c).caveat).toBe("This server cannot replay missed events; Pulse refetches after each reconnect.");
    expect(indicator(c).detail).toBe("up to date");
    expect(indicator({ ...c, state: { state: "reconnecting", attempt: 5, retry_at_ms: 0, error: "x" } }).caveat).toContain("cannot replay");
    expect(indicator({ ...c, demo: true }).caveat).toBeNull();

    const { backend, getByTestId } = await mountSettings();
    backend.setConnection({ demo: false, caveat });
    await tick();
    expect(getByTestId("connection-caveat").textContent).toContain("This server cannot replay missed events");
  });

  it("the overview reads a stats-only server (event-bridge's blocks)", async () => {
    // As the event-bridge profile stores them: its `inProgress` / `completed` mapped to
    // Pulse's spellings (crates/pulse-core/src/profile/builtin/event-bridge.toml).
    const { app, getByTestId } = await mountSettings([], null, [
      entity("stats", "tasks", { pending: 2, in_progress: 1, done: 3, total: 6 }),
      entity("stats", "approvals", { pending: 4, approved: 9, rejected: 1 }),
      entity("stats", "conversations", { open: 5, escalated: 2, resolved: 7 }),
      entity("stats", "dashboard", { active_agents: 3, costs: { today: 12.5 } }),
    ]);
    app.go("overview");
    await tick();
    expect(getByTestId("stat-tasks").textContent).toContain("1 in progress · 6 in all");
    expect(getByTestId("stat-tasks").querySelector(".v")!.textContent).toBe("3");
    expect(getByTestId("stat-approvals-value").textContent).toBe("4");
    expect(getByTestId("stat-conversations").textContent).toContain("2 escalated");
    const blocks = getByTestId("server-stats").querySelectorAll("[data-testid=stats-block]");
    expect([...blocks].map((b) => b.getAttribute("data-id"))).toEqual(["dashboard"]);
    expect(blocks[0].textContent).toContain("Active agents");
    expect(blocks[0].textContent).toContain("12.5");
  });
});

describe("Settings: security", () => {
  it("a server's plain-http opt-in is saved with it, and the note says why it exists", async () => {
    const lan: SavedServer = { ...bridge, id: "lan", name: "Lan", url: "http://10.0.0.5:4000" };
    const { backend, getAllByTestId } = await mountSettings([lan], "lan");
    const allow = getAllByTestId("server-allow-http")[0] as HTMLInputElement;
    expect(allow.checked).toBe(false);
    const note = getAllByTestId("server-allow-http-note")[0].textContent ?? "";
    expect(note).toContain("unencrypted");
    expect(note).toContain("localhost");
    await fireEvent.click(allow);
    await fireEvent.click(getAllByTestId("save-settings")[0]);
    await frame();
    const saved = backend.calls.filter((c) => c.name === "save_settings").at(-1)!.args as { servers: SavedServer[] };
    expect(saved.servers[0].allow_plain_http).toBe(true);
  });

  it("the CA file is saved as a path, empty as none", async () => {
    const { backend, getByTestId } = await mountSettings();
    const ca = getByTestId("ca-file") as HTMLInputElement;
    await fireEvent.input(ca, { target: { value: "  /etc/ssl/corp-ca.pem " } });
    await fireEvent.click(getByTestId("save-settings"));
    await frame();
    const last = () => backend.calls.filter((c) => c.name === "save_settings").at(-1)!.args as { ca_file: string | null };
    expect(last().ca_file).toBe("/etc/ssl/corp-ca.pem");
    expect(getByTestId("ca-file-note").textContent).toContain("never instead of them");
    await fireEvent.input(ca, { target: { value: "   " } });
    await fireEvent.click(getByTestId("save-settings"));
    await frame();
    expect(last().ca_file).toBeNull();
  });
});

describe("Settings: signing out with actions queued", () => {
  const gw: SavedServer = { ...bridge, id: "gw", name: "Gateway", url: "http://127.0.0.1:7780", profile: "native", username: "ops" };
  const queuedOne = { id: 1, owner: { server: "gw", account: "ops" }, action: { action: "approve" as const, id: "ap-1", reason: null }, queued_at: 1, last_error: null };
  /** Queued by another account on the same server: not asked about, never discarded here. */
  const othersOne = { ...queuedOne, id: 2, owner: { server: "gw", account: "bob" } };

  it("asks whether to keep or discard them, and sends the choice", async () => {
    const backend = new FakeBackend([]);
    backend.settings.servers = [gw];
    backend.settings.active_server = "gw";
    backend.outbox = [queuedOne];
    const app = new AppState(backend, (cb) => setTimeout(cb, 0));
    const { getByTestId, queryByTestId } = render(App, { props: { backend, app } });
    await frame();
    app.go("settings");
    await tick();
    await fireEvent.click(getByTestId("sign-out"));
    await tick();
    expect(backend.calls.some((c) => c.name === "logout")).toBe(false);
    expect(getByTestId("sign-out-queued").textContent).toContain("1 action(s) queued for Gateway");
    await fireEvent.click(getByTestId("sign-out-cancel"));
    expect(queryByTestId("sign-out-queued")).toBeNull();
    await fireEvent.click(getByTestId("sign-out"));
    await tick();
    await fireEvent.click(getByTestId("sign-out-keep"));
    await frame();
    expect(backend.calls.filter((c) => c.name === "logout").map((c) => c.args)).toEqual(["keep"]);
    expect(app.outbox.length).toBe(1);
    await fireEvent.click(getByTestId("sign-out"));
    await tick();
    await fireEvent.click(getByTestId("sign-out-discard"));
    await frame();
    expect(backend.calls.filter((c) => c.name === "logout").map((c) => c.args)).toEqual(["keep", "discard"]);
    expect(app.outbox.length).toBe(0);
  });

  it("counts and discards only the signed-in account's entries", async () => {
    const backend = new FakeBackend([]);
    backend.settings.servers = [gw];
    backend.settings.active_server = "gw";
    backend.outbox = [othersOne];
    const app = new AppState(backend, (cb) => setTimeout(cb, 0));
    const { getByTestId, queryByTestId } = render(App, { props: { backend, app } });
    await frame();
    app.go("settings");
    await tick();
    // Only bob's entry: nothing of ops's to ask about.
    await fireEvent.click(getByTestId("sign-out"));
    await frame();
    expect(queryByTestId("sign-out-queued")).toBeNull();
    expect(backend.calls.filter((c) => c.name === "logout").map((c) => c.args)).toEqual(["keep"]);
    // With one of ops's too: one is asked about, and discarding keeps bob's.
    backend.outbox = [othersOne, queuedOne];
    backend.emit("outbox", [...backend.outbox]);
    await frame();
    await fireEvent.click(getByTestId("sign-out"));
    await tick();
    expect(getByTestId("sign-out-queued").textContent).toContain("1 action(s) queued for Gateway");
    await fireEvent.click(getByTestId("sign-out-discard"));
    await frame();
    expect(app.outbox.map((e) => e.id)).toEqual([2]);
    // The sidebar counts bob's apart: not "waiting to be sent" by this session.
    expect(queryByTestId("outbox")).toBeNull();
    expect(getByTestId("outbox-others").textContent).toContain("1 queued for another account");
    // Settings offers to discard bob's, and does only when asked.
    expect(getByTestId("queued-others").textContent).toContain("1 action(s)");
    await fireEvent.click(getByTestId("discard-others"));
    await frame();
    expect(backend.calls.filter((c) => c.name === "discard_queued").map((c) => c.args)).toEqual([[2]]);
    expect(app.outbox).toEqual([]);
    expect(queryByTestId("queued-others")).toBeNull();
  });

  it("signs out at once when nothing is queued", async () => {
    const { backend, getByTestId, queryByTestId } = await mountSettings([gw], "gw");
    await fireEvent.click(getByTestId("sign-out"));
    await frame();
    expect(queryByTestId("sign-out-queued")).toBeNull();
    expect(backend.calls.filter((c) => c.name === "logout").map((c) => c.args)).toEqual(["keep"]);
  });
});
