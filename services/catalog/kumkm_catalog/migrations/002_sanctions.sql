-- A product delisted as sanctioned stays marked through later revisions: a curator sees the sanction and can
-- approve the product again only by lifting it explicitly (lift_sanction), with a note.
ALTER TABLE products ADD COLUMN sanction jsonb;
