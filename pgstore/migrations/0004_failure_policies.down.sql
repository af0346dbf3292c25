DROP INDEX builds_first_outcomes_idx;

-- PostgreSQL cannot drop an enum label, so failure_kind is rebuilt without
-- 'timeout' (rewriting builds). A timed-out build becomes a transient
-- failure, the kind the older schema gives a failure that a retry may fix.
ALTER TYPE failure_kind RENAME TO failure_kind_0004;
CREATE TYPE failure_kind AS ENUM ('transient', 'validation');
ALTER TABLE builds ALTER COLUMN failure_kind TYPE failure_kind
    USING (CASE failure_kind::text WHEN 'timeout' THEN 'transient' ELSE failure_kind::text END)::failure_kind;
DROP TYPE failure_kind_0004;
