-- Two curators lift a sanction: the first curator's lift is recorded here (who, when, the note, the revision)
-- and the product waits in 'awaiting_second_curator' until a different curator completes or refuses it.
ALTER TABLE products ADD COLUMN sanction_lift jsonb;
ALTER TABLE products DROP CONSTRAINT products_status_check;
ALTER TABLE products ADD CONSTRAINT products_status_check CHECK (status IN
    ('pending_curation', 'awaiting_second_curator', 'listed', 'revision_requested', 'rejected', 'delisted'));

-- Region scopes filter lists by lower(province) and lower(city) (kumkm_shared.auth.scope.RegionScope.sql).
CREATE INDEX products_by_region ON products (lower(province), lower(city), product_id);
CREATE INDEX orders_by_region   ON orders (lower(region_province), lower(region_city), placed_at DESC, order_id);
