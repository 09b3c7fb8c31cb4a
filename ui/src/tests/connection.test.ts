import { describe, expect, it } from "vitest";
import { indicator } from "../lib/connection";
import type { ConnectionView } from "../lib/generated/types";

const base: ConnectionView = { state: { state: "live" }, last_sync_ms: new Date(2026, 0, 1, 14, 2).getTime(), server: "http://x", demo: false, caveat: null };

describe("connection indicator", () => {
  it("live", () => {
    expect(indicator(base).label).toBe("Live");
  });
  it("reconnecting counts down and says where the data is from", () => {
    const now = 1_000_000;
    const i = indicator({ ...base, state: { state: "reconnecting", attempt: 1, retry_at_ms: now + 4200, error: "refused" } }, now);
    expect(i.label).toBe("Reconnecting");
    expect(i.detail).toContain("next try in 5 s");
    expect(i.detail).toContain("Offline — data from 14:02");
    expect(i.retry).toBe(true);
  });
  it("offline after several attempts", () => {
    const i = indicator({ ...base, state: { state: "reconnecting", attempt: 5, retry_at_ms: 0, error: "refused" } });
    expect(i.label).toBe("Offline");
    expect(`${i.label} ${i.detail}`).toContain("Offline — data from 14:02");
  });
  it("failed offers retry", () => {
    const i = indicator({ ...base, state: { state: "failed", attempts: 10, retry_at_ms: 0, error: "connection refused" } });
    expect(i).toMatchObject({ label: "Failed", retry: true });
  });
  it("signed out offers sign in", () => {
    const i = indicator({ ...base, state: { state: "signed_out", message: "Signed out: no keyring" } });
    expect(i).toMatchObject({ label: "Signed out", signIn: true, detail: "Signed out: no keyring" });
  });
  it("credentials the server refused read as signed out too", () => {
    const i = indicator({ ...base, state: { state: "unauthorized", message: "the server refused the token" } });
    expect(i).toMatchObject({ level: "signed_out", label: "Signed out", signIn: true, retry: false, detail: "the server refused the token" });
  });
});
