-- Failure policies and stuck builds (docs/spec.md, "Outcomes", "Stuck
-- builds").
--
-- A start build the Reconciler fails because it outlived BuildTimeout gets
-- failure kind 'timeout'. Migrate runs this file in one transaction;
-- PostgreSQL (12 and later) accepts ALTER TYPE ... ADD VALUE there, but the
-- new label cannot be used before that transaction commits, so nothing
-- below names it.
ALTER TYPE failure_kind ADD VALUE 'timeout';

-- The adaptive policy reads the results of prebuilds' first builds by preset,
-- newest completion first (completed_at desc, id desc): per configured preset
-- the newest success (proven(P), where a failure streak starts) and the
-- failures completed after it (the streak, at most 64). Both are index
-- probes and short ranges of this index, however long the history of builds
-- grows. Only finished first builds with a preset are in it: a build enters
-- when its job succeeds or fails, never while it is queued or running.
-- instance_id is included for the join that keeps instances created as
-- prebuilds. Built without CONCURRENTLY (Migrate runs in a transaction): on a
-- large builds table it blocks writes to builds while it is built.
CREATE INDEX builds_first_outcomes_idx ON builds (preset_id, job_status, completed_at DESC, id DESC)
    INCLUDE (instance_id)
    WHERE number = 1 AND preset_id IS NOT NULL AND job_status IN ('succeeded', 'failed');
