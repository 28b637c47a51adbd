import { index, sqliteTable, text, uniqueIndex } from "drizzle-orm/sqlite-core";
import { json, ms, timestamps } from "./columns";

export const users = sqliteTable("users", {
  id: text("id").primaryKey(),
  // Stored lower-cased; every lookup lower-cases first.
  email: text("email").notNull().unique(),
  displayName: text("display_name").notNull(),
  // `pbkdf2-sha256$<iterations>$<salt b64>$<hash b64>`; null for accounts that only sign in by SSO.
  passwordHash: text("password_hash"),
  emailVerifiedAt: ms("email_verified_at"),
  ...timestamps,
});

/** A login session; it is also the refresh-token family that reuse detection revokes. */
export const sessions = sqliteTable(
  "sessions",
  {
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    createdAt: ms("created_at").notNull(),
    expiresAt: ms("expires_at").notNull(),
    revokedAt: ms("revoked_at"),
    userAgent: text("user_agent"),
    ip: text("ip"),
  },
  (t) => [index("sessions_user_idx").on(t.userId)],
);

export const refreshTokens = sqliteTable(
  "refresh_tokens",
  {
    tokenHash: text("token_hash").primaryKey(),
    sessionId: text("session_id")
      .notNull()
      .references(() => sessions.id, { onDelete: "cascade" }),
    createdAt: ms("created_at").notNull(),
    expiresAt: ms("expires_at").notNull(),
    usedAt: ms("used_at"),
  },
  (t) => [index("refresh_tokens_session_idx").on(t.sessionId)],
);

export const emailTokens = sqliteTable(
  "email_tokens",
  {
    tokenHash: text("token_hash").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    // The address being verified: a token minted before an email change does not verify the new one.
    email: text("email").notNull(),
    purpose: text("purpose", { enum: ["verify_email"] }).notNull(),
    createdAt: ms("created_at").notNull(),
    expiresAt: ms("expires_at").notNull(),
    usedAt: ms("used_at"),
  },
  (t) => [index("email_tokens_user_idx").on(t.userId)],
);

export const personalAccessTokens = sqliteTable(
  "personal_access_tokens",
  {
    id: text("id").primaryKey(),
    userId: text("user_id")
      .notNull()
      .references(() => users.id, { onDelete: "cascade" }),
    name: text("name").notNull(),
    tokenHash: text("token_hash").notNull(),
    tokenPrefix: text("token_prefix").notNull(),
    scopes: json<string[]>("scopes").notNull(),
    expiresAt: ms("expires_at"),
    lastUsedAt: ms("last_used_at"),
    createdAt: ms("created_at").notNull(),
  },
  (t) => [uniqueIndex("pat_hash_idx").on(t.tokenHash), index("pat_user_idx").on(t.userId, t.id)],
);
