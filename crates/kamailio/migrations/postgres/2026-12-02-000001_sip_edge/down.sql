DROP TABLE sip_trunks_legs;
