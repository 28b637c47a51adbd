import { describe, expect, it } from "vitest";
import { get } from "../helpers/client";

describe("happy", () => {
  it("GET /healthz answers with the build version and cost headers", async () => {
    const res = await get("/healthz");
    expect(res.status).toBe(200);
    expect(res.body).toEqual({ status: "ok", version: "dev" });
    expect(res.headers.get("x-request-id")).toMatch(/^req_/);
    expect(res.headers.get("server-timing")).toMatch(/^db;dur=\d+;desc="queries=0 rows_read=0", kv;desc="reads=0 writes=0"/);
    expect(res.cost).toEqual({ queries: 0, rowsRead: 0, kvReads: 0, kvWrites: 0 });
  });
});
