ALTER TABLE sip_trunks_legs ALTER COLUMN password TYPE TEXT;
