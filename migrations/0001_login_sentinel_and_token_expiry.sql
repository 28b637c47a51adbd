-- A login reads "the first account whose email is at or after the given one" so that a known and
-- an unknown email read the same rows (and Server-Timing cannot tell them apart). This row sorts
-- after every valid address ('~' is above every character an email may hold), so that read
-- always finds one. It has no password, no membership and an id no route accepts.
INSERT OR IGNORE INTO `users` (`id`, `email`, `display_name`, `password_hash`, `email_verified_at`, `created_at`, `updated_at`)
VALUES ('usr_login_sentinel', '~', 'login sentinel', NULL, NULL, 0, 0);
--> statement-breakpoint
-- Every personal access token now expires (at most 365 days after its creation).
UPDATE `personal_access_tokens` SET `expires_at` = `created_at` + 365 * 86400000 WHERE `expires_at` IS NULL;
