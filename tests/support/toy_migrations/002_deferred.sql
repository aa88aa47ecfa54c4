-- A constraint checked only at commit: the batch tests make a whole batch's commit fail with it.
CREATE TABLE deferred (
    key  text NOT NULL,
    CONSTRAINT deferred_key_unique UNIQUE (key) DEFERRABLE INITIALLY DEFERRED
);
