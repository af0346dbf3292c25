-- A benchmark-scale fleet for EXPLAIN: 1,000 templates with two versions
-- (v2 active), 10 presets each (5 on v2, active; 5 on v1, inactive) =
-- 10,000 presets with desired 5, and 5 prebuilds per preset = 50,000
-- instances. Build #1 is a start whose job is succeeded (70%), pending
-- (10%), running (5%) or failed (5%); 10% have a build #2 (stop pending or
-- delete running); 2.5% are deleted. Every instance's current preset
-- (instances.preset_id) is its build #1's. IDs are md5-derived, so the
-- fleet is the same on every run.
INSERT INTO templates (id, organization_id, organization_name, name)
SELECT md5('tpl' || g)::uuid, md5('org')::uuid, 'org', 'tpl' || g
FROM generate_series(1, 1000) g;

INSERT INTO template_versions (id, template_id, name, created_at)
SELECT md5('ver' || g || '-' || v)::uuid, md5('tpl' || g)::uuid, 'v' || v, '2026-03-02 10:00:00+00'
FROM generate_series(1, 1000) g, generate_series(1, 2) v;

UPDATE templates SET active_version_id = md5('ver' || substr(name, 4) || '-2')::uuid WHERE name ~ '^tpl[0-9]+$';

INSERT INTO presets (id, template_version_id, name, desired)
SELECT md5('preset' || g || '-' || p)::uuid,
       md5('ver' || g || '-' || CASE WHEN p <= 5 THEN 2 ELSE 1 END)::uuid,
       'p' || p, 5
FROM generate_series(1, 1000) g, generate_series(1, 10) p;

CREATE TEMP TABLE fleet AS
SELECT n, (n - 1) / 50 + 1 AS g, ((n - 1) / 5) % 10 + 1 AS p,
       '2026-03-02 10:00:00+00'::timestamptz + n * interval '1 ms' AS t
FROM generate_series(1, 50000) n;

INSERT INTO instances (id, owner_id, template_id, name, created_at, ready, deleted, created_as_prebuild, preset_id)
SELECT md5('inst' || n)::uuid, 'c42fdf75-3097-471c-8c33-fb52454d81c0', md5('tpl' || g)::uuid, 'i' || n, t,
       n % 3 <> 0, n % 40 = 1, true, md5('preset' || g || '-' || p)::uuid
FROM fleet;

INSERT INTO builds (id, instance_id, number, template_version_id, preset_id, transition, job_status, created_at, completed_at)
SELECT md5('b1-' || n)::uuid, md5('inst' || n)::uuid, 1,
       md5('ver' || g || '-' || CASE WHEN p <= 5 THEN 2 ELSE 1 END)::uuid,
       md5('preset' || g || '-' || p)::uuid, 'start',
       (CASE WHEN n % 20 IN (14, 15) THEN 'pending' WHEN n % 20 = 16 THEN 'failed'
             WHEN n % 20 = 17 THEN 'running' ELSE 'succeeded' END)::job_status,
       t, CASE WHEN n % 20 IN (14, 15, 17) THEN NULL ELSE t END
FROM fleet;

INSERT INTO builds (id, instance_id, number, template_version_id, preset_id, transition, job_status, created_at)
SELECT md5('b2-' || n)::uuid, md5('inst' || n)::uuid, 2,
       md5('ver' || g || '-' || CASE WHEN p <= 5 THEN 2 ELSE 1 END)::uuid, NULL,
       (CASE WHEN n % 20 = 18 THEN 'stop' ELSE 'delete' END)::build_transition,
       (CASE WHEN n % 20 = 18 THEN 'pending' ELSE 'running' END)::job_status,
       t + interval '1 second'
FROM fleet WHERE n % 20 IN (18, 19);

DROP TABLE fleet;
ANALYZE;
