import { describe, expect, it } from "vitest";
import { render, fireEvent } from "@testing-library/svelte";
import { tick } from "svelte";
import App from "../App.svelte";
import { AppState } from "../lib/state/app.svelte";
import { FakeBackend } from "../lib/backend/fake";
import type { UpdateStatus } from "../lib/generated/types";

const frame = () => new Promise((r) => setTimeout(r, 40));

async function mount(status: UpdateStatus, endpoint: string | null = "https://releases.example.com/latest.json") {
  const backend = new FakeBackend([]);
  backend.settings.updates = { endpoint, check_at_start: false };
  backend.updateStatus = status;
  const app = new AppState(backend, (cb) => setTimeout(cb, 0));
  const r = render(App, { props: { backend, app } });
  await frame();
  app.go("settings");
  await tick();
  return { backend, app, ...r };
}

const offer = (install: Extract<UpdateStatus, { status: "available" }>["install"]): UpdateStatus => ({
  status: "available",
  current_version: "0.1.0",
  version: "0.2.0",
  notes: "Faster reconnects.\nA help overlay (?).",
  date: "2026-12-01T12:00:00Z",
  download_url: "https://releases.example.com/Pulse_0.2.0_amd64.deb",
  install,
});

describe("Settings: update checks", () => {
  it("the endpoint is saved in the settings", async () => {
    const { backend, getByTestId } = await mount({ status: "not_configured" }, null);
    expect((getByTestId("check-updates") as HTMLButtonElement).disabled).toBe(true);
    await fireEvent.input(getByTestId("update-endpoint"), { target: { value: " https://r.example/latest.json " } });
    await fireEvent.click(getByTestId("save-settings"));
    await frame();
    const saved = backend.calls.filter((c) => c.name === "save_settings").at(-1)!.args as { updates: { endpoint: string } };
    expect(saved.updates.endpoint).toBe("https://r.example/latest.json");
    expect((getByTestId("check-updates") as HTMLButtonElement).disabled).toBe(false);
  });

  it("a newer signed release is offered with its version and notes; self-updating installs it", async () => {
    const { backend, getByTestId, queryByTestId } = await mount(offer({ kind: "self_update" }));
    await fireEvent.click(getByTestId("check-updates"));
    await frame();
    const prompt = getByTestId("update-prompt");
    expect(prompt.textContent).toContain("Pulse 0.2.0 is available");
    expect(prompt.textContent).toContain("you have 0.1.0");
    expect(getByTestId("update-notes").textContent).toBe("Faster reconnects.\nA help overlay (?).");
    expect(queryByTestId("update-package-manager")).toBeNull();
    await fireEvent.click(getByTestId("install-update"));
    await frame();
    expect(backend.calls.some((c) => c.name === "install_update")).toBe(true);
  });

  it("where a package manager owns the install, it says so and points to the new version", async () => {
    const hint = "Pulse was installed with apt: download Pulse 0.2.0 (Pulse_0.2.0_amd64.deb) and run `sudo apt install ./Pulse_0.2.0_amd64.deb`";
    const { backend, getByTestId, queryByTestId } = await mount(offer({ kind: "package_manager", format: "deb", hint }));
    await fireEvent.click(getByTestId("check-updates"));
    await frame();
    expect(getByTestId("update-package-manager").textContent).toBe(hint);
    expect(queryByTestId("install-update")).toBeNull();
    await fireEvent.click(getByTestId("open-update"));
    expect(backend.calls.some((c) => c.name === "install_update")).toBe(false);
  });

  it("a refused release shows why and offers nothing; errors are shown", async () => {
    const reason = "Pulse 0.2.0 was not offered: its signature does not verify with this build's public key.";
    const { backend, getByTestId, queryByTestId } = await mount({ status: "refused", version: "0.2.0", reason });
    await fireEvent.click(getByTestId("check-updates"));
    await frame();
    expect(getByTestId("update-refused").textContent).toContain(reason);
    expect(getByTestId("update-refused").getAttribute("role")).toBe("alert");
    expect(queryByTestId("update-prompt")).toBeNull();

    backend.checkUpdates = async () => {
      throw { code: "io", message: "could not check https://releases.example.com/latest.json for updates" };
    };
    await fireEvent.click(getByTestId("check-updates"));
    await frame();
    expect(getByTestId("update-error").textContent).toContain("could not check");
  });
});

describe("Update check at start", () => {
  it("where the settings ask for it, a verified release is offered at the top of the window", async () => {
    const backend = new FakeBackend([]);
    backend.settings.updates = { endpoint: "https://releases.example.com/latest.json", check_at_start: true };
    backend.updateStatus = offer({ kind: "self_update" });
    const app = new AppState(backend, (cb) => setTimeout(cb, 0));
    const { getByTestId, queryByTestId, getByLabelText } = render(App, { props: { backend, app } });
    await frame();
    await frame();
    expect(backend.calls.filter((c) => c.name === "check_updates")).toHaveLength(1);
    expect(getByTestId("update-banner").textContent).toContain("Pulse 0.2.0 is available");
    await fireEvent.click(getByLabelText("Dismiss the update"));
    await tick();
    expect(queryByTestId("update-banner")).toBeNull();
  });

  it("without check_at_start nothing is asked", async () => {
    const backend = new FakeBackend([]);
    backend.settings.updates = { endpoint: "https://releases.example.com/latest.json", check_at_start: false };
    const app = new AppState(backend, (cb) => setTimeout(cb, 0));
    render(App, { props: { backend, app } });
    await frame();
    expect(backend.calls.some((c) => c.name === "check_updates")).toBe(false);
  });
});
