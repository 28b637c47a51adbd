import { afterCommit, auditStatements, commit, noChange } from "../../audit/record";
import { and, asc, eq, sql, type SQL } from "drizzle-orm";
import type { BatchItem } from "drizzle-orm/batch";
import type { OrgScope, ReadDb } from "../../db/authz";
import type { OrgCtx, ServiceCtx } from "../../env";
import { members, organizations, users } from "../../db/schema";
import { ApiError, isUniqueViolation, rootMessage } from "../../lib/errors";
import { compileFilter, parseFilter, type FilterField } from "../../lib/filter";
import { newId } from "../../lib/ids";
import { decodePageToken, finishPage } from "../../lib/pagination";
import { serializeOrganization, type OrganizationJson } from "./organizations.schemas";

export function slugify(name: string): string {
  const s = name
    .normalize("NFKD")
    .replace(/[\u0300-\u036f]/g, "")
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, "-")
    .replace(/^-+|-+$/g, "")
    .slice(0, 56)
    .replace(/-+$/g, "");
  return s || "org";
}

type Statements = [BatchItem<"sqlite">, ...BatchItem<"sqlite">[]];

const randomSuffix = () => Math.random().toString(36).slice(2, 8).padEnd(6, "0");

const orgColumns = {
  id: organizations.id,
  name: organizations.name,
  slug: organizations.slug,
  description: organizations.description,
  logoDataUri: organizations.logoDataUri,
  active: organizations.active,
  ownerId: organizations.ownerId,
  memberCount: organizations.memberCount,
  createdAt: organizations.createdAt,
  updatedAt: organizations.updatedAt,
};

const ownerOf = (r: { ownerId: string | null; ownerName: string | null; ownerEmail: string | null }) =>
  r.ownerId && r.ownerName !== null && r.ownerEmail !== null ? { id: r.ownerId, displayName: r.ownerName, email: r.ownerEmail } : null;

/** The organization with its owner, for an authorized caller (the logo is read only here, not on every request). */
export const organizationQuery = (db: ReadDb, org: OrgScope) =>
  db
    .select({ ...orgColumns, ownerName: users.displayName, ownerEmail: users.email })
    .from(organizations)
    .leftJoin(users, eq(users.id, organizations.ownerId))
    .where(eq(organizations.id, org.guard(org.id)))
    .limit(1);

type OrganizationWithOwner = Awaited<ReturnType<typeof organizationQuery>>[number];

export const serializeOrganizationRow = (r: OrganizationWithOwner) => serializeOrganization(r, ownerOf(r));

export const preferencesQuery = (db: ReadDb, org: OrgScope) =>
  db
    .select({ supportTeamAccess: organizations.supportTeamAccess, ssoAdminBypass: organizations.ssoAdminBypass })
    .from(organizations)
    .where(eq(organizations.id, org.guard(org.id)))
    .limit(1);

export const serializePreferences = (o: { supportTeamAccess: boolean; ssoAdminBypass: boolean }) => ({
  support_team_access: o.supportTeamAccess,
  sso_admin_bypass: o.ssoAdminBypass,
});

type Preferences = { supportTeamAccess: boolean; ssoAdminBypass: boolean };

export async function updatePreferences(ctx: OrgCtx, current: Preferences | undefined, input: { support_team_access?: boolean; sso_admin_bypass?: boolean }) {
  if (!current) throw new ApiError("not_found", "The organization does not exist.");
  const patch: Partial<typeof organizations.$inferInsert> = {};
  const changes: string[] = [];
  if (input.support_team_access !== undefined && input.support_team_access !== current.supportTeamAccess) {
    patch.supportTeamAccess = input.support_team_access;
    changes.push("support_team_access");
  }
  if (input.sso_admin_bypass !== undefined && input.sso_admin_bypass !== current.ssoAdminBypass) {
    patch.ssoAdminBypass = input.sso_admin_bypass;
    changes.push("sso_admin_bypass");
  }
  if (changes.length === 0) {
    noChange(ctx);
    return serializePreferences(current);
  }
  const [rows] = await commit(
    ctx,
    [
      ctx.db
        .update(organizations)
        .set({ ...patch, updatedAt: Date.now() })
        .where(eq(organizations.id, ctx.org.id))
        .returning({ supportTeamAccess: organizations.supportTeamAccess, ssoAdminBypass: organizations.ssoAdminBypass }),
    ],
    { onlyIf: sql`changes() = 1`, entries: [{ action: "organization.preferences_updated", target: { type: "organization", id: ctx.org.id }, changes }] },
  );
  if (!rows[0]) throw new ApiError("not_found", "The organization does not exist.");
  return serializePreferences(rows[0]);
}

export async function createOrganization(
  ctx: ServiceCtx,
  userId: string,
  input: { name: string; slug?: string; description?: string; logo_data_uri?: string },
): Promise<OrganizationJson> {
  const db = ctx.db;
  const [user] = await db.select({ displayName: users.displayName, email: users.email }).from(users).where(eq(users.id, userId)).limit(1);
  if (!user) throw new ApiError("unauthenticated", "The account no longer exists.");
  // A derived slug that collides gets a random suffix; an explicit one is the caller's choice: 409.
  for (let attempt = 0; attempt < 4; attempt++) {
    const slug = input.slug ?? (attempt === 0 ? slugify(input.name) : `${slugify(input.name)}-${randomSuffix()}`);
    const now = Date.now();
    const org = {
      id: newId("organization"),
      name: input.name,
      slug,
      description: input.description ?? null,
      logoDataUri: input.logo_data_uri ?? null,
      active: true,
      ownerId: userId,
      memberCount: 1,
      userMemberCount: 1,
      createdAt: now,
      updatedAt: now,
    };
    try {
      // The organization and its first admin land together.
      // No endpoint can subscribe to an organization that does not exist yet: an entry, no event.
      await commit(ctx, [db.insert(organizations).values(org), db.insert(members).values(memberValues(org.id, { id: userId, ...user }, "admin", now))], {
        organizationId: org.id,
        entries: [{ action: "organization.created", target: { type: "organization", id: org.id } }],
      });
      return serializeOrganization(org, { id: userId, ...user });
    } catch (err) {
      if (isUniqueViolation(err, "organizations.slug")) {
        if (input.slug) throw new ApiError("slug_taken", `The slug \`${input.slug}\` is taken.`);
        continue;
      }
      // The account was deleted between the read and the write.
      if (rootMessage(err).includes("FOREIGN KEY constraint failed")) throw new ApiError("unauthenticated", "The account no longer exists.");
      throw err;
    }
  }
  throw new ApiError("conflict", "Could not find a free slug; pass one explicitly.");
}

/** A human member row; the name key is lower-cased here, in one place, for search and ordering. */
export function memberValues(
  orgId: string,
  user: { id: string; displayName: string; email: string },
  role: string,
  joinedAt: number,
): typeof members.$inferInsert {
  return {
    organizationId: orgId,
    memberId: user.id,
    type: "user",
    role,
    displayName: user.displayName,
    nameKey: user.displayName.toLowerCase(),
    email: user.email,
    joinedAt,
  };
}

export async function updateOrganization(
  ctx: OrgCtx,
  current: OrganizationWithOwner,
  input: { name?: string; slug?: string; description?: string | null; logo_data_uri?: string | null; active?: boolean },
): Promise<OrganizationJson> {
  const org = ctx.org;
  // An inactive organization is read-only; the one write it takes is being switched back on.
  if (!org.active && input.active !== true) {
    throw new ApiError("organization_inactive", 'The organization is inactive and read-only; send {"active": true} to reactivate it.');
  }
  const now = Date.now();
  const patch: Partial<typeof organizations.$inferInsert> = {};
  const changes: string[] = [];
  const take = <K extends keyof typeof patch>(field: string, key: K, value: (typeof patch)[K] | undefined, was: unknown) => {
    if (value === undefined || value === was) return;
    patch[key] = value;
    changes.push(field);
  };
  take("name", "name", input.name, current.name);
  take("slug", "slug", input.slug, current.slug);
  take("description", "description", input.description, current.description);
  take("logo_data_uri", "logoDataUri", input.logo_data_uri, current.logoDataUri);
  take("active", "active", input.active, Boolean(current.active));
  // Values already in place change nothing, updated_at included, and record nothing.
  if (changes.length === 0) {
    noChange(ctx);
    return serializeOrganizationRow(current);
  }
  const after = serializeOrganization({ ...current, ...patch, updatedAt: now }, ownerOf(current));
  try {
    const [rows] = await commit(
      ctx,
      [
        ctx.db
          .update(organizations)
          .set({ ...patch, updatedAt: now })
          .where(eq(organizations.id, org.id))
          .returning(orgColumns),
      ],
      {
        onlyIf: sql`changes() = 1`,
        // The logo (up to 1 MiB as a data URI) stays out of the event: it would be copied into one
        // delivery row per endpoint in this very batch. `changes` says whether it changed.
        entries: [
          {
            action: "organization.updated",
            target: { type: "organization", id: org.id },
            changes,
            event: { type: "organization.updated", data: { ...after, logo_data_uri: undefined } },
          },
        ],
      },
    );
    const row = rows[0];
    if (!row) throw new ApiError("not_found", "The organization does not exist.");
    return serializeOrganization(row, ownerOf(current));
  } catch (err) {
    if (isUniqueViolation(err, "organizations.slug")) throw new ApiError("slug_taken", `The slug \`${input.slug}\` is taken.`);
    throw err;
  }
}

/**
 * Everything of the organization goes with it through ON DELETE CASCADE; members' other
 * organizations are untouched. Its audit log goes too: the `organization.deleted` entry is
 * written first in the same batch (so the change did record one) and is cascaded with the rest.
 */
export async function deleteOrganization(ctx: OrgCtx): Promise<void> {
  const audit = auditStatements(ctx, { entries: [{ action: "organization.deleted", target: { type: "organization", id: ctx.org.id } }] });
  const results = await ctx.db.batch([...audit.statements, ctx.db.delete(organizations).where(eq(organizations.id, ctx.org.id))] as unknown as Statements);
  afterCommit(ctx, audit, results.slice(0, audit.statements.length));
}

const MY_ORG_FILTER: Record<string, FilterField> = {
  name: { kind: "string", column: organizations.name },
  role: { kind: "string", column: members.role, ops: ["=", "!="] },
};

/**
 * A user's organizations, oldest membership first by organization id. Keyset on the
 * (member_id, organization_id) index: a page reads O(page_size) rows whatever the count.
 */
export async function listUserOrganizations(
  ctx: ServiceCtx,
  userId: string,
  q: { page_size: number; page_token?: string; filter?: string; active_only?: boolean },
) {
  const fingerprint = `user-orgs|${userId}|${q.active_only ? 1 : 0}|${q.filter ?? ""}`;
  const conds: (SQL | undefined)[] = [eq(members.memberId, userId)];
  if (q.active_only) conds.push(eq(organizations.active, true));
  if (q.filter) conds.push(compileFilter(parseFilter(q.filter), MY_ORG_FILTER));
  if (q.page_token) {
    const [after] = await decodePageToken(ctx.config.hmacSecret, fingerprint, q.page_token, 1);
    if (typeof after !== "string") throw new ApiError("invalid_page_token");
    conds.push(sql`${members.organizationId} > ${after}`);
  }
  const rows = await ctx.db
    .select({ ...orgColumns, role: members.role, ownerName: users.displayName, ownerEmail: users.email })
    .from(members)
    .innerJoin(organizations, eq(organizations.id, members.organizationId))
    .leftJoin(users, eq(users.id, organizations.ownerId))
    .where(and(...conds))
    .orderBy(asc(members.organizationId))
    .limit(q.page_size + 1);
  const page = await finishPage(ctx.config.hmacSecret, fingerprint, rows, q.page_size, (r) => [r.id]);
  return {
    items: page.rows.map((r) => ({ organization: serializeOrganization(r, ownerOf(r)), role: r.role })),
    next_page_token: page.nextPageToken,
  };
}
