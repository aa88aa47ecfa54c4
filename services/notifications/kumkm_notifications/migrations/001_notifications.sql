-- The notifications schema: contacts, deliveries with their attempts, and the in-app inbox.

CREATE TABLE contacts (
    party_id     text PRIMARY KEY,
    party_kind   text,
    name         text        NOT NULL,
    email        text,
    phone        text,
    webhook_url  text,
    locale       text        NOT NULL DEFAULT 'id_ID',
    channels     text[]      NOT NULL DEFAULT '{inbox}',
    opt_outs     text[]      NOT NULL DEFAULT '{}',
    updated_at   timestamptz NOT NULL,           -- the contract's updated_at: older upserts are ignored
    event_id     uuid        NOT NULL,           -- the upsert that set this version
    stored_at    timestamptz NOT NULL DEFAULT now()
);

-- Kept out of the contact (and so out of every event): only this service signs with it.
CREATE TABLE webhook_secrets (
    party_id    text PRIMARY KEY,
    secret      text        NOT NULL,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- A restructuring request names only its loan; the borrower is learned from the loan's other events.
CREATE TABLE loan_borrowers (
    loan_id      text PRIMARY KEY,
    borrower_id  text NOT NULL,
    name         text NOT NULL
);

CREATE TABLE deliveries (
    id               uuid PRIMARY KEY,                  -- the notification id; also the idempotency key
    event_id         uuid        NOT NULL,
    event_type       text        NOT NULL,
    correlation_id   text,
    party_id         text        NOT NULL,
    channel          text,                              -- NULL for no_contact and suppressed
    category         text        NOT NULL,
    status           text        NOT NULL,
    locale           text,
    address          text,                              -- email, URL or phone at the time of the event
    subject          text,
    body_text        text,
    body_html        text,
    payload          bytea,                             -- the exact webhook body, so retries sign the same bytes
    attempts         integer     NOT NULL DEFAULT 0,
    next_attempt_at  timestamptz,
    lease_until      timestamptz,                       -- while 'sending': after this, the sender is presumed dead
    last_error       text,
    detail           text,
    created_at       timestamptz NOT NULL DEFAULT now(),
    updated_at       timestamptz NOT NULL DEFAULT now(),
    delivered_at     timestamptz,
    CONSTRAINT deliveries_status CHECK (
        status IN ('pending', 'sending', 'delivered', 'failed', 'unknown', 'suppressed', 'no_contact')
    )
);
-- One notification per (event, recipient, channel): a redelivered event finds its rows and adds none.
CREATE UNIQUE INDEX deliveries_once ON deliveries (event_id, party_id, channel) NULLS NOT DISTINCT;
CREATE INDEX deliveries_due ON deliveries (next_attempt_at) WHERE status = 'pending';
CREATE INDEX deliveries_sending ON deliveries (lease_until) WHERE status = 'sending';
CREATE INDEX deliveries_party ON deliveries (party_id, created_at DESC);

CREATE TABLE attempts (
    id            bigserial PRIMARY KEY,
    delivery_id   uuid        NOT NULL REFERENCES deliveries (id),
    attempt_no    integer     NOT NULL,
    started_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    finished_at   timestamptz,
    outcome       text        NOT NULL DEFAULT 'sending',  -- sending, delivered, transient, permanent, unknown
    code          text,
    response      text,
    UNIQUE (delivery_id, attempt_no)
);

CREATE TABLE inbox_messages (
    id          uuid PRIMARY KEY REFERENCES deliveries (id),
    party_id    text        NOT NULL,
    event_id    uuid        NOT NULL,
    event_type  text        NOT NULL,
    category    text        NOT NULL,
    subject     text        NOT NULL,
    body_text   text        NOT NULL,
    body_html   text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    read_at     timestamptz
);
CREATE INDEX inbox_messages_party ON inbox_messages (party_id, created_at DESC);
