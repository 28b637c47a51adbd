CREATE TABLE `scim_group_members` (
	`group_id` text NOT NULL,
	`scim_user_id` text NOT NULL,
	`added_at` integer NOT NULL,
	PRIMARY KEY(`group_id`, `scim_user_id`),
	FOREIGN KEY (`group_id`) REFERENCES `scim_groups`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`scim_user_id`) REFERENCES `scim_users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `scim_group_members_user_idx` ON `scim_group_members` (`scim_user_id`,`group_id`);--> statement-breakpoint
CREATE TABLE `scim_groups` (
	`id` text PRIMARY KEY NOT NULL,
	`config_id` text NOT NULL,
	`organization_id` text NOT NULL,
	`display_name` text NOT NULL,
	`display_name_key` text NOT NULL,
	`external_id` text,
	`role` text,
	`member_count` integer DEFAULT 0 NOT NULL,
	`version` integer DEFAULT 1 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`config_id`) REFERENCES `identity_provider_configs`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`organization_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `scim_groups_config_id_idx` ON `scim_groups` (`config_id`,`id`);--> statement-breakpoint
CREATE UNIQUE INDEX `scim_groups_config_name_idx` ON `scim_groups` (`config_id`,`display_name_key`);--> statement-breakpoint
CREATE INDEX `scim_groups_config_external_idx` ON `scim_groups` (`config_id`,`external_id`);--> statement-breakpoint
CREATE TABLE `scim_logs` (
	`id` text PRIMARY KEY NOT NULL,
	`config_id` text NOT NULL,
	`organization_id` text NOT NULL,
	`method` text NOT NULL,
	`path` text NOT NULL,
	`status` integer NOT NULL,
	`summary` text NOT NULL,
	`created_at` integer NOT NULL,
	FOREIGN KEY (`config_id`) REFERENCES `identity_provider_configs`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`organization_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `scim_logs_config_id_idx` ON `scim_logs` (`config_id`,`id`);--> statement-breakpoint
CREATE INDEX `scim_logs_config_status_idx` ON `scim_logs` (`config_id`,`status`,`id`);--> statement-breakpoint
CREATE INDEX `scim_logs_created_idx` ON `scim_logs` (`created_at`);--> statement-breakpoint
CREATE TABLE `scim_users` (
	`id` text PRIMARY KEY NOT NULL,
	`config_id` text NOT NULL,
	`organization_id` text NOT NULL,
	`user_id` text NOT NULL,
	`user_name` text NOT NULL,
	`user_name_key` text NOT NULL,
	`external_id` text,
	`display_name` text,
	`active` integer DEFAULT true NOT NULL,
	`attributes` text NOT NULL,
	`version` integer DEFAULT 1 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`config_id`) REFERENCES `identity_provider_configs`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`organization_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`user_id`) REFERENCES `users`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `scim_users_config_id_idx` ON `scim_users` (`config_id`,`id`);--> statement-breakpoint
CREATE UNIQUE INDEX `scim_users_config_name_idx` ON `scim_users` (`config_id`,`user_name_key`);--> statement-breakpoint
CREATE UNIQUE INDEX `scim_users_config_user_idx` ON `scim_users` (`config_id`,`user_id`);--> statement-breakpoint
CREATE INDEX `scim_users_config_external_idx` ON `scim_users` (`config_id`,`external_id`);--> statement-breakpoint
CREATE INDEX `scim_users_user_idx` ON `scim_users` (`user_id`);--> statement-breakpoint
ALTER TABLE `members` ADD `scim_config_id` text;--> statement-breakpoint
ALTER TABLE `identity_provider_configs` ADD `scim_token_hash` text;--> statement-breakpoint
ALTER TABLE `identity_provider_configs` ADD `scim_token_prefix` text;--> statement-breakpoint
ALTER TABLE `identity_provider_configs` ADD `scim_token_created_at` integer;--> statement-breakpoint
CREATE UNIQUE INDEX `idp_configs_scim_token_idx` ON `identity_provider_configs` (`scim_token_hash`);