CREATE TABLE `domains` (
	`id` text PRIMARY KEY NOT NULL,
	`organization_id` text NOT NULL,
	`domain` text NOT NULL,
	`verification_token` text NOT NULL,
	`verified_at` integer,
	`jit_provisioning_enabled` integer DEFAULT false NOT NULL,
	`sso_enforcement` text DEFAULT 'optional' NOT NULL,
	`scim_enabled` integer DEFAULT false NOT NULL,
	`identity_provider_config_id` text,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`organization_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade,
	FOREIGN KEY (`identity_provider_config_id`) REFERENCES `identity_provider_configs`(`id`) ON UPDATE no action ON DELETE set null
);
--> statement-breakpoint
CREATE INDEX `domains_org_id_idx` ON `domains` (`organization_id`,`id`);--> statement-breakpoint
CREATE UNIQUE INDEX `domains_org_domain_idx` ON `domains` (`organization_id`,`domain`);--> statement-breakpoint
CREATE UNIQUE INDEX `domains_verified_idx` ON `domains` (`domain`) WHERE verified_at is not null;--> statement-breakpoint
CREATE TABLE `identity_provider_configs` (
	`id` text PRIMARY KEY NOT NULL,
	`organization_id` text NOT NULL,
	`name` text NOT NULL,
	`saml_entity_id` text NOT NULL,
	`saml_sso_url` text,
	`saml_x509_cert` text,
	`saml_x509_cert_expires_at` integer,
	`saml_x509_cert_secondary` text,
	`saml_x509_cert_secondary_expires_at` integer,
	`allow_idp_initiated` integer DEFAULT false NOT NULL,
	`allow_sha1` integer DEFAULT false NOT NULL,
	`scim_enabled` integer DEFAULT false NOT NULL,
	`is_default` integer DEFAULT false NOT NULL,
	`created_at` integer NOT NULL,
	`updated_at` integer NOT NULL,
	FOREIGN KEY (`organization_id`) REFERENCES `organizations`(`id`) ON UPDATE no action ON DELETE cascade
);
--> statement-breakpoint
CREATE INDEX `idp_configs_org_id_idx` ON `identity_provider_configs` (`organization_id`,`id`);--> statement-breakpoint
CREATE UNIQUE INDEX `idp_configs_org_default_idx` ON `identity_provider_configs` (`organization_id`) WHERE is_default = 1;