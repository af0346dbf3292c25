DROP FUNCTION prebuildkit_running(uuid);

CREATE INDEX builds_preset_idx_v1 ON builds (preset_id, instance_id)
    WHERE transition = 'start' AND preset_id IS NOT NULL;
DROP INDEX builds_preset_idx;
ALTER INDEX builds_preset_idx_v1 RENAME TO builds_preset_idx;

DROP INDEX instances_pool_idx;
ALTER TABLE instances DROP COLUMN preset_id;
