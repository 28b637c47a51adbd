import { and, asc, eq, gt, sql, type SQL } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { ReadDb } from "../db/authz";
import type { Db } from "../db/client";
import { outer } from "../db/schema/columns";
import { identityProviderConfigs, roles, scimGroupMembers, scimGroups, scimUsers } from "../db/schema";
import { commit, type SelectedEntries } from "../audit/record";
import { isUniqueViolation } from "../lib/errors";
import { isId, newId } from "../lib/ids";
import { isBuiltInRole } from "../lib/permissions";
import { ScimError } from "./errors";
import { memberRoleRecomputation } from "./users.service";
import { metaAttrs, scimLocation, scimMeta, type Paging } from "./resource";
import type { AttrSpec } from "./filter";
import type { ScimCtx, ScimDirectory, ScimScope } from "./route";
import { GROUP_ROLE_SCHEMA, GROUP_SCHEMA, MAX_MEMBERS_PER_REQUEST, type GroupInput } from "./groups.schemas";

/**
 * SCIM Groups of one identity provider config (RFC 7643 §4.2), and the organization role a group
 * may map to.
 *
 * Membership writes never read the group's member list: adds are `insert … select … on conflict
 * do nothing` restricted to this config's users, removals are keyed deletes, and member_count
 * moves by `changes()` of the statement before it in the same batch, so concurrent PATCHes on one
 * group commute and the count stays exact. Every statement of a write carries the same gate
 * (the group exists, at the If-Match version when one was sent); the version bump comes last so
 * the gate holds through the batch.
 *
 * Role mapping: a SCIM-managed member's role is the mapped role of their earliest-created mapped
 * group of this config, else `user` (users.service `memberRoleRecomputation`). It is recomputed,
 * in the same batch as the membership change, for the members the change can affect, each
 * recomputation preceded by the member.role_changed entries of the members it will change.
 */

export type GroupRow = typeof scimGroups.$inferSelect;
export interface MemberUser {
  id: string;
  displayName: string | null;
  userName: string;
}

/** Roles a group may map to besides the organization's custom roles: `service_account` is for service accounts only. */
const MAPPABLE_BUILT_INS = new Set(["admin", "user"]);

const json = (ids: readonly string[]) => JSON.stringify(ids);
const idsIn = (ids: readonly string[]) => sql`(select value from json_each(${json(ids)}))`;

// ---- Loads (read in the seam's batch, through dir.configId) ----------------------------------

export function groupQuery(db: ReadDb, dir: ScimScope, id: string) {
  // A malformed id reads nothing (and answers 404).
  return db
    .select()
    .from(scimGroups)
    .where(and(eq(scimGroups.configId, dir.configId), eq(scimGroups.id, isId("scimGroup", id) ? id : "")))
    .limit(1);
}

/** Every member of the group with what `display` needs; the cost of a GET grows with the group (document it). */
export function groupMembersQuery(db: ReadDb, dir: ScimScope, groupIds: SQL | string) {
  const target = typeof groupIds === "string" ? sql`= (select g.id from scim_groups g where g.id = ${groupIds} and g.config_id = ${dir.configId})` : groupIds;
  return db
    .select({ groupId: scimGroupMembers.groupId, id: scimGroupMembers.scimUserId, displayName: scimUsers.displayName, userName: scimUsers.userName })
    .from(scimGroupMembers)
    .innerJoin(scimUsers, eq(scimUsers.id, scimGroupMembers.scimUserId))
    .where(and(sql`${scimGroupMembers.groupId} ${target}`, eq(scimUsers.configId, dir.configId)))
    .orderBy(asc(scimGroupMembers.groupId), asc(scimGroupMembers.scimUserId));
}

/** Which of the named ids are users of THIS config (ids of other configs or malformed ids are not). */
export function knownUsersQuery(db: ReadDb, dir: ScimScope, ids: readonly string[]) {
  return db
    .select({ id: scimUsers.id, displayName: scimUsers.displayName, userName: scimUsers.userName })
    .from(scimUsers)
    .where(and(eq(scimUsers.configId, dir.configId), sql`${scimUsers.id} in ${idsIn(ids.filter((v) => isId("scimUser", v)))}`));
}

/** The custom role of this organization with that name, if any (built-in names are judged in code). */
export function customRoleQuery(db: ReadDb, dir: ScimScope, name: string) {
  return db
    .select({ name: roles.name })
    .from(roles)
    .where(and(eq(roles.organizationId, sql`(select c.organization_id from identity_provider_configs c where c.id = ${dir.configId})`), eq(roles.name, name)))
    .limit(1);
}

/** Attributes a Groups filter may name. */
export function groupFilterAttrs(): Record<string, AttrSpec> {
  return {
    id: { type: "string", column: scimGroups.id, caseExact: true },
    // caseExact false (RFC 7643 §4.2): display_name_key holds the lower-cased name, so its index serves `eq`.
    displayname: { type: "string", column: scimGroups.displayNameKey, folded: true },
    externalid: { type: "string", column: scimGroups.externalId, caseExact: true },
    members: {
      type: "string",
      multi: {
        exists: (cond) => sql`exists (select 1 from scim_group_members scim_el where scim_el.group_id = ${outer(scimGroups.id)} and ${cond})`,
        sub: { value: { type: "string", column: sql`scim_el.scim_user_id`, caseExact: true } },
      },
    },
    ...metaAttrs(scimGroups.createdAt, scimGroups.updatedAt),
  };
}

/** A page of groups in id order (positional paging on the (config_id, id) index). */
/** A page in id order: after `after` (the previous page's last id, resource.ts listCursor) when known, else by OFFSET. */
export function groupPageQuery(db: ReadDb, dir: ScimScope, where: SQL | undefined, paging: Paging, after: string | null = null) {
  const page = db
    .select()
    .from(scimGroups)
    .where(and(eq(scimGroups.configId, dir.configId), where, after === null ? undefined : gt(scimGroups.id, after)))
    .orderBy(asc(scimGroups.configId), asc(scimGroups.id))
    .limit(paging.count);
  return after === null ? page.offset(paging.offset) : page;
}

/** The directory's scim_group_count, right after the statement that inserted or deleted its row (`changes() = 1`: only if it wrote). */
export function groupCountStep(db: Db, dir: ScimDirectory, delta: 1 | -1) {
  return db
    .update(identityProviderConfigs)
    .set({ scimGroupCount: sql`${identityProviderConfigs.scimGroupCount} + ${delta}` })
    .where(and(eq(identityProviderConfigs.id, dir.configId), sql`changes() = 1`));
}

// ---- Resource ------------------------------------------------------------------------------

export function groupResource(ctx: Pick<ScimCtx, "config">, row: GroupRow, memberList: readonly MemberUser[] | undefined) {
  return {
    schemas: row.role === null ? [GROUP_SCHEMA] : [GROUP_SCHEMA, GROUP_ROLE_SCHEMA],
    id: row.id,
    displayName: row.displayName,
    ...(row.externalId !== null ? { externalId: row.externalId } : {}),
    ...(memberList
      ? {
          members: memberList.map((m) => ({
            value: m.id,
            display: m.displayName ?? m.userName,
            $ref: scimLocation(ctx.config, "User", m.id),
            type: "User" as const,
          })),
        }
      : {}),
    ...(row.role !== null ? { [GROUP_ROLE_SCHEMA]: { role: row.role } } : {}),
    meta: scimMeta("Group", row.id, row.createdAt, row.updatedAt, row.version, ctx.config),
  };
}

/** Whether a response projected by attributes/excludedAttributes shows members (so whether to read them). */
export function wantsMembers(query: { attributes?: string; excludedAttributes?: string }, byDefault = true): boolean {
  const names = (v?: string) =>
    (v ?? "").split(",").map((s) =>
      s
        .trim()
        .toLowerCase()
        .replace(/^urn:ietf:params:scim:schemas:core:2\.0:group:/, ""),
    );
  const hits = (v?: string) => names(v).some((n) => n === "members" || n.startsWith("members."));
  if (query.attributes?.trim()) return hits(query.attributes);
  if (query.excludedAttributes?.trim()) return !names(query.excludedAttributes).includes("members") && byDefault;
  return byDefault;
}

// ---- Judging input ---------------------------------------------------------------------------

/** Distinct member ids of a request, in order. */
export const memberIds = (list: readonly { value: string }[] | undefined) => [...new Set((list ?? []).map((m) => m.value))];

/** RFC 7644 has no rule for unknown members; we refuse them (400 invalidValue) rather than drop them silently. */
export function assertKnownMembers(ids: readonly string[], known: readonly MemberUser[]) {
  const found = new Set(known.map((k) => k.id));
  const missing = ids.filter((id) => !found.has(id));
  if (missing.length > 0) {
    const shown = missing.slice(0, 10).map((m) => JSON.stringify(m.slice(0, 64)));
    throw new ScimError(
      400,
      `No user of this directory has the id ${shown.join(", ")}${missing.length > 10 ? ` (and ${missing.length - 10} more)` : ""}.`,
      "invalidValue",
    );
  }
}

export function assertMappableRole(role: string | null | undefined, custom: readonly { name: string }[] | undefined) {
  if (role === null || role === undefined) return;
  if (MAPPABLE_BUILT_INS.has(role) || (!isBuiltInRole(role) && custom?.some((r) => r.name === role))) return;
  throw new ScimError(
    400,
    `The organization has no role ${JSON.stringify(role.slice(0, 100))} a group can map to (admin, user or a custom role).`,
    "invalidValue",
  );
}

const nameTaken = (name: string) => new ScimError(409, `A group named ${JSON.stringify(name)} already exists in this directory.`, "uniqueness");

/** The If-Match version to hold the write to (the loaded one, once checkIfMatch let it through), or null without one. */
export function ifMatchVersion(header: string | undefined, loaded: GroupRow): number | null {
  if (!header?.trim()) return null;
  if (header.split(",").some((t) => t.trim() === "*")) return null;
  return loaded.version;
}

// ---- Role mapping ----------------------------------------------------------------------------

/**
 * Role recomputation is users.service's `memberRoleRecomputation` (one rule for Users and Groups):
 * a SCIM-managed member gets the mapped role of their earliest-created mapped group, else `user`,
 * never demoting the organization's last admin. Here: which members to hand it.
 */
const membersOfGroup = (groupId: string) => sql`select gm.scim_user_id from scim_group_members gm where gm.group_id = ${groupId}`;

/**
 * Members who just left a mapped group can no longer be found through it; the only ones whose
 * role it set hold its role now, so those are recomputed (SCIM-managed members of this config
 * holding the group's current role: few for `admin`, up to the directory for a role most hold).
 */
const holdersOfGroupRole = (dir: ScimDirectory, groupId: string) =>
  sql`select su.id from members m join scim_users su on su.config_id = ${dir.configId} and su.user_id = m.member_id
      where m.organization_id = ${dir.organizationId} and m.role = (select g.role from scim_groups g where g.id = ${groupId}) and m.scim_config_id = ${dir.configId}`;

// ---- Writes ------------------------------------------------------------------------------------

/**
 * The statements of one change to one group, in order. `gate` is true while the group exists
 * (at the If-Match version when one was sent); every statement carries it, so a group deleted or
 * changed under an If-Match makes the whole batch a no-op, detected by the final bump's RETURNING.
 */
class GroupWrite {
  readonly stmts: BatchItem<"sqlite">[] = [];
  /** Users whose membership this request may have changed: their roles are recomputed at the end. */
  readonly touched = new Set<string>();
  /** One member.role_changed per member a recomputation changes, written right before it (commit's entriesFrom). */
  readonly roleChanges: SelectedEntries[] = [];
  private readonly gate: SQL;
  private roleAsserted = false;

  constructor(
    private readonly db: Db,
    private readonly dir: ScimDirectory,
    readonly groupId: string,
    private readonly version: number | null,
    private readonly now: number,
  ) {
    const atVersion = version === null ? sql`` : sql` and gate.version = ${version}`;
    this.gate = sql`exists (select 1 from scim_groups gate where gate.id = ${groupId}${atVersion})`;
  }

  private count(sign: "+" | "-") {
    this.stmts.push(
      this.db
        .update(scimGroups)
        .set({ memberCount: sql`member_count ${sql.raw(sign)} changes()` })
        .where(eq(scimGroups.id, this.groupId)),
    );
  }

  add(ids: readonly string[]) {
    if (ids.length === 0) return;
    ids.forEach((id) => this.touched.add(id));
    // Only users of this config, whatever ids the request named.
    this.stmts.push(
      this.db
        .insert(scimGroupMembers)
        .select(
          sql`select ${this.groupId} as group_id, su.id as scim_user_id, ${this.now} as added_at from scim_users su
          where su.config_id = ${this.dir.configId} and su.id in ${idsIn(ids)} and ${this.gate}`,
        )
        .onConflictDoNothing(),
    );
    this.count("+");
  }

  remove(ids: readonly string[]) {
    if (ids.length === 0) return;
    ids.forEach((id) => this.touched.add(id));
    this.stmts.push(this.db.delete(scimGroupMembers).where(sql`group_id = ${this.groupId} and scim_user_id in ${idsIn(ids)} and ${this.gate}`));
    this.count("-");
  }

  /**
   * Everyone not in `keep` leaves (everyone, without `keep`); their roles are recomputed through
   * holdersOfGroupRole, which reads nothing when the group is unmapped.
   */
  removeAllBut(keep?: readonly string[]) {
    this.stmts.push(
      this.db.delete(scimGroupMembers).where(sql`group_id = ${this.groupId}${keep ? sql` and scim_user_id not in ${idsIn(keep)}` : sql``} and ${this.gate}`),
    );
    this.count("-");
    // Before set(): the group's role is still the one the leavers got from it.
    this.recompute(holdersOfGroupRole(this.dir, this.groupId));
  }

  /** The roles of these SCIM users from their groups now, with an entry per member whose role changes. */
  recompute(scimUserIds: string[] | SQL) {
    const step = memberRoleRecomputation(this.db, this.dir, scimUserIds);
    if (!step) return;
    this.roleChanges.push({ before: this.stmts.length, action: "member.role_changed", event: "member.role_changed", rows: step.changed });
    this.stmts.push(step.update);
  }

  replace(ids: readonly string[]) {
    this.removeAllBut(ids);
    this.add(ids);
  }

  /** A PATCH's member steps as their net effect: a fixed number of statements however many operations the request has. */
  members(net: NetMembers) {
    net.touched.forEach((id) => this.touched.add(id));
    if (net.clear) this.replace(net.add);
    else {
      this.remove(net.remove);
      this.add(net.add);
    }
  }

  /**
   * displayName / externalId / role. A role that is sent recomputes every member's role (bounded
   * by the group's size) even when it equals the loaded one: a concurrent change may have moved it.
   */
  set(fields: { displayName?: string; externalId?: string | null; role?: string | null }) {
    const patch: Record<string, unknown> = {};
    if (fields.displayName !== undefined) {
      patch.displayName = fields.displayName;
      patch.displayNameKey = fields.displayName.toLowerCase();
    }
    if (fields.externalId !== undefined) patch.externalId = fields.externalId;
    if (fields.role !== undefined) patch.role = fields.role;
    if (Object.keys(patch).length === 0) return;
    this.stmts.push(
      this.db
        .update(scimGroups)
        .set(patch)
        .where(and(eq(scimGroups.id, this.groupId), this.gate)),
    );
    if (fields.role !== undefined) this.roleAsserted = true;
  }

  /** The role recomputation and the version bump, whose RETURNING tells whether the gate held. */
  finish() {
    // Statements of a write whose gate failed changed nothing, so recomputing is harmless then.
    if (this.roleAsserted) this.recompute(membersOfGroup(this.groupId));
    if (this.touched.size > 0) this.recompute([...this.touched]);
    const atVersion = this.version === null ? undefined : eq(scimGroups.version, this.version);
    const bump = this.db
      .update(scimGroups)
      .set({ version: sql`${scimGroups.version} + 1`, updatedAt: this.now })
      .where(and(eq(scimGroups.id, this.groupId), atVersion))
      .returning();
    this.stmts.push(bump);
    return this.stmts.length - 1;
  }
}

/**
 * Runs a PUT or PATCH with its scim.group.updated entry, written right after the version bump and
 * only if the bump changed the row (the gate held).
 */
async function runWrite(
  ctx: ScimCtx,
  write: GroupWrite,
  entry: { group: GroupEventSource; changes: string[] },
  displayName?: string,
): Promise<GroupRow | undefined> {
  const last = write.finish();
  try {
    const results = (await commit(ctx, write.stmts as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]], {
      organizationId: ctx.dir.organizationId,
      onlyIf: sql`changes() = 1`,
      entriesFrom: write.roleChanges,
      entries: [
        {
          action: "scim.group.updated",
          target: groupTarget(write.groupId),
          changes: entry.changes,
          event: { type: "scim.group.updated", data: groupEvent(ctx.dir, entry.group) },
        },
      ],
    })) as unknown[];
    return (results[last] as GroupRow[])[0];
  } catch (err) {
    if (isUniqueViolation(err, "scim_groups.config_id, scim_groups.display_name_key")) throw nameTaken(displayName ?? "");
    throw err;
  }
}

type GroupEventSource = Pick<GroupRow, "id" | "displayName" | "externalId" | "role">;

/**
 * What a scim.group.* event carries: the group without its members (a group may have thousands;
 * a receiver reads them through /scim/v2). The role changes it causes are member.role_changed
 * entries and events of their own, one per member.
 */
function groupEvent(dir: ScimDirectory, g: GroupEventSource) {
  return {
    id: g.id,
    display_name: g.displayName,
    external_id: g.externalId,
    role: g.role,
    organization_id: dir.organizationId,
    identity_provider_config_id: dir.configId,
  };
}

const groupTarget = (id: string) => ({ type: "scim_group", id });

/** The attributes a PUT or PATCH sets to another value than the loaded one, and `members` when it names members. */
function changedGroupFields(current: GroupRow, fields: GroupPatchPlan["fields"], members: boolean): string[] {
  const out: string[] = [];
  if (fields.displayName !== undefined && fields.displayName !== current.displayName) out.push("displayName");
  if (fields.externalId !== undefined && fields.externalId !== current.externalId) out.push("externalId");
  if (fields.role !== undefined && fields.role !== current.role) out.push("role");
  if (members) out.push("members");
  return out;
}

const afterFields = (current: GroupRow, fields: GroupPatchPlan["fields"]): GroupEventSource => ({
  id: current.id,
  displayName: fields.displayName ?? current.displayName,
  externalId: fields.externalId === undefined ? current.externalId : fields.externalId,
  role: fields.role === undefined ? current.role : fields.role,
});

/** A write whose gate did not hold: the group is gone (404) or changed under the If-Match (412). */
async function gateFailed(ctx: ScimCtx, id: string, version: number | null): Promise<never> {
  const still = await ctx.db
    .select({ version: scimGroups.version })
    .from(scimGroups)
    .where(and(eq(scimGroups.configId, ctx.dir.configId), eq(scimGroups.id, id)))
    .limit(1);
  if (still[0] && version !== null) throw new ScimError(412, `The group has changed: its version is W/"${still[0].version}".`);
  throw notFoundGroup();
}

export const notFoundGroup = () => new ScimError(404, "No such group in this directory.");

export async function createGroup(ctx: ScimCtx, input: GroupInput, known: MemberUser[], customRole: { name: string }[] | undefined) {
  const ids = memberIds(input.members);
  assertKnownMembers(ids, known);
  const role = input[GROUP_ROLE_SCHEMA]?.role ?? null;
  assertMappableRole(role, customRole);
  const now = Date.now();
  const row: GroupRow = {
    id: newId("scimGroup", now),
    configId: ctx.dir.configId,
    organizationId: ctx.dir.organizationId,
    displayName: input.displayName,
    displayNameKey: input.displayName.toLowerCase(),
    externalId: input.externalId ?? null,
    role,
    memberCount: 0,
    version: 1,
    createdAt: now,
    updatedAt: now,
  };
  const db = ctx.db;
  const stmts: BatchItem<"sqlite">[] = [db.insert(scimGroups).values(row), groupCountStep(db, ctx.dir, 1)];
  const roleChanges: SelectedEntries[] = [];
  if (ids.length > 0) {
    const write = new GroupWrite(db, ctx.dir, row.id, null, now);
    write.add(ids);
    if (role !== null) write.recompute(ids);
    roleChanges.push(...write.roleChanges.map((e) => ({ ...e, before: e.before + stmts.length })));
    stmts.push(...write.stmts);
  }
  try {
    await commit(ctx, stmts as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]], {
      organizationId: ctx.dir.organizationId,
      entriesFrom: roleChanges,
      entries: [
        {
          action: "scim.group.created",
          target: groupTarget(row.id),
          changes: ids.length > 0 ? ["members"] : undefined,
          event: { type: "scim.group.created", data: groupEvent(ctx.dir, row) },
        },
      ],
    });
  } catch (err) {
    if (isUniqueViolation(err, "scim_groups.config_id, scim_groups.display_name_key")) throw nameTaken(input.displayName);
    throw err;
  }
  ctx.note(`created group ${row.displayName.slice(0, 80)} (${ids.length} members${role ? `, role ${role}` : ""})`);
  const byId = new Map(known.map((k) => [k.id, k]));
  return groupResource(
    ctx,
    { ...row, memberCount: ids.length },
    ids.map((id) => byId.get(id)!),
  );
}

/** PUT: the sent attributes replace the stored ones; omitted externalId, members or role extension are left as they are. */
export async function replaceGroup(
  ctx: ScimCtx,
  current: GroupRow,
  input: GroupInput,
  loaded: { known: MemberUser[]; customRole?: { name: string }[]; members?: MemberUser[] },
  version: number | null,
) {
  const ids = input.members === undefined ? undefined : memberIds(input.members);
  if (ids) assertKnownMembers(ids, loaded.known);
  const roleExt = input[GROUP_ROLE_SCHEMA];
  if (roleExt?.role !== undefined) assertMappableRole(roleExt.role, loaded.customRole);
  const write = new GroupWrite(ctx.db, ctx.dir, current.id, version, Date.now());
  const fields = { displayName: input.displayName, externalId: input.externalId, role: roleExt ? (roleExt.role ?? null) : undefined };
  // Members first: the leavers' roles are recomputed while the group still has the role they got from it.
  if (ids) write.replace(ids);
  write.set(fields);
  const row = await runWrite(
    ctx,
    write,
    { group: afterFields(current, fields), changes: changedGroupFields(current, fields, ids !== undefined) },
    input.displayName,
  );
  if (!row) return gateFailed(ctx, current.id, version);
  ctx.note(`replaced group ${row.displayName.slice(0, 80)}${ids ? ` (${ids.length} members)` : ""}`);
  const byId = new Map(loaded.known.map((k) => [k.id, k]));
  return groupResource(ctx, row, ids ? ids.map((id) => byId.get(id)!) : loaded.members);
}

/**
 * DELETE: everyone leaves (as a PATCH removing all members would: roles recomputed for the
 * holders of the group's role, nothing for an unmapped group), then the group goes, all in one
 * batch gated by the If-Match version.
 */
export async function deleteGroup(ctx: ScimCtx, current: GroupRow, version: number | null) {
  const db = ctx.db;
  const write = new GroupWrite(db, ctx.dir, current.id, version, Date.now());
  write.removeAllBut();
  const where = and(eq(scimGroups.id, current.id), eq(scimGroups.configId, ctx.dir.configId), version === null ? undefined : eq(scimGroups.version, version));
  const stmts = [...write.stmts, db.delete(scimGroups).where(where).returning({ id: scimGroups.id }), groupCountStep(db, ctx.dir, -1)];
  // Last: the count step changed a row exactly when the group was deleted.
  const results = (await commit(ctx, stmts as [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]], {
    organizationId: ctx.dir.organizationId,
    onlyIf: sql`changes() = 1`,
    entriesFrom: write.roleChanges,
    entries: [{ action: "scim.group.deleted", target: groupTarget(current.id), event: { type: "scim.group.deleted", data: groupEvent(ctx.dir, current) } }],
  })) as unknown[];
  if ((results[results.length - 2] as unknown[]).length === 0) return gateFailed(ctx, current.id, version);
  ctx.note(`deleted group ${current.displayName.slice(0, 80)} (${current.memberCount} members)`);
}

// ---- PATCH (RFC 7644 §3.5.2) -------------------------------------------------------------------

type Step = { kind: "add" | "remove" | "replace"; ids: string[] } | { kind: "removeAll" };

/** Where a PATCH's member steps leave the group: `clear` (a removeAll or replace came), then who is in or out. */
export interface NetMembers {
  clear: boolean;
  add: string[];
  /** Removals to run; none after a clear (everyone not added leaves anyway). */
  remove: string[];
  /** Every id a step named: their roles are recomputed. */
  touched: string[];
}

/**
 * The net effect of the steps in order: the last step naming an id decides whether it is in or
 * out, and a removeAll or replace drops what came before it. Never reading the group, this is
 * what the steps one by one would leave, in at most four membership statements (D1 counts every
 * statement of a batch, and a PATCH may carry 100 operations).
 */
export function netMembers(steps: readonly Step[]): NetMembers {
  let clear = false;
  const state = new Map<string, boolean>();
  const touched = new Set<string>();
  for (const step of steps) {
    if (step.kind === "removeAll" || step.kind === "replace") {
      clear = true;
      state.clear();
    }
    if (step.kind === "removeAll") continue;
    for (const id of step.ids) {
      touched.add(id);
      state.set(id, step.kind !== "remove");
    }
  }
  const pick = (inGroup: boolean) => [...state].filter(([, v]) => v === inGroup).map(([id]) => id);
  return { clear, add: pick(true), remove: clear ? [] : pick(false), touched: [...touched] };
}

export interface GroupPatchPlan {
  steps: Step[];
  fields: { displayName?: string; externalId?: string | null; role?: string | null };
  /** Ids the request adds: each must be a user of this directory. */
  adds: string[];
}

const CORE_PREFIX = /^urn:ietf:params:scim:schemas:core:2\.0:group:/i;
const ROLE_URN = GROUP_ROLE_SCHEMA.toLowerCase();
const CONTROL = /[\u0000-\u001f\u007f-\u009f\u2028\u2029]/;
const MEMBER_FILTER = /^members\s*\[(.*)\]$/is;
const VALUE_EQ = /^\s*value\s+eq\s+"((?:[^"\\]|\\.)*)"\s*$/i;

const invalidPath = (detail: string) => new ScimError(400, detail, "invalidPath");
const invalidValue = (detail: string) => new ScimError(400, detail, "invalidValue");

/** `members[value eq "a"]`, also `members[value eq "a" or value eq "b"]`: the ids it names. */
function memberFilterIds(inner: string): string[] {
  const parts = inner.split(/\s+or\s+/i);
  return parts.map((p) => {
    const m = VALUE_EQ.exec(p);
    if (!m) throw new ScimError(400, `Only members[value eq "<id>"] (joined by or) can select members, not members[${inner.slice(0, 100)}].`, "invalidFilter");
    return JSON.parse(`"${m[1]}"`) as string;
  });
}

/** Member values as IdPs send them: an array of `{value}` (or one object, or bare id strings). */
function memberValues(value: unknown, what: string): string[] {
  const list = Array.isArray(value) ? value : value === undefined || value === null ? [] : [value];
  return list.map((item) => {
    const v =
      typeof item === "string" ? item : item && typeof item === "object" ? Object.entries(item).find(([k]) => k.toLowerCase() === "value")?.[1] : undefined;
    if (typeof v !== "string" || !v.trim()) throw invalidValue(`${what}: each member needs a string "value" (a user id).`);
    return v.trim();
  });
}

function displayNameOf(value: unknown): string {
  if (typeof value !== "string" || !value.trim() || value.trim().length > 256 || CONTROL.test(value)) {
    throw invalidValue("displayName must be a non-empty single line of at most 256 characters.");
  }
  return value.trim();
}

function externalIdOf(value: unknown): string | null {
  if (value === null || value === undefined) return null;
  if (typeof value !== "string" || value.trim().length > 256 || CONTROL.test(value))
    throw invalidValue("externalId must be a single line of at most 256 characters, or null.");
  return value.trim() || null;
}

function roleOf(value: unknown): string | null {
  if (value === null || value === undefined || value === "") return null;
  if (typeof value !== "string" || value.length > 100) throw invalidValue("role must be the name of a role of this organization, or null.");
  return value.trim() || null;
}

/** Reads an operation's target the way IdPs write it: attribute names in any case, with or without the core schema URN. */
function targetOf(path: string): { attr: "displayname" | "externalid" | "members" | "role" | "extension" | "id"; ids?: string[] } {
  const p = path.trim().replace(CORE_PREFIX, "");
  const lower = p.toLowerCase();
  if (lower === ROLE_URN) return { attr: "extension" };
  if (lower === `${ROLE_URN}:role`) return { attr: "role" };
  if (lower === "displayname" || lower === "externalid" || lower === "members" || lower === "id") return { attr: lower };
  const filter = MEMBER_FILTER.exec(p);
  if (filter) return { attr: "members", ids: memberFilterIds(filter[1]!) };
  throw invalidPath(`A group has no attribute ${JSON.stringify(path.slice(0, 200))} to patch (displayName, externalId, members, ${GROUP_ROLE_SCHEMA}:role).`);
}

/**
 * Turns the operations into an ordered plan. Removing members that are not in the group is not
 * an error (IdPs retry removals); adding users that are not in this directory is (400).
 */
export function planGroupPatch(operations: readonly { op: "add" | "remove" | "replace"; path?: string; value?: unknown }[], groupId: string): GroupPatchPlan {
  const plan: GroupPatchPlan = { steps: [], fields: {}, adds: [] };
  let memberValuesSeen = 0;
  const members = (op: "add" | "remove" | "replace", ids: string[] | undefined, value: unknown) => {
    if (ids) {
      if (op !== "remove") throw invalidPath(`members[value eq …] selects members to remove; to ${op} members use path "members".`);
      plan.steps.push({ kind: "remove", ids });
      memberValuesSeen += ids.length;
      return;
    }
    if (op === "remove" && (value === undefined || value === null)) {
      plan.steps.push({ kind: "removeAll" });
      return;
    }
    const list = [...new Set(memberValues(value, `${op} members`))];
    memberValuesSeen += list.length;
    plan.steps.push({ kind: op, ids: list });
    if (op !== "remove") plan.adds.push(...list);
  };
  const scalar = (op: "add" | "remove" | "replace", attr: string, value: unknown) => {
    switch (attr) {
      case "displayname":
        if (op === "remove") throw new ScimError(400, "displayName is required and cannot be removed.", "mutability");
        plan.fields.displayName = displayNameOf(value);
        return;
      case "externalid":
        plan.fields.externalId = op === "remove" ? null : externalIdOf(value);
        return;
      case "role":
        plan.fields.role = op === "remove" ? null : roleOf(value);
        return;
      case "extension": {
        if (op === "remove") plan.fields.role = null;
        else if (value && typeof value === "object" && !Array.isArray(value)) {
          const role = Object.entries(value).find(([k]) => k.toLowerCase() === "role");
          if (role) plan.fields.role = roleOf(role[1]);
        } else throw invalidValue(`${GROUP_ROLE_SCHEMA} takes an object {"role": …}.`);
        return;
      }
      case "id":
        // Entra sends the id back in path-less replaces; it is immutable, so only the same value passes.
        if (op !== "remove" && value === groupId) return;
        throw new ScimError(400, "id is read-only.", "mutability");
    }
  };
  for (const operation of operations) {
    const { op, path, value } = operation;
    if (path) {
      const target = targetOf(path);
      if (target.attr === "members") members(op, target.ids, value);
      else scalar(op, target.attr, value);
      continue;
    }
    if (op === "remove") throw new ScimError(400, "A remove operation needs a path.", "noTarget");
    if (!value || typeof value !== "object" || Array.isArray(value)) throw invalidValue(`An ${op} without a path takes an object of attributes as its value.`);
    for (const [key, v] of Object.entries(value)) {
      const lower = key.toLowerCase().replace(CORE_PREFIX, "");
      if (lower === "schemas" || lower === "meta") continue;
      const target = targetOf(key);
      if (target.attr === "members" && !target.ids) members(op, undefined, v);
      else scalar(op, target.attr, v);
    }
  }
  if (memberValuesSeen > MAX_MEMBERS_PER_REQUEST)
    throw invalidValue(`One request may name at most ${MAX_MEMBERS_PER_REQUEST} members; send several PATCH requests.`);
  return plan;
}

/** Plans a PATCH for the load, where nothing may throw before the token is judged. */
export function tryPlanGroupPatch(operations: Parameters<typeof planGroupPatch>[0], groupId: string): GroupPatchPlan | undefined {
  try {
    return planGroupPatch(operations, groupId);
  } catch {
    return undefined;
  }
}

export async function patchGroup(
  ctx: ScimCtx,
  current: GroupRow,
  plan: GroupPatchPlan,
  loaded: { known: MemberUser[]; customRole?: { name: string }[] },
  version: number | null,
) {
  assertKnownMembers([...new Set(plan.adds)], loaded.known);
  if (plan.fields.role !== undefined) assertMappableRole(plan.fields.role, loaded.customRole);
  const write = new GroupWrite(ctx.db, ctx.dir, current.id, version, Date.now());
  if (plan.steps.length > 0) write.members(netMembers(plan.steps));
  write.set(plan.fields);
  const row = await runWrite(
    ctx,
    write,
    { group: afterFields(current, plan.fields), changes: changedGroupFields(current, plan.fields, plan.steps.length > 0) },
    plan.fields.displayName,
  );
  if (!row) return gateFailed(ctx, current.id, version);
  const added = plan.steps.reduce((n, s) => n + (s.kind === "add" || s.kind === "replace" ? s.ids.length : 0), 0);
  const removed = plan.steps.reduce((n, s) => n + (s.kind === "remove" ? s.ids.length : 0), 0);
  ctx.note(`patched group ${row.displayName.slice(0, 80)} (+${added} -${removed}${plan.steps.some((s) => s.kind === "removeAll") ? " -all" : ""} members)`);
  return row;
}
