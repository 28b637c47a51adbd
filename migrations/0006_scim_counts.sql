ALTER TABLE `identity_provider_configs` ADD `scim_user_count` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
ALTER TABLE `identity_provider_configs` ADD `scim_group_count` integer DEFAULT 0 NOT NULL;--> statement-breakpoint
-- Directories provisioned before the counters existed start exact.
UPDATE `identity_provider_configs` SET `scim_user_count` = (SELECT count(*) FROM `scim_users` WHERE `scim_users`.`config_id` = `identity_provider_configs`.`id`), `scim_group_count` = (SELECT count(*) FROM `scim_groups` WHERE `scim_groups`.`config_id` = `identity_provider_configs`.`id`);
