-- Targeted passes and one-statement claims (docs/spec.md, "Filtered
-- snapshots"): a preset's pool is found through an index instead of through
-- every build ever started with the preset.
--
-- instances.preset_id is the instance's current preset: the preset of its
-- most recent start build that has one (NULL when it has none). The store
-- sets it in the statement or transaction that inserts such a build
-- (CreatePrebuilds, CreateInstance, StartBuild, all under the instance row
-- lock or on a new row), so it always agrees with the builds. Writers other
-- than pgstore must keep it too.
ALTER TABLE instances ADD COLUMN preset_id uuid;

UPDATE instances i SET preset_id = c.preset_id
FROM (
    SELECT DISTINCT ON (b.instance_id) b.instance_id, b.preset_id
    FROM builds b
    WHERE b.transition = 'start' AND b.preset_id IS NOT NULL
    ORDER BY b.instance_id, b.number DESC
) c
WHERE c.instance_id = i.id;

-- A preset's pool (the live prebuilds whose current preset it is), oldest
-- first: a filtered snapshot reads the pools of its presets, and Claim
-- walks one in claim order. c42fdf75-3097-471c-8c33-fb52454d81c0 is
-- prebuilds.SystemOwner.
CREATE INDEX instances_pool_idx ON instances (preset_id, created_at, id)
    WHERE owner_id = 'c42fdf75-3097-471c-8c33-fb52454d81c0' AND NOT deleted;

-- The builds of a preset, every transition, with the number and transition
-- included: a filtered snapshot counts a preset's first builds (its
-- cumulative counters) from it, and CancelPending finds a preset's queued
-- first builds. It replaces the index of start builds only. Rebuilt without
-- CONCURRENTLY (Migrate runs in a transaction): on a large builds table it
-- blocks writes to builds while it is built.
CREATE INDEX builds_preset_idx_v2 ON builds (preset_id, instance_id) INCLUDE (number, transition)
    WHERE preset_id IS NOT NULL;
DROP INDEX builds_preset_idx;
ALTER INDEX builds_preset_idx_v2 RENAME TO builds_preset_idx;

-- Claim's re-check, made after it locked a candidate: is the instance's
-- latest build still a succeeded start? A VOLATILE function reads with a new
-- snapshot, so, unlike the claiming statement itself, it sees a build (a
-- delete, say) committed after that statement began. PL/pgSQL keeps the
-- query's plan for the session.
CREATE FUNCTION prebuildkit_running(instance uuid) RETURNS boolean
LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    RETURN (SELECT b.transition = 'start' AND b.job_status = 'succeeded'
            FROM builds b WHERE b.instance_id = instance
            ORDER BY b.number DESC LIMIT 1);
END
$$;
