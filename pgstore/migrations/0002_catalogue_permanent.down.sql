CREATE UNIQUE INDEX builds_instance_number_key_v1 ON builds (instance_id, number DESC)
    INCLUDE (id, transition, job_status, created_at);
DROP INDEX builds_instance_number_key;
ALTER INDEX builds_instance_number_key_v1 RENAME TO builds_instance_number_key;
CREATE INDEX builds_current_preset_idx ON builds (instance_id, number DESC) INCLUDE (preset_id)
    WHERE transition = 'start' AND preset_id IS NOT NULL;

ALTER TABLE instances ADD CONSTRAINT instances_template_id_fkey
    FOREIGN KEY (template_id) REFERENCES templates (id);
ALTER TABLE builds ADD CONSTRAINT builds_template_version_id_fkey
    FOREIGN KEY (template_version_id) REFERENCES template_versions (id);
ALTER TABLE builds ADD CONSTRAINT builds_preset_id_fkey
    FOREIGN KEY (preset_id) REFERENCES presets (id);

DROP TRIGGER presets_permanent ON presets;
DROP TRIGGER template_versions_permanent ON template_versions;
DROP TRIGGER templates_permanent ON templates;
DROP FUNCTION prebuildkit_catalogue_permanent();
