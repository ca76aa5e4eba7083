DROP TABLE number_conflicts;
