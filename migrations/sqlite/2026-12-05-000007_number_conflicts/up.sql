-- The number-taken answers given to each account in the last hour (docs/validation.md,
-- "Number-taken budget"): at most NUMBER_CONFLICTS_PER_HOUR rows per account are added in any
-- hour; older rows are deleted as the account's next answer is recorded.
CREATE TABLE number_conflicts (
    id INTEGER PRIMARY KEY AUTOINCREMENT NOT NULL,
    user_id BIGINT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    answered_at TIMESTAMP(6) NOT NULL
);
CREATE INDEX number_conflicts_by_account ON number_conflicts (user_id, answered_at);
