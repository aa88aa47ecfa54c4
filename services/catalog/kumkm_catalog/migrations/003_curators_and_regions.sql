-- Two curators lift a sanction: the first curator's lift is recorded here (who, when, the note, the revision)
-- and the product waits in 'awaiting_second_curator' until a different curator completes or refuses it.
ALTER TABLE products ADD COLUMN sanction_lift jsonb;
ALTER TABLE products DROP CONSTRAINT products_status_check;
ALTER TABLE products ADD CONSTRAINT products_status_check CHECK (status IN
    ('pending_curation', 'awaiting_second_curator', 'listed', 'revision_requested', 'rejected', 'delisted'));

-- The statistics of one region read its orders by lower(region_province) and lower(region_city). Lists filtered
-- by a region scope read in their own order (product_id, placed_at) through the existing indexes, the scope
-- being a filter on the rows walked (measured on 150,000 products in tests/integration/catalog/test_search.py).
CREATE INDEX orders_by_region ON orders (lower(region_province), lower(region_city), placed_at DESC, order_id);
