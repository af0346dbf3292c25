-- prebuildkit schema, version 1.
--
-- Every timestamp is timestamptz (microsecond precision), written by the
-- application from an injected clock: no column defaults to now().

CREATE TYPE build_transition AS ENUM ('start', 'stop', 'delete');
CREATE TYPE job_status AS ENUM ('pending', 'running', 'succeeded', 'failed', 'canceling', 'canceled');
CREATE TYPE failure_kind AS ENUM ('transient', 'validation');
CREATE TYPE preset_status AS ENUM ('healthy', 'hard_limited', 'validation_failed');

CREATE TABLE templates (
    id                uuid PRIMARY KEY,
    organization_id   uuid    NOT NULL,
    organization_name text    NOT NULL DEFAULT '',
    name              text    NOT NULL CHECK (name <> ''),
    -- NULL until a version is activated; a version of this template (FK
    -- added below, once template_versions exists).
    active_version_id uuid,
    deprecated        boolean NOT NULL DEFAULT false,
    deleted           boolean NOT NULL DEFAULT false
);

CREATE TABLE template_versions (
    id          uuid PRIMARY KEY,
    template_id uuid        NOT NULL REFERENCES templates (id),
    name        text        NOT NULL DEFAULT '',
    created_at  timestamptz NOT NULL,
    UNIQUE (template_id, id)
);

-- The active version must be a version of the same template.
ALTER TABLE templates
    ADD CONSTRAINT templates_active_version_fk
    FOREIGN KEY (id, active_version_id) REFERENCES template_versions (template_id, id);

CREATE TABLE presets (
    id                  uuid PRIMARY KEY,
    template_version_id uuid          NOT NULL REFERENCES template_versions (id),
    name                text          NOT NULL CHECK (name <> ''),
    -- NULL: prebuilds never configured for this preset.
    desired             integer       CHECK (desired >= 0),
    ttl_micros          bigint        NOT NULL DEFAULT 0 CHECK (ttl_micros >= 0),
    invalidated_at      timestamptz,
    timezone            text          NOT NULL DEFAULT '',
    parameters          jsonb         NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(parameters) = 'object'),
    status              preset_status NOT NULL DEFAULT 'healthy',
    reset_at            timestamptz,
    UNIQUE (template_version_id, name)
);

-- The snapshot reads only presets whose desired count is set.
CREATE INDEX presets_configured_idx ON presets (id) WHERE desired IS NOT NULL;

-- A preset's schedules, tried in position order.
CREATE TABLE preset_schedules (
    preset_id uuid    NOT NULL REFERENCES presets (id) ON DELETE CASCADE,
    position  integer NOT NULL CHECK (position >= 0),
    cron      text    NOT NULL CHECK (cron <> ''),
    instances integer NOT NULL CHECK (instances >= 0),
    PRIMARY KEY (preset_id, position)
);

CREATE TABLE instances (
    id                  uuid PRIMARY KEY,
    owner_id            uuid        NOT NULL,
    template_id         uuid        NOT NULL REFERENCES templates (id),
    name                text        NOT NULL DEFAULT '',
    created_at          timestamptz NOT NULL,
    ready               boolean     NOT NULL DEFAULT false,
    deleted             boolean     NOT NULL DEFAULT false,
    -- true when the instance was created owned by SystemOwner (a prebuild),
    -- whoever owns it now; feeds the cumulative counters.
    created_as_prebuild boolean     NOT NULL,
    -- set when a prebuild was claimed; only prebuilds are ever claimed.
    claimed_at          timestamptz,
    CHECK (claimed_at IS NULL OR created_as_prebuild)
);

-- Live prebuilds (SystemOwner, not deleted), oldest first: the snapshot's
-- instance side once claimed and deleted instances outnumber them, and
-- Claim's order. c42fdf75-3097-471c-8c33-fb52454d81c0 is
-- prebuilds.SystemOwner.
CREATE INDEX instances_live_prebuilds_idx ON instances (created_at, id)
    WHERE owner_id = 'c42fdf75-3097-471c-8c33-fb52454d81c0' AND NOT deleted;

CREATE TABLE builds (
    id                  uuid PRIMARY KEY,
    instance_id         uuid             NOT NULL REFERENCES instances (id),
    number              integer          NOT NULL CHECK (number >= 1),
    template_version_id uuid             NOT NULL REFERENCES template_versions (id),
    preset_id           uuid             REFERENCES presets (id),
    transition          build_transition NOT NULL,
    job_status          job_status       NOT NULL DEFAULT 'pending',
    failure_kind        failure_kind,
    parameters          jsonb            NOT NULL DEFAULT '{}' CHECK (jsonb_typeof(parameters) = 'object'),
    created_at          timestamptz      NOT NULL,
    completed_at        timestamptz,
    CHECK (failure_kind IS NULL OR job_status = 'failed'),
    CHECK ((completed_at IS NOT NULL) = (job_status IN ('succeeded', 'failed', 'canceled')))
);

-- One build per (instance, number). Newest first, so that the snapshot's
-- latest build per instance (DISTINCT ON (instance_id) ... ORDER BY
-- instance_id, number DESC) streams from this index without a sort; the
-- included columns make that an index-only scan.
CREATE UNIQUE INDEX builds_instance_number_key ON builds (instance_id, number DESC)
    INCLUDE (id, transition, job_status, created_at);

-- Current preset = preset of the most recent start build that has one.
CREATE INDEX builds_current_preset_idx ON builds (instance_id, number DESC) INCLUDE (preset_id)
    WHERE transition = 'start' AND preset_id IS NOT NULL;
-- Claim and CancelPending find an instance's start builds by preset.
CREATE INDEX builds_preset_idx ON builds (preset_id, instance_id)
    WHERE transition = 'start' AND preset_id IS NOT NULL;
-- PendingJobs: the queue of pending jobs, oldest first. Pending builds are
-- few (a job leaves the index once a provisioner takes it), so the index
-- stays small however many builds the table holds.
CREATE INDEX builds_pending_idx ON builds (created_at, id) WHERE job_status = 'pending';

-- Global settings: exactly one row.
CREATE TABLE settings (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    paused    boolean NOT NULL DEFAULT false
);
INSERT INTO settings (singleton, paused) VALUES (true, false);
