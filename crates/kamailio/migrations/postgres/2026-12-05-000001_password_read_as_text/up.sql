-- Kamailio's db_postgres reads a TEXT column as a blob and un-escapes it as bytea, so a
-- carrier password such as `back\slash\101` reached the carrier's digest as `backslashA`.
-- VARCHAR columns are read as they are. 512 characters hold the API's longest password.
ALTER TABLE sip_trunks_legs ALTER COLUMN password TYPE VARCHAR(512);
