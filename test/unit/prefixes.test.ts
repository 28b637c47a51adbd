/// <reference types="vite/client" />
import { describe, expect, it } from "vitest";
import { newSecret } from "../../src/lib/crypto";
import * as ids from "../../src/lib/ids";
import { hasSecretPrefix, ID_PREFIXES, idKindOf, LEGACY_SECRET_PREFIXES, newId, SECRET_PREFIXES, type IdKind, type SecretKind } from "../../src/lib/ids";
import { WEBHOOK_SECRET_PREFIX } from "../../src/queue/webhook-signing";

/**
 * A value's prefix says whether it is a credential or a record's id: invitation ids and tokens
 * were both `inv_…` (a preview with the id was a puzzling 404) and a service account key's row id
 * was `sak_…` like the key. These tests keep every prefix in one registry and the two sets apart.
 */
const sources = import.meta.glob("../../src/**/*.{ts,tsx}", { query: "?raw", import: "default", eager: true }) as Record<string, string>;

const idPrefixes = Object.values(ID_PREFIXES) as string[];
const secretPrefixes = Object.values(SECRET_PREFIXES) as string[];
const legacyPrefixes = Object.values(LEGACY_SECRET_PREFIXES).flat() as string[];
/** Ids minted outside ID_PREFIXES: the request id (src/middleware/request-context.ts). */
const otherIdPrefixes = ["req"];

const lineOf = (source: string, index: number) => source.slice(0, index).split("\n").length;

describe("id and secret prefixes", () => {
  it("no secret prefix equals, or starts, an id prefix", () => {
    for (const secret of secretPrefixes) {
      for (const id of [...idPrefixes, ...otherIdPrefixes]) {
        expect(`${id}_`.startsWith(`${secret}_`) || `${secret}_`.startsWith(`${id}_`), `secret ${secret}_ vs id ${id}_`).toBe(false);
      }
    }
  });

  it("ids and secrets each have prefixes of their own kind alone", () => {
    expect(new Set(idPrefixes).size).toBe(idPrefixes.length);
    expect(new Set(secretPrefixes).size).toBe(secretPrefixes.length);
    for (const p of [...idPrefixes, ...secretPrefixes]) expect(p).toMatch(/^[a-z]+$/);
  });

  it("a legacy prefix is only ever accepted, never minted", () => {
    for (const p of legacyPrefixes) expect(secretPrefixes).not.toContain(p);
  });

  it("the request id's prefix is the one listed here", () => {
    expect(sources["../../src/middleware/request-context.ts"]).toContain("`req_${");
  });

  it("every newSecret call in src mints a registered secret prefix", () => {
    const exported = ids as unknown as Record<string, unknown>;
    const calls: string[] = [];
    for (const [file, source] of Object.entries(sources)) {
      if (file.endsWith("/lib/crypto.ts")) continue;
      for (const m of source.matchAll(/newSecret\(\s*([^,)]+)/g)) {
        const arg = m[1]!.trim();
        const where = `${file}:${lineOf(source, m.index!)} newSecret(${arg})`;
        const literal = /^"([^"]*)"$/.exec(arg)?.[1];
        const registered = /^SECRET_PREFIXES\.(\w+)$/.exec(arg)?.[1];
        const local = /^\w+$/.test(arg) ? new RegExp(`const ${arg}\\s*=\\s*"([^"]*)"`).exec(source)?.[1] : undefined;
        const imported = /^\w+$/.test(arg) ? exported[arg] : undefined;
        const prefix =
          literal ??
          (registered ? (SECRET_PREFIXES as Record<string, string>)[registered] : undefined) ??
          local ??
          (typeof imported === "string" ? imported : undefined);
        expect(prefix, `${where}: pass a SECRET_PREFIXES entry`).toBeDefined();
        expect(secretPrefixes, where).toContain(prefix);
        calls.push(where);
      }
    }
    // Invitations, service accounts, PATs, refresh tokens, verification, SSO codes, SCIM, licenses.
    expect(calls.length).toBeGreaterThanOrEqual(8);
  });

  it("every literal prefix a secret is recognized by is registered", () => {
    for (const [file, source] of Object.entries(sources)) {
      for (const m of source.matchAll(/startsWith\(\s*"([a-z]+)_"\s*\)/g)) {
        expect([...secretPrefixes, ...legacyPrefixes], `${file}:${lineOf(source, m.index!)}`).toContain(m[1]);
      }
    }
  });

  it("webhook signing secrets carry the registered prefix", () => {
    expect(WEBHOOK_SECRET_PREFIX).toBe(`${SECRET_PREFIXES.webhookSigningSecret}_`);
  });
});

describe("telling an id from a secret by its text", () => {
  it("names the kind of every id and of nothing else", () => {
    for (const kind of Object.keys(ID_PREFIXES) as IdKind[]) expect(idKindOf(newId(kind))).toBe(kind);
    for (const kind of Object.keys(SECRET_PREFIXES) as SecretKind[]) expect(idKindOf(newSecret(SECRET_PREFIXES[kind]))).toBeUndefined();
    for (const value of ["", "inv_", "inv_nope", "xyz_01JD6Q5W8ZK3H0V8N6C2Y4T1RB", `${newId("user")}x`, newId("user").toLowerCase()])
      expect(idKindOf(value)).toBeUndefined();
  });

  it("a secret's prefix is recognized, and only a legacy prefix can take an id for a secret", () => {
    for (const kind of Object.keys(SECRET_PREFIXES) as SecretKind[]) {
      expect(hasSecretPrefix(kind, newSecret(SECRET_PREFIXES[kind]))).toBe(true);
      for (const idKind of Object.keys(ID_PREFIXES) as IdKind[]) {
        const legacy = (LEGACY_SECRET_PREFIXES[kind] ?? []).includes(ID_PREFIXES[idKind]);
        expect(hasSecretPrefix(kind, newId(idKind)), `${kind} vs ${idKind}`).toBe(legacy);
      }
    }
    // Which is why the invitation token lookup asks "is this an invitation id?" first.
    expect(hasSecretPrefix("invitationToken", `inv_${"A".repeat(43)}`)).toBe(true);
    expect(hasSecretPrefix("personalAccessToken", "patx_abc")).toBe(false);
  });
});
