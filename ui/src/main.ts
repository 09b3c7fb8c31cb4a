// When the page's script ran, its imports evaluated (the start-up trace: `Bootstrap.trace`).
(globalThis as { __pulseScriptAt?: number }).__pulseScriptAt = performance.timeOrigin + performance.now();
import { mount } from "svelte";
import "./app.css";
import App from "./App.svelte";
import { AppState } from "./lib/state/app.svelte";
import { TauriBackend, inTauri } from "./lib/backend/tauri";
import { FakeBackend } from "./lib/backend/fake";
import { driveRate, fakeEntities, fakeLoadFromQuery, type FakeLoad } from "./lib/backend/fakeload";
import type { Backend } from "./lib/backend/backend";

function pickBackend(): Backend {
  if (inTauri()) return new TauriBackend();
  // A plain browser: `?fake=N&rate=R` (the desktop benchmark's Chromium side by
  // side) loads N entities and R events/s; otherwise (npm run dev) a busy demo fake,
  // so the UI can be worked on alone.
  let load: FakeLoad | null = null;
  try {
    load = fakeLoadFromQuery(location.search);
  } catch (e) {
    console.error(`pulse: ignoring the fake load in the URL: ${(e as Error).message}`);
  }
  if (load) {
    const fake = new FakeBackend(fakeEntities(load.entities));
    driveRate(fake, load.rate);
    return fake;
  }
  const fake = new FakeBackend();
  fake.simulate();
  return fake;
}

const target = document.getElementById("app");
if (!target) throw new Error("no #app element");
const backend = pickBackend();
const app = new AppState(backend);
// Listen and ask for the bootstrap before mounting: the shell answers those
// round trips while the page mounts, instead of after it.
const started = app.init();
const mounted = mount(App, { target, props: { backend, app, started } });
(globalThis as { __pulseMountedAt?: number }).__pulseMountedAt = performance.timeOrigin + performance.now();
export default mounted;
