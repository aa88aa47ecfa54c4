-- The recovery monitor's read models. Every table here is rebuilt from the streams by
-- `python -m kumkm_monitoring rebuild` (the list of tables is repository.READ_MODELS).

-- A party of the registry (its latest record by as_of), with its contribution to the counts.
CREATE TABLE parties (
    kind              text NOT NULL CHECK (kind IN ('cooperative', 'umkm')),
    party_id          text NOT NULL,
    name              text NOT NULL,
    province          text NOT NULL,
    city              text NOT NULL,
    district          text NOT NULL DEFAULT '',   -- '' when the registry gives none
    region            jsonb NOT NULL,
    status            text NOT NULL,
    scale             text,                       -- UMKM only
    kbli              text,                       -- UMKM only
    cooperative_type  text,                       -- cooperatives only
    member_count      integer,                    -- cooperatives only
    first_as_of       date NOT NULL,
    as_of             date NOT NULL,              -- the latest record's
    closed_on         date,                       -- the latest record's as_of when dissolved or closed
    counted_key       text[],                     -- the (province, city, district, kind) counted under
    population        int4multirange NOT NULL DEFAULT '{}',  -- months in the population
    productive        int4multirange NOT NULL DEFAULT '{}',  -- months productive (inside the population)
    last_repayment    date,
    last_sale         date,
    last_activity_on  date,
    last_activity_operating boolean,
    PRIMARY KEY (party_id)
);
CREATE INDEX parties_region ON parties (lower(province), lower(city), lower(district), kind, party_id);
CREATE INDEX parties_city_id ON parties (lower(province), lower(city), party_id);

-- Pre-aggregated counts as a difference array: the number of registered (productive) parties of a key in
-- month m is the sum of d_registered (d_productive) over the key's rows with month <= m.
CREATE TABLE counts (
    province     text    NOT NULL,
    city         text    NOT NULL,
    district     text    NOT NULL,
    kind         text    NOT NULL,
    month        integer NOT NULL,            -- year * 12 + (month - 1)
    d_registered bigint  NOT NULL DEFAULT 0,
    d_productive bigint  NOT NULL DEFAULT 0,
    PRIMARY KEY (province, city, district, kind, month)
);
CREATE INDEX counts_city ON counts (lower(province), lower(city), month);

-- Activity reports, one per party and as_of (the last recorded of a day stands).
CREATE TABLE activity (
    party_id     text    NOT NULL,
    as_of        date    NOT NULL,
    operating    boolean NOT NULL,
    revenue_band text    NOT NULL,
    survey       text,
    PRIMARY KEY (party_id, as_of)
);

-- Loans: whose they are (repayments and requests name only the loan) and their grade changes.
CREATE TABLE loans (
    loan_id       text PRIMARY KEY,
    lender        text NOT NULL,
    borrower_kind text NOT NULL,
    borrower_id   text NOT NULL,
    province      text NOT NULL,
    city          text NOT NULL,
    disbursed_on  date NOT NULL,
    principal     numeric(20,2) NOT NULL
);
CREATE INDEX loans_borrower ON loans (borrower_id);

CREATE TABLE grades (
    event_id    uuid PRIMARY KEY,
    loan_id     text     NOT NULL,
    as_of       date     NOT NULL,
    grade       smallint NOT NULL CHECK (grade BETWEEN 1 AND 5),
    recorded_at bigserial
);
CREATE INDEX grades_loan ON grades (loan_id, as_of, recorded_at);

-- Repayments; `sender` is kept for one that came before its loan: its mandate is checked on disbursement.
CREATE TABLE repayments (
    payment_id text PRIMARY KEY,
    loan_id    text NOT NULL,
    paid_on    date NOT NULL,
    amount     numeric(20,2) NOT NULL,
    pending    boolean NOT NULL DEFAULT false,
    sender     text
);
CREATE INDEX repayments_loan ON repayments (loan_id);

-- E-catalog orders: the seller, the region the procurement counts in, the value paid.
CREATE TABLE orders (
    order_id     text PRIMARY KEY,
    seller_nib   text NOT NULL,
    province     text,
    city         text,
    total        numeric(20,2),
    delivered_on date,
    paid_on      date,
    paid_amount  numeric(20,2)
);
CREATE INDEX orders_seller ON orders (seller_nib);
CREATE INDEX orders_region ON orders (lower(province), lower(city));

-- Restructuring requests as the loans context tells them.
CREATE TABLE restructurings (
    request_id   text PRIMARY KEY,
    loan_id      text NOT NULL,
    province     text,
    city         text,
    requested_on date,
    referred     boolean NOT NULL DEFAULT false,
    outcome      text CHECK (outcome IN ('approved', 'rejected')),
    decided_on   date,
    principal    numeric(20,2)
);
CREATE INDEX restructurings_loan ON restructurings (loan_id);
CREATE INDEX restructurings_region ON restructurings (lower(province), lower(city));
