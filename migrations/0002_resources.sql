CREATE TABLE `project_members` (
	`project_id` text NOT NULL,
	`member_id` text NOT NULL,
	`organization_id` text NOT NULL,
	`granted_by` text,
	`granted_at` integer NOT NULL,
	PRIMARY KEY(`project_id`, `member_id`),
	FOREIGN KEY (`project_id`) REFERENCES `projects`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`organization_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `project_members_member_idx` ON `project_members` (`organization_id`,`member_id`,`project_id`);--> statement-breakpoint
CREATE TABLE `project_tags` (
	`project_id` text NOT NULL,
	`tag_id` text NOT NULL,
	`organization_id` text NOT NULL,
	`private` integer DEFAULT false NOT NULL,
	PRIMARY KEY(`project_id`, `tag_id`),
	FOREIGN KEY (`project_id`) REFERENCES `projects`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`tag_id`) REFERENCES `tags`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`organization_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `project_tags_tag_idx` ON `project_tags` (`tag_id`,`private`,`project_id`);--> statement-breakpoint
CREATE TABLE `projects` (
	`id` text PRIMARY KEY NOT NULL,
	`organization_id` text NOT NULL,
	`name` text NOT NULL,
	`name_key` text NOT NULL,
	`description` text,
	`private` integer DEFAULT false NOT NULL,
	`created_by` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`organization_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `projects_org_id_idx` ON `projects` (`organization_id`,`id`);--> statement-breakpoint
CREATE INDEX `projects_org_name_idx` ON `projects` (`organization_id`,`name_key`,`id`);--> statement-breakpoint
CREATE INDEX `projects_org_updated_idx` ON `projects` (`organization_id`,`updated_at`,`id`);--> statement-breakpoint
CREATE INDEX `projects_org_private_idx` ON `projects` (`organization_id`,`private`,`id`);--> statement-breakpoint
CREATE INDEX `projects_org_private_name_idx` ON `projects` (`organization_id`,`private`,`name_key`,`id`);--> statement-breakpoint
CREATE INDEX `projects_org_private_updated_idx` ON `projects` (`organization_id`,`private`,`updated_at`,`id`);--> statement-breakpoint
CREATE TABLE `tags` (
	`id` text PRIMARY KEY NOT NULL,
	`organization_id` text NOT NULL,
	`name` text NOT NULL,
	`name_key` text NOT NULL,
	`project_count` integer DEFAULT 0 NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`organization_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `tags_org_name_idx` ON `tags` (`organization_id`,`name`);--> statement-breakpoint
CREATE INDEX `tags_org_name_key_idx` ON `tags` (`organization_id`,`name_key`,`name`);--> statement-breakpoint
CREATE TABLE `integration_environments` (
	`integration_id` text NOT NULL,
	`environment` text NOT NULL,
	`project_id` text NOT NULL,
	`organization_id` text NOT NULL,
	`created_at` integer NOT NULL,
	PRIMARY KEY(`integration_id`, `environment`),
	FOREIGN KEY (`integration_id`) REFERENCES `integrations`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`project_id`) REFERENCES `projects`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`organization_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `integration_environments_project_idx` ON `integration_environments` (`project_id`);--> statement-breakpoint
CREATE TABLE `integrations` (
	`id` text PRIMARY KEY NOT NULL,
	`organization_id` text NOT NULL,
	`kind` text NOT NULL,
	`display_name` text NOT NULL,
	`config` text NOT NULL,
	`secrets_ciphertext` text,
	`secret_names` text NOT NULL,
	`created_by` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`organization_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `integrations_org_id_idx` ON `integrations` (`organization_id`,`id`);--> statement-breakpoint
CREATE INDEX `integrations_org_kind_idx` ON `integrations` (`organization_id`,`kind`,`id`);--> statement-breakpoint
CREATE TABLE `proxies` (
	`id` text PRIMARY KEY NOT NULL,
	`organization_id` text NOT NULL,
	`name` text NOT NULL,
	`url` text NOT NULL,
	`username` text,
	`password_ciphertext` text,
	`is_default` integer DEFAULT false NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`organization_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `proxies_org_id_idx` ON `proxies` (`organization_id`,`id`);--> statement-breakpoint
CREATE UNIQUE INDEX `proxies_org_default_idx` ON `proxies` (`organization_id`) WHERE is_default = 1;--> statement-breakpoint
CREATE TABLE `deployments` (
	`id` text PRIMARY KEY NOT NULL,
	`license_id` text NOT NULL,
	`name` text NOT NULL,
	`region` text NOT NULL,
	`version` text NOT NULL,
	`last_seen_at` integer NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`license_id`) REFERENCES `licenses`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE UNIQUE INDEX `deployments_license_name_idx` ON `deployments` (`license_id`,`name`);--> statement-breakpoint
CREATE INDEX `deployments_license_id_idx` ON `deployments` (`license_id`,`id`);--> statement-breakpoint
CREATE TABLE `licenses` (
	`id` text PRIMARY KEY NOT NULL,
	`plan` text NOT NULL,
	`seats` integer NOT NULL,
	`features` text NOT NULL,
	`expires_at` integer,
	`key_hash` text NOT NULL,
	`key_prefix` text NOT NULL,
	`organization_id` text,
	`revoked_at` integer,
	`created_by` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`organization_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE set null
);
--> statement-breakpoint
CREATE UNIQUE INDEX `licenses_key_hash_idx` ON `licenses` (`key_hash`);--> statement-breakpoint
CREATE UNIQUE INDEX `licenses_org_idx` ON `licenses` (`organization_id`);--> statement-breakpoint
CREATE INDEX `licenses_plan_id_idx` ON `licenses` (`plan`,`id`);