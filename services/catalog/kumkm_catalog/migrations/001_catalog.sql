-- The catalog schema: products (curation and listing) and e-purchasing orders.

CREATE TABLE products (
    product_id            text        PRIMARY KEY,
    revision              integer     NOT NULL CHECK (revision >= 1),
    status                text        NOT NULL CHECK (status IN
                              ('pending_curation', 'listed', 'revision_requested', 'rejected', 'delisted')),
    seller_nib            text        NOT NULL,
    seller_name           text        NOT NULL,
    seller_scale          text        NOT NULL,
    seller_cooperative_id text,
    province              text        NOT NULL,
    city                  text        NOT NULL,
    province_key          text        NOT NULL,  -- lower(province), for case-insensitive filters
    city_key              text        NOT NULL,
    name                  text        NOT NULL,
    category              text        NOT NULL,
    unit                  text        NOT NULL,
    unit_price            numeric(20, 2) NOT NULL,
    listed_price          numeric(20, 2),
    tier                  text,
    min_order_qty         integer     NOT NULL CHECK (min_order_qty >= 1),
    -- Units available to new orders; acceptance moves units to stock_reserved, cancellation moves them back,
    -- shipping removes them from stock_reserved. The CHECKs make overselling impossible even for buggy SQL.
    stock_available       integer     NOT NULL CHECK (stock_available >= 0),
    stock_reserved        integer     NOT NULL DEFAULT 0 CHECK (stock_reserved >= 0),
    stock_as_of           timestamptz,
    tkdn_pct              numeric(7, 4) NOT NULL,
    certifications        text[]      NOT NULL DEFAULT '{}',
    description           text        NOT NULL DEFAULT '',
    precheck              jsonb       NOT NULL DEFAULT '[]'::jsonb,
    curation              jsonb,
    delist_reason         text,
    search_tsv            tsvector    NOT NULL,  -- 'simple' config: names are Indonesian, no stemmer applies
    submitted_at          timestamptz NOT NULL DEFAULT now(),
    updated_at            timestamptz NOT NULL DEFAULT now()
) WITH (fillfactor = 90);  -- room for HOT updates: reserving stock touches no indexed column

-- Search over listed products. Every filter has a (filter, product_id) index so that a page is read in
-- product_id order straight from an index (keyset pagination), and text search uses a GIN index.
-- The embedded Postgres (pgserver) ships without pg_trgm, so free text is a prefix tsquery on a tsvector.
CREATE INDEX products_listed_id       ON products (product_id)                 WHERE status = 'listed';
CREATE INDEX products_listed_category ON products (category, product_id)       WHERE status = 'listed';
CREATE INDEX products_listed_city     ON products (city_key, product_id)       WHERE status = 'listed';
CREATE INDEX products_listed_province ON products (province_key, product_id)   WHERE status = 'listed';
CREATE INDEX products_listed_scale    ON products (seller_scale, product_id)   WHERE status = 'listed';
CREATE INDEX products_listed_text     ON products USING gin (search_tsv)       WHERE status = 'listed';
CREATE INDEX products_by_status       ON products (status, submitted_at, product_id);
CREATE INDEX products_by_seller       ON products (seller_nib);

CREATE TABLE orders (
    order_id          text        PRIMARY KEY,
    status            text        NOT NULL CHECK (status IN
                          ('accepted', 'rejected', 'confirmed', 'shipped', 'delivered', 'paid', 'cancelled')),
    version           integer     NOT NULL DEFAULT 1,
    buyer_id          text        NOT NULL,
    buyer             jsonb       NOT NULL,
    budget            jsonb       NOT NULL,
    delivery          jsonb       NOT NULL,
    requested_lines   jsonb       NOT NULL,
    seller_nib        text,
    seller            jsonb,
    seller_scale      text,
    -- Where the purchase counts in the statistics: the buyer's region, else the delivery region, else the
    -- seller's region.
    region_province   text,
    region_city       text,
    total             numeric(20, 2),
    reason_codes      text[]      NOT NULL DEFAULT '{}',
    reasons           jsonb       NOT NULL DEFAULT '[]'::jsonb,
    placed_at         timestamptz NOT NULL,
    accepted_at       timestamptz,
    confirm_deadline  date,        -- the last working day (Asia/Jakarta) the seller may confirm
    confirm_by        timestamptz,
    confirmed_at      timestamptz,
    expected_ship_on  date,
    shipped_at        timestamptz,
    carrier           text,
    tracking_number   text,
    delivered_on      date,
    bast_number       text,
    received_by       text,
    paid_on           date,
    paid_amount       numeric(20, 2),
    payment_reference text,
    cancelled_at      timestamptz,
    cancelled_by      text,
    cancel_reason     text,
    history           jsonb       NOT NULL DEFAULT '[]'::jsonb,
    updated_at        timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX orders_by_buyer  ON orders (buyer_id, placed_at DESC, order_id);
CREATE INDEX orders_by_seller ON orders (seller_nib, placed_at DESC, order_id);
CREATE INDEX orders_by_status ON orders (status, placed_at DESC, order_id);
CREATE INDEX orders_by_placed ON orders (placed_at DESC, order_id);
-- The daily timeout sweep reads only orders still waiting for the seller.
CREATE INDEX orders_awaiting_confirmation ON orders (confirm_deadline) WHERE status = 'accepted';

CREATE TABLE order_lines (
    order_id    text          NOT NULL REFERENCES orders (order_id),
    line_no     integer       NOT NULL,
    product_id  text          NOT NULL,
    name        text          NOT NULL,
    category    text          NOT NULL,
    qty         integer       NOT NULL CHECK (qty >= 1),
    unit_price  numeric(20, 2) NOT NULL,
    line_total  numeric(20, 2) NOT NULL,
    PRIMARY KEY (order_id, line_no)
);
