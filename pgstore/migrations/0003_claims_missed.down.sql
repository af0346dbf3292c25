DROP TABLE preset_claim_misses;
