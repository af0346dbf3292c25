-- The shard pass log (prebuilds.ShardPassLog): per lock key (one deployment
-- of replicas) and shard, how many passes have begun and the number of the
-- newest that completed, so that a replica skips a shard another replica
-- passed after its own full pass began. Rows are created by the first pass
-- of a shard; a missing row is a shard never passed.
CREATE TABLE shard_passes (
    lock_key    bigint NOT NULL,
    shard_count integer NOT NULL CHECK (shard_count BETWEEN 2 AND 65535),
    shard_index integer NOT NULL CHECK (shard_index >= 0 AND shard_index < shard_count),
    begun       bigint NOT NULL CHECK (begun > 0),
    completed   bigint NOT NULL DEFAULT 0 CHECK (completed >= 0 AND completed <= begun),
    PRIMARY KEY (lock_key, shard_count, shard_index)
);
