CREATE TABLE effects (
    id        bigserial PRIMARY KEY,
    event_id  uuid NOT NULL,
    loan_id   text NOT NULL,
    kind      text NOT NULL
);
CREATE TABLE attempts (
    event_id  uuid NOT NULL,
    at        timestamptz NOT NULL DEFAULT clock_timestamp()
);
