-- The catalogue (templates, template_versions, presets) is append-only: the
-- store never deletes a row of it (a template is deleted by setting its
-- deleted flag) nor changes an id, and these triggers reject DELETE,
-- TRUNCATE and UPDATE of id from anyone else, so an id that instances and
-- builds refer to can never disappear.
--
-- With the rows permanent, the foreign keys from instances and builds to the
-- catalogue could only catch an insert naming a row that never existed, and
-- every write of the store already checks its references in the same
-- statement (CreatePrebuilds) or transaction (CreateInstance, StartBuild).
-- Each of those checks is a row-level trigger running a query per inserted
-- row: three of them were ~17 µs of the ~38 µs a created prebuild costs the
-- server (bench/NOTES.md). They are dropped; builds keep their foreign key to
-- instances, which are inserted by the same statements.

CREATE FUNCTION prebuildkit_catalogue_permanent() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'prebuildkit: rows of % are never deleted and their ids never change (instances and builds refer to them)', TG_TABLE_NAME
        USING ERRCODE = 'restrict_violation',
              HINT = 'Use ControlPlane.DeleteTemplate (it sets templates.deleted), or UpsertPreset with Desired 0 to stop prebuilding a preset.';
END
$$;

CREATE TRIGGER templates_permanent BEFORE DELETE OR TRUNCATE OR UPDATE OF id ON templates
    FOR EACH STATEMENT EXECUTE FUNCTION prebuildkit_catalogue_permanent();
CREATE TRIGGER template_versions_permanent BEFORE DELETE OR TRUNCATE OR UPDATE OF id ON template_versions
    FOR EACH STATEMENT EXECUTE FUNCTION prebuildkit_catalogue_permanent();
CREATE TRIGGER presets_permanent BEFORE DELETE OR TRUNCATE OR UPDATE OF id ON presets
    FOR EACH STATEMENT EXECUTE FUNCTION prebuildkit_catalogue_permanent();

ALTER TABLE instances DROP CONSTRAINT instances_template_id_fkey;
ALTER TABLE builds DROP CONSTRAINT builds_template_version_id_fkey;
ALTER TABLE builds DROP CONSTRAINT builds_preset_id_fkey;

-- The current-preset pick of the snapshot no longer has an index of its own:
-- the planner reads the latest-build index with a filter on the included
-- transition and preset_id, or scans and sorts builds, whichever it costs
-- lower (either way the result is the same: (instance_id, number) is
-- unique). Every build costs one index insertion less.
CREATE UNIQUE INDEX builds_instance_number_key_v2 ON builds (instance_id, number DESC)
    INCLUDE (id, transition, job_status, created_at, preset_id);
DROP INDEX builds_current_preset_idx;
DROP INDEX builds_instance_number_key;
ALTER INDEX builds_instance_number_key_v2 RENAME TO builds_instance_number_key;
