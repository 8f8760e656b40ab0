-- Released migrations are append-only: each applied one's checksum (sha256 of its file, line
-- endings normalised) is kept, and src/db/migrate.ts refuses to run beside a file that no longer
-- matches what this database applied. Rows applied before this migration get their checksum on
-- the first migrate that sees this column.
alter table webhooks.migrations add column checksum text;
comment on column webhooks.migrations.checksum is
  'sha256 (hex) of the migration file as applied, CRLF read as LF; a file that no longer matches is refused by pg-webhooks migrate.';
