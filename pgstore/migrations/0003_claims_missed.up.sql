-- Claims that found nothing claimable, per preset: a counter kept by the
-- store so that every replica exports the same prebuilds_claims_missed_total.
-- Its own narrow table, so that a burst of missed claims updates a small row
-- instead of the preset's.
CREATE TABLE preset_claim_misses (
    preset_id uuid PRIMARY KEY REFERENCES presets (id),
    misses    bigint NOT NULL CHECK (misses > 0)
);
