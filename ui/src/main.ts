import { mount } from "svelte";
import "./app.css";
import App from "./App.svelte";
import { TauriBackend, inTauri } from "./lib/backend/tauri";
import { FakeBackend } from "./lib/backend/fake";
import type { Backend } from "./lib/backend/backend";

function pickBackend(): Backend {
  if (inTauri()) return new TauriBackend();
  // A plain browser (npm run dev): a busy fake, so the UI can be worked on alone.
  const fake = new FakeBackend();
  fake.simulate();
  return fake;
}

const target = document.getElementById("app");
if (!target) throw new Error("no #app element");
export default mount(App, { target, props: { backend: pickBackend() } });
