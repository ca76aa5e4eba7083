DROP TABLE carrier_health;
