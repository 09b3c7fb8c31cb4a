import { describe, expect, it } from "vitest";
import { render, fireEvent } from "@testing-library/svelte";
import App from "../App.svelte";
import { AppState } from "../lib/state/app.svelte";
import { FakeBackend } from "../lib/backend/fake";

const frame = () => new Promise((r) => setTimeout(r, 40));
const MESSAGE =
  "The cache was damaged (file is not a database) and was moved to /data/work.db.corrupt-1; its contents could not be read: any action queued offline is lost, cached items reload from the server.";

describe("a cache moved aside at open", () => {
  it("is told in the app with what was lost, and stays dismissed across reloads", async () => {
    const backend = new FakeBackend([]);
    backend.cacheSetAside = MESSAGE;
    const app = new AppState(backend, (cb) => setTimeout(cb, 0));
    const { getByTestId, queryByTestId } = render(App, { props: { backend, app } });
    await frame();
    const banner = getByTestId("cache-set-aside");
    expect(banner.getAttribute("role")).toBe("alert");
    expect(banner.textContent).toContain(MESSAGE);
    await fireEvent.click(getByTestId("cache-set-aside-dismiss"));
    expect(queryByTestId("cache-set-aside")).toBeNull();
    await app.reload();
    await frame();
    expect(queryByTestId("cache-set-aside")).toBeNull();
  });

  it("is absent when the cache opened cleanly", async () => {
    const backend = new FakeBackend([]);
    const app = new AppState(backend, (cb) => setTimeout(cb, 0));
    const { queryByTestId } = render(App, { props: { backend, app } });
    await frame();
    expect(queryByTestId("cache-set-aside")).toBeNull();
  });
});
