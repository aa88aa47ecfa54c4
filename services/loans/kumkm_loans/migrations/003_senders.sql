-- Issue 12: integrator organisations act only for the parties in their mandate.
-- A repayment that arrives before its loan is parked with the organisation that sent it (the subject's
-- token); when the loan arrives, the sender's mandate is checked against the loan's lender.
ALTER TABLE parked_repayments ADD COLUMN sender text;

-- Parked repayments refused at that point (never applied), kept for operators and auditors.
CREATE TABLE refused_repayments (
    event_id   uuid PRIMARY KEY,
    payment_id text        NOT NULL,
    loan_id    text        NOT NULL,
    data       jsonb       NOT NULL,
    sender     text,
    code       text        NOT NULL,
    reason     text        NOT NULL,
    refused_at timestamptz NOT NULL DEFAULT now()
);
