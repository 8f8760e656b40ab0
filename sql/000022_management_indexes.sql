-- Reads of the management API and the admin page that stay cheap whatever the history (README
-- "API and admin page"): an organization's deliveries newest first, one endpoint's the same way,
-- and an organization's failed attempts (the dashboard's recent failures, and a DBA's "what failed
-- in the last hour"). The (webhook_id) index of deliveries becomes (webhook_id, created_at, id),
-- so a fan-out keeps up one index more than before, not two.

create index deliveries_organization_recent on webhooks.deliveries (organization_id, created_at desc, id desc);
drop index webhooks.deliveries_webhook_id_idx;
create index deliveries_webhook_recent on webhooks.deliveries (webhook_id, created_at desc, id desc);
create index webhook_logs_organization_failures on webhooks.webhook_logs (organization_id, created_at desc) where not success;
