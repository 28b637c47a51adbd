import { and, asc, eq, gt, sql } from "drizzle-orm";
import { outer } from "../../db/schema/columns";
import type { BatchItem } from "drizzle-orm/batch";
import type { OrgScope, ReadDb } from "../../db/authz";
import type { Config, OrgCtx } from "../../env";
import { integrationEnvironments, integrations, organizations, projects } from "../../db/schema";
import { memberIdOf } from "../../lib/actor";
import { encryptString } from "../../lib/crypto";
import { ApiError, notFound, rootMessage } from "../../lib/errors";
import { compileFilter, parseFilter, type FilterField } from "../../lib/filter";
import { isId, newId } from "../../lib/ids";
import { decodePageToken, finishPage } from "../../lib/pagination";
import { MAX_ENVIRONMENTS, serializeIntegration, type IntegrationRow } from "./integrations.schemas";
import { commit, noChange } from "../../audit/record";

/** Binds the sealed secrets to their organization and integration: copied into another row, they do not decrypt. */
export const integrationSecretsAad = (orgId: string, integrationId: string) => `integration-secrets:${orgId}:${integrationId}`;

/**
 * The integration with its environment mapping, read in the same statement through the mapping's
 * primary key (at most MAX_ENVIRONMENTS rows each). The sealed secrets are never selected.
 */
function selectView(db: ReadDb) {
  return db
    .select({
      id: integrations.id,
      kind: integrations.kind,
      displayName: integrations.displayName,
      config: integrations.config,
      secretNames: integrations.secretNames,
      mapping: sql<
        string | null
      >`(select json_group_object(e.environment, e.project_id) from integration_environments e where e.integration_id = ${outer(integrations.id)})`.as(
        "mapping",
      ),
      createdAt: integrations.createdAt,
      updatedAt: integrations.updatedAt,
    })
    .from(integrations);
}

const FILTER: Record<string, FilterField> = {
  // `=` only: it is one range of integrations_org_kind_idx; `!=` or a prefix would walk the organization.
  kind: { kind: "string", column: integrations.kind, ops: ["="] },
};

type ListQuery = { page_size: number; page_token?: string; filter?: string };

const listFingerprint = (orgId: string, q: ListQuery) => `integrations|${orgId}|${q.filter ?? ""}`;

/** A page in creation order, one index range (by kind when filtered): page_size + 1 rows plus their mappings. */
export async function integrationListQuery(db: ReadDb, org: OrgScope, config: Config, q: ListQuery) {
  const where = compileFilter(q.filter ? parseFilter(q.filter) : [], FILTER);
  const after = q.page_token ? String((await decodePageToken(config.hmacSecret, listFingerprint(org.id, q), q.page_token, 1))[0]) : undefined;
  const page = selectView(db)
    .where(and(org.inOrg(integrations.organizationId), where, after ? gt(integrations.id, after) : undefined))
    .orderBy(asc(integrations.id))
    .limit(q.page_size + 1);
  return { page };
}

export async function integrationPage(ctx: OrgCtx, q: ListQuery, rows: IntegrationRow[]) {
  const page = await finishPage(ctx.config.hmacSecret, listFingerprint(ctx.org.id, q), rows, q.page_size, (r) => [r.id]);
  return { items: page.rows.map(serializeIntegration), next_page_token: page.nextPageToken };
}

/** One integration of the organization; nothing to read for a malformed id. */
export function integrationQuery(db: ReadDb, org: OrgScope, id: string) {
  if (!isId("integration", id)) return undefined;
  return selectView(db)
    .where(and(eq(integrations.id, org.guard(id)), eq(integrations.organizationId, org.id)))
    .limit(1);
}

function found(rows: IntegrationRow[] | undefined): IntegrationRow {
  const row = rows?.[0];
  if (!row) throw notFound("integration");
  return row;
}

export const getIntegrationFrom = (rows: IntegrationRow[] | undefined) => serializeIntegration(found(rows));

export async function createIntegration(
  ctx: OrgCtx,
  input: { kind: string; display_name: string; config: Record<string, unknown>; secrets?: Record<string, string> },
) {
  const orgId = ctx.org.id;
  const id = newId("integration");
  const now = Date.now();
  const secrets = input.secrets ?? {};
  const names = Object.keys(secrets);
  // One sealed blob: the secrets are only ever used together, by the integration itself.
  const secretsCiphertext =
    names.length === 0 ? null : await encryptString(ctx.config.encryptionKey, JSON.stringify(secrets), integrationSecretsAad(orgId, id));
  const secretNames = Object.fromEntries(names.map((n) => [n, now]));
  const integration = serializeIntegration({
    id,
    kind: input.kind,
    displayName: input.display_name,
    config: input.config,
    secretNames,
    mapping: null,
    createdAt: now,
    updatedAt: now,
  });
  await commit(
    ctx,
    [
      ctx.db.insert(integrations).values({
        id,
        organizationId: orgId,
        kind: input.kind,
        displayName: input.display_name,
        config: input.config,
        secretsCiphertext,
        secretNames,
        createdBy: memberIdOf(ctx.actor),
        createdAt: now,
        updatedAt: now,
      }),
    ],
    {
      entries: [
        {
          action: "integration.created",
          target: { type: "integration", id },
          changes: ["kind", "display_name", "config", ...names.map((n) => `secrets.${n}`)],
          event: { type: "integration.created", data: integration },
        },
      ],
    },
  );
  return integration;
}

export async function deleteIntegration(ctx: OrgCtx, rows: IntegrationRow[] | undefined) {
  const integration = found(rows);
  // The mapping goes with it (foreign key cascade).
  const [removed] = await commit(
    ctx,
    [
      ctx.db
        .delete(integrations)
        .where(and(eq(integrations.id, integration.id), eq(integrations.organizationId, ctx.org.id)))
        .returning({ id: integrations.id }),
    ],
    {
      onlyIf: sql`changes() = 1`,
      entries: [
        {
          action: "integration.deleted",
          target: { type: "integration", id: integration.id },
          event: { type: "integration.deleted", data: serializeIntegration(integration) },
        },
      ],
    },
  );
  if (removed.length === 0) throw notFound("integration");
}

// ---- Environment mapping ------------------------------------------------------------------------

/**
 * Which of `projectIds` are projects of this organization, read in the authorization batch. One
 * JSON parameter carries the ids: D1 binds at most 100 parameters per statement.
 */
export function mappedProjectsQuery(db: ReadDb, org: OrgScope, mapping: Record<string, string | null>) {
  const ids = [...new Set(Object.values(mapping).filter((v): v is string => v !== null && isId("project", v)))];
  if (ids.length === 0) return undefined;
  return db
    .select({ id: projects.id })
    .from(projects)
    .where(and(org.inOrg(projects.organizationId), sql`${projects.id} in (select value from json_each(${JSON.stringify(ids)}))`));
}

/** 422 naming each environment whose value is not a project of this organization. */
function notProjects(mapping: Record<string, string | null>, existing: Set<string>) {
  const bad = Object.entries(mapping).filter(([, v]) => v !== null && !existing.has(v));
  if (bad.length === 0) return null;
  return new ApiError("unprocessable", "Environment-mapping values must be project ids of this organization.", {
    errors: bad.map(([env, v]) => ({ path: `mapping.${env}`, message: `\`${v}\` is not a project of this organization` })),
  });
}

// Markers of the batch's guards' deliberate SQL errors (SQLite has no RAISE outside triggers).
const PROJECT_VANISHED = "integration_mapping_project_vanished";
const TOO_MANY = "integration_mapping_limit_exceeded";
const failWhen = (condition: ReturnType<typeof sql>, marker: string) => sql`case when ${condition} then json_extract('{}', ${marker}) end`;

/**
 * Merges `mapping` into the integration's: a project id sets its environment, `null` removes it,
 * environments not named are kept. Every write, both guards and the read-back are one batch (one
 * transaction): each row is inserted by `insert … select` from projects of this organization, so
 * a project deleted since the authorization read inserts nothing (and its cascade removes any row
 * it had); the first guard then fails the batch, so a request is applied whole or not at all.
 */
export async function patchEnvironmentMapping(
  ctx: OrgCtx,
  loaded: { integration: IntegrationRow[]; projects: { id: string }[] } | undefined,
  mapping: Record<string, string | null>,
) {
  const current = found(loaded?.integration);
  const invalid = notProjects(mapping, new Set((loaded?.projects ?? []).map((p) => p.id)));
  if (invalid) throw invalid;
  const before: Record<string, string> = current.mapping ? JSON.parse(current.mapping) : {};
  const changed = Object.keys(mapping).filter((env) => (mapping[env] ?? undefined) !== before[env]);
  if (changed.length === 0) {
    noChange(ctx);
    return serializeIntegration(current);
  }
  const db = ctx.db;
  const orgId = ctx.org.id;
  const now = Date.now();
  const toSet = Object.fromEntries(Object.entries(mapping).filter(([, v]) => v !== null)) as Record<string, string>;
  const toRemove = Object.keys(mapping).filter((k) => mapping[k] === null);
  const setCount = Object.keys(toSet).length;
  const writes: BatchItem<"sqlite">[] = [];
  // Removals first, so that a request that removes as many as it adds fits at the limit.
  if (toRemove.length > 0) {
    writes.push(
      db
        .delete(integrationEnvironments)
        .where(
          and(
            eq(integrationEnvironments.integrationId, current.id),
            sql`${integrationEnvironments.environment} in (select value from json_each(${JSON.stringify(toRemove)}))`,
          ),
        ),
    );
  }
  if (setCount > 0) {
    writes.push(
      db
        .insert(integrationEnvironments)
        .select(
          // CROSS JOIN fixes the loop order: each named project is probed by primary key. Left to
          // the planner, it walks the organization's projects and scans the JSON for each.
          sql`select i.id, j.key, p.id, p.organization_id, ${now}
              from json_each(${JSON.stringify(toSet)}) j
              cross join projects p on p.id = j.value and p.organization_id = ${orgId}
              cross join integrations i on i.id = ${current.id} and i.organization_id = ${orgId}
              where true`,
        )
        .onConflictDoUpdate({
          target: [integrationEnvironments.integrationId, integrationEnvironments.environment],
          set: { projectId: sql`excluded.project_id`, createdAt: sql`excluded.created_at` },
        }),
      db
        .select({ failed: failWhen(sql`${countMapped(current.id, toSet)} < ${setCount}`, PROJECT_VANISHED) })
        .from(organizations)
        .where(eq(organizations.id, orgId)),
      db
        .select({
          failed: failWhen(sql`(select count(*) from integration_environments e where e.integration_id = ${current.id}) > ${MAX_ENVIRONMENTS}`, TOO_MANY),
        })
        .from(organizations)
        .where(eq(organizations.id, orgId)),
    );
  }
  writes.push(
    db
      .update(integrations)
      .set({ updatedAt: now })
      .where(and(eq(integrations.id, current.id), eq(integrations.organizationId, orgId))),
  );
  const mappingAfter: Record<string, string> = { ...before, ...toSet };
  for (const env of toRemove) delete mappingAfter[env];
  const data = serializeIntegration({ ...current, mapping: JSON.stringify(mappingAfter), updatedAt: now });
  let results: unknown[];
  try {
    results = await commit(
      ctx,
      [...writes, selectView(db).where(and(eq(integrations.id, current.id), eq(integrations.organizationId, orgId)))] as unknown as [
        BatchItem<"sqlite">,
        ...BatchItem<"sqlite">[],
      ],
      {
        // Right after the integration's own update, which finds nothing if it was deleted meanwhile.
        after: writes.length - 1,
        onlyIf: sql`changes() = 1`,
        entries: [
          {
            action: "integration.updated",
            target: { type: "integration", id: current.id },
            changes: changed.map((env) => `environment_mapping.${env}`),
            event: { type: "integration.updated", data },
          },
        ],
      },
    );
  } catch (err) {
    const message = rootMessage(err);
    if (message.includes(TOO_MANY)) {
      throw new ApiError("validation_failed", `An integration maps at most ${MAX_ENVIRONMENTS} environments.`, {
        errors: [{ path: "mapping", message: `at most ${MAX_ENVIRONMENTS} environments in total; remove some with null values` }],
      });
    }
    if (message.includes(PROJECT_VANISHED)) throw await afterVanished(ctx, current.id, toSet);
    throw err;
  }
  return serializeIntegration(found(results[results.length - 1] as IntegrationRow[]));
}

/** How many of the wanted (environment, project) pairs the integration now holds. */
const countMapped = (integrationId: string, toSet: Record<string, string>) =>
  sql`(select count(*) from json_each(${JSON.stringify(toSet)}) j cross join integration_environments e on e.integration_id = ${integrationId} and e.environment = j.key where e.project_id = j.value)`;

/**
 * A project (or the integration) was deleted between the authorization read and the write, which
 * then rolled back. One more read says which: the answer is the same 422 (or 404) the request
 * would have had a moment later.
 */
async function afterVanished(ctx: OrgCtx, integrationId: string, toSet: Record<string, string>): Promise<ApiError> {
  const db = ctx.db;
  const ids = [...new Set(Object.values(toSet))];
  const [integration, existing] = await db.batch([
    db
      .select({ id: integrations.id })
      .from(integrations)
      .where(and(eq(integrations.id, integrationId), eq(integrations.organizationId, ctx.org.id))),
    db
      .select({ id: projects.id })
      .from(projects)
      .where(and(eq(projects.organizationId, ctx.org.id), sql`${projects.id} in (select value from json_each(${JSON.stringify(ids)}))`)),
  ]);
  if (integration.length === 0) return notFound("integration");
  return notProjects(toSet, new Set(existing.map((p) => p.id))) ?? new ApiError("conflict", "The mapping changed concurrently; retry the request.");
}
