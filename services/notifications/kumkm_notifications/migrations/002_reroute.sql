-- A notification recorded without a channel (no contact yet, or the category opted out) keeps the event it
-- was about, so an operator can route it once the contact exists or the opt-out is lifted; the row is then
-- 'rerouted' and the new rows carry the deliveries.
ALTER TABLE deliveries ADD COLUMN event jsonb;
ALTER TABLE deliveries DROP CONSTRAINT deliveries_status;
ALTER TABLE deliveries ADD CONSTRAINT deliveries_status CHECK (
    status IN ('pending', 'sending', 'delivered', 'failed', 'unknown', 'suppressed', 'no_contact', 'rerouted')
);
