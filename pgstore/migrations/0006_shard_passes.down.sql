DROP TABLE shard_passes;
