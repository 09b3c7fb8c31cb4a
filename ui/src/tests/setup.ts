// jsdom lacks these; the UI uses them.
if (!globalThis.requestAnimationFrame) {
  globalThis.requestAnimationFrame = (cb: FrameRequestCallback) => setTimeout(() => cb(Date.now()), 16) as unknown as number;
}
if (!globalThis.structuredClone) {
  globalThis.structuredClone = <T,>(v: T): T => JSON.parse(JSON.stringify(v));
}
