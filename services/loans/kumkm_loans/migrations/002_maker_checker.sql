-- Maker-checker: an approval above the second-approval threshold waits for a second person. The request
-- is then awaiting_second_approval, with the maker (who, when, on which business date, and why).
ALTER TABLE restructuring_requests
    ADD COLUMN first_approved_by   text,
    ADD COLUMN first_approved_at   timestamptz,
    ADD COLUMN first_approved_on   date,
    ADD COLUMN first_approval_note text;

ALTER TABLE restructuring_requests DROP CONSTRAINT restructuring_requests_status_check;
ALTER TABLE restructuring_requests ADD CONSTRAINT restructuring_requests_status_check
    CHECK (status IN ('received', 'approved', 'rejected', 'referred', 'awaiting_second_approval'));

-- At most one request per loan waits for a person: referred, or approved once and waiting for the checker.
DROP INDEX restructuring_requests_one_open;
CREATE UNIQUE INDEX restructuring_requests_one_open ON restructuring_requests (loan_id)
    WHERE status IN ('referred', 'awaiting_second_approval');
