// jsdom lacks these; the UI uses them.
if (!globalThis.requestAnimationFrame) {
  globalThis.requestAnimationFrame = (cb: FrameRequestCallback) => setTimeout(() => cb(Date.now()), 16) as unknown as number;
}
if (!globalThis.structuredClone) {
  globalThis.structuredClone = <T,>(v: T): T => JSON.parse(JSON.stringify(v));
}
// bind:clientHeight uses ResizeObserver.
if (!globalThis.ResizeObserver) {
  globalThis.ResizeObserver = class {
    observe() {}
    unobserve() {}
    disconnect() {}
  } as unknown as typeof ResizeObserver;
}
if (!globalThis.matchMedia) {
  globalThis.matchMedia = ((q: string) => ({ matches: false, media: q, addEventListener() {}, removeEventListener() {} })) as unknown as typeof matchMedia;
}

import { afterEach } from "vitest";
import { cleanup } from "@testing-library/svelte";
afterEach(() => cleanup());

// Svelte transitions (toasts) call Element.animate, which jsdom lacks: finish at once.
if (typeof Element !== "undefined" && !Element.prototype.animate) {
  Element.prototype.animate = function () {
    const a = { onfinish: null as null | (() => void), cancel() {}, finish() {}, currentTime: 0, playState: "finished" };
    setTimeout(() => a.onfinish?.(), 0);
    return a as unknown as Animation;
  };
}
