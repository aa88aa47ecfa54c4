-- The loan book: loans, their schedules, repayments, collectibility, and restructuring requests.
CREATE TABLE loans (
    loan_id               text PRIMARY KEY,
    lender                text          NOT NULL,
    borrower              jsonb         NOT NULL,
    borrower_kind         text          NOT NULL,
    borrower_id           text          NOT NULL,
    borrower_name         text          NOT NULL,
    province              text          NOT NULL,
    city                  text          NOT NULL,
    principal             numeric(20,2) NOT NULL,
    original_rate         numeric(12,8) NOT NULL,
    annual_rate           numeric(12,8) NOT NULL,
    tenor_months          integer       NOT NULL,
    method                text          NOT NULL,
    disbursed_on          date          NOT NULL,
    first_due_on          date          NOT NULL,
    maturity_on           date          NOT NULL,
    outstanding_principal numeric(20,2) NOT NULL,
    unapplied             numeric(20,2) NOT NULL DEFAULT 0,
    status                text          NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'closed')),
    collectibility        smallint      NOT NULL DEFAULT 1 CHECK (collectibility BETWEEN 1 AND 5),
    days_past_due         integer       NOT NULL DEFAULT 0,
    graded_on             date,
    schedule_version      integer       NOT NULL DEFAULT 0,
    restructure_count     integer       NOT NULL DEFAULT 0,
    created_at            timestamptz   NOT NULL DEFAULT now(),
    updated_at            timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX loans_region ON loans (province, city);
CREATE INDEX loans_borrower ON loans (borrower_id);

-- Every schedule a loan ever had. The current schedule is the rows not superseded; a restructuring
-- supersedes what it replaces and adds rows under the next schedule_version.
CREATE TABLE installments (
    loan_id              text          NOT NULL REFERENCES loans (loan_id),
    schedule_version     integer       NOT NULL,
    no                   integer       NOT NULL,
    due_on               date          NOT NULL,
    principal            numeric(20,2) NOT NULL CHECK (principal >= 0),
    interest             numeric(20,2) NOT NULL CHECK (interest >= 0),
    capitalised_interest numeric(20,2) NOT NULL DEFAULT 0,
    balance              numeric(20,2) NOT NULL CHECK (balance >= 0),
    grace                boolean       NOT NULL DEFAULT false,
    paid_principal       numeric(20,2) NOT NULL DEFAULT 0,
    paid_interest        numeric(20,2) NOT NULL DEFAULT 0,
    overdue_announced    boolean       NOT NULL DEFAULT false,
    superseded           boolean       NOT NULL DEFAULT false,
    PRIMARY KEY (loan_id, schedule_version, no)
);
-- The tick looks only at current installments that are not fully paid.
CREATE INDEX installments_open ON installments (loan_id, due_on)
    WHERE NOT superseded AND paid_principal + paid_interest < principal + interest;

CREATE TABLE repayments (
    payment_id        text PRIMARY KEY,
    loan_id           text          NOT NULL,
    event_id          uuid          NOT NULL,
    amount            numeric(20,2) NOT NULL,
    paid_on           date          NOT NULL,
    channel           text          NOT NULL,
    reference         text          NOT NULL,
    applied_interest  numeric(20,2) NOT NULL DEFAULT 0,
    applied_principal numeric(20,2) NOT NULL DEFAULT 0,
    prepaid_principal numeric(20,2) NOT NULL DEFAULT 0,
    unapplied         numeric(20,2) NOT NULL DEFAULT 0,
    applied_at        timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX repayments_loan ON repayments (loan_id, paid_on);

-- Repayments that arrived before their loan's disbursement; applied when the disbursement arrives.
CREATE TABLE parked_repayments (
    payment_id text PRIMARY KEY,
    loan_id    text        NOT NULL,
    event_id   uuid        NOT NULL,
    data       jsonb       NOT NULL,
    parked_at  timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX parked_repayments_loan ON parked_repayments (loan_id);

-- Grade changes as of business dates (from disbursements, ticks and restructurings): the grade at the
-- policy cut-off is read from here.
CREATE TABLE collectibility_history (
    id            bigserial PRIMARY KEY,
    loan_id       text     NOT NULL,
    as_of         date     NOT NULL,
    grade         smallint NOT NULL,
    days_past_due integer  NOT NULL,
    cause         text     NOT NULL,
    recorded_at   timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX collectibility_history_loan ON collectibility_history (loan_id, as_of);

CREATE TABLE ticks (
    as_of               date PRIMARY KEY,
    runs                integer     NOT NULL DEFAULT 1,
    overdue_announced   integer     NOT NULL DEFAULT 0,
    grade_changes       integer     NOT NULL DEFAULT 0,
    last_run_at         timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE restructuring_requests (
    request_id            text PRIMARY KEY,
    loan_id               text          NOT NULL,
    event_id              uuid          NOT NULL,
    borrower_id           text,
    borrower_name         text,
    province              text,
    city                  text,
    requested_on          date          NOT NULL,
    reason                text          NOT NULL,
    impact                jsonb         NOT NULL,
    proposal              jsonb         NOT NULL,
    reschedule_from       date          NOT NULL,
    status                text          NOT NULL CHECK (status IN ('received', 'approved', 'rejected', 'referred')),
    reason_codes          text[]        NOT NULL DEFAULT '{}',
    reasons               jsonb         NOT NULL DEFAULT '[]'::jsonb,
    outstanding_principal numeric(20,2),
    summary               jsonb,
    decided_by            text,
    decided_at            timestamptz,
    decided_on            date,
    decision_note         text,
    received_at           timestamptz   NOT NULL DEFAULT now()
);
CREATE INDEX restructuring_requests_loan ON restructuring_requests (loan_id);
CREATE INDEX restructuring_requests_status ON restructuring_requests (status);
CREATE INDEX restructuring_requests_region ON restructuring_requests (province, city);
-- At most one request per loan waits for an officer.
CREATE UNIQUE INDEX restructuring_requests_one_open ON restructuring_requests (loan_id) WHERE status = 'referred';
