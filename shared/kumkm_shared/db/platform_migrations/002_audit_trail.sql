-- The audit trail: every human command and every refused attempt (401, 403, 409), append-only.
-- The service's own role may INSERT and SELECT; an UPDATE, DELETE or TRUNCATE is refused by the trigger below
-- for every role (a superuser's too) and the privileges are revoked as well. Rules: docs/rules/access.md.
CREATE TABLE audit_trail (
    id            bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at            timestamptz NOT NULL DEFAULT clock_timestamp(),
    subject       text,                      -- NULL: no valid token was shown
    actor_kind    text NOT NULL,             -- person, service, anonymous
    actor_name    text,
    roles         text[] NOT NULL DEFAULT '{}',
    organisation  text,
    method        text NOT NULL,
    route         text NOT NULL,             -- the route's template, else the raw path
    command       text,                      -- the route's name
    target        text,                      -- the path parameters
    status        integer,                   -- NULL: written inside the command's own transaction
    outcome       text NOT NULL,             -- committed, ok, unauthenticated, forbidden, invalid, a refusal code
    reason        text,
    request_id    text NOT NULL,
    client        text
);
CREATE INDEX audit_trail_at ON audit_trail (at);
CREATE INDEX audit_trail_subject ON audit_trail (subject, id);
CREATE INDEX audit_trail_target ON audit_trail (target, id) WHERE target IS NOT NULL;

CREATE FUNCTION audit_trail_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'the audit trail is append-only: % on %.% is refused', TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
        USING ERRCODE = 'insufficient_privilege';
END
$$;
CREATE TRIGGER audit_trail_append_only BEFORE UPDATE OR DELETE ON audit_trail
    FOR EACH ROW EXECUTE FUNCTION audit_trail_refuse_change();
CREATE TRIGGER audit_trail_no_truncate BEFORE TRUNCATE ON audit_trail
    FOR EACH STATEMENT EXECUTE FUNCTION audit_trail_refuse_change();
REVOKE UPDATE, DELETE, TRUNCATE ON audit_trail FROM PUBLIC;
DO $$ BEGIN EXECUTE format('REVOKE UPDATE, DELETE, TRUNCATE ON audit_trail FROM %I', current_user); END $$;
