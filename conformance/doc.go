// Package conformance is the test suite every prebuilds store must pass:
// memstore, pgstore, and yours. The rules it checks are those of
// docs/spec.md; the reference model (package
// model) is the oracle.
//
// # Running it against your store
//
// Give Run a constructor that returns a fresh, empty, isolated store each
// time it is called (a new database or schema per call for SQL stores):
//
//	func TestConformance(t *testing.T) {
//		conformance.Run(t, conformance.Harness{NewStore: func(t *testing.T) conformance.Store { return mystore.New(newTestDB(t)) }})
//	}
//
// newTestDB is your helper (one database per call, dropped in t.Cleanup).
// Nothing else is needed: no clock, no test dependency beyond this package.
// Then run go test -race -run TestConformance ./yourpkg, or one group or
// case, e.g. -run 'TestConformance/Claim/' or
// -run 'TestConformance/Snapshot/Backoff/NumFailed'. The groups run one
// after the other, the cases of a group in parallel unless Harness.Serial
// is set. Add goleak to the package's TestMain if your store starts
// goroutines.
//
// # What it runs
//
// Subtests are grouped by store operation and rule; their names are stable.
// Under TestConformance (the test that calls Run):
//
//	Snapshot/<scenario>              every scenario of the table (both failure policies, stuck
//	                                 builds, the create budget, every boundary) replayed into the
//	                                 store: at every
//	                                 check its snapshot must equal the model's (after
//	                                 prebuilds.SortSnapshot) and the planner fed that snapshot
//	                                 must produce the hand-written plan
//	Snapshot/RankTieBreak/...        builds created in the same microsecond rank by build ID
//	Snapshot/Rows/<row>/<case>       one rule of a snapshot row on a set-up the scenarios do
//	                                 not make, or at parameters no scenario configuration gives
//	                                 (Backoffs/Scope/Deprecated, Backoffs/Lookback/NanosecondAfter,
//	                                 HardLimited/IgnoresLookback, InProgress/WhatCounts,
//	                                 PendingInactive/WhatCounts, Counters/WhatCounts, ...): the
//	                                 snapshot must equal the model's and meet the rule
//	Reconcile/<scenario>             the real prebuilds.Reconciler on the same scenarios: on a
//	                                 fresh replay per check, one pass must write exactly the plan
//	                                 (creates per preset, deleted instances, pending builds
//	                                 canceled, hard-limit status changes and their events); then
//	                                 on one store, a pass at every check, the model as the oracle
//	Reconcile/Pause/WritesNothing    a paused pass writes nothing, not even deletes
//	Claim/Exclusivity/...            N concurrent claimers of M ready prebuilds get min(N, M)
//	Claim/VsDelete                   a claim racing a delete of the same prebuild: one wins
//	Claim/OldestFirst                claims take the oldest claimable (created_at, then ID)
//	Claim/NeverClaimable/<state>     not ready, starting, failed, stopping, deleted, inactive,
//	                                 claimed, user-owned, other preset, moved to another preset:
//	                                 never handed out
//	Claim/Boundary/<edge>/<side>     claims on each side of the TTL and invalidation edges
//	                                 (TTL/Inside: aged exactly ttl is handed out; TTL/Outside:
//	                                 aged ttl + 1µs is refused; Invalidation/Inside and /Outside:
//	                                 created exactly at invalidated_at, or 1µs before)
//	Lock/...                         one holder at a time, never blocking; fn's error returned;
//	                                 status compare-and-set; racing replicas make one status
//	                                 change and one event
//	Lock/SnapshotWithoutLock         Store.Snapshot answers exactly while another holder is in
//	                                 its pass, and keeps nobody from the lock
//	Lock/Shards                      (stores with prebuilds.ShardLocker) one holder per shard;
//	                                 shards' locks independent of each other and of the
//	                                 cluster-wide lock
//	Lock/ShardPassLog                (stores with prebuilds.ShardPassLog) pass numbers from 1
//	                                 per shard and shard count, the newest completed never
//	                                 decreasing; bad input refused, nothing changed
//	ChangeFeed/CommitsInOrder        (stores with prebuilds.ChangeFeed) the preset of each claim,
//	                                 terminal job update and preset write, after the commit, in
//	                                 order; nothing for failed writes or the Reconciler's own
//	PendingJobs/...                  order, limit, exclusions, bad limits, racing takers
//	Errors/<operation>/<case>        the sentinel of docs/spec.md, and no other, for each failing
//	                                 case of each operation (UpsertPreset/Invalid/... for
//	                                 prebuilds.ErrInvalidPreset; Order/<a>Before<b> when two
//	                                 cases meet: the first check wins; UpdateJob/<From>To<To> for
//	                                 every refused job transition), and nothing changed: every
//	                                 preset, instance and build reads back as the model has it
//	Effects/<operation>/<case>       a call that succeeds returns what the model's returns and
//	                                 writes what it writes (every preset, instance and build read
//	                                 back alike, times in UTC; snapshots equal): idempotent
//	                                 deletes and removals, preset updates, the delete build's
//	                                 version, CancelPending, SetPresetStatus's compare-and-set,
//	                                 UpdateJob/Transition/<From>To<To> for every allowed job
//	                                 transition and UpdateJob/ValidationFailure/...
//	StateMachine/Reconcile           random operations and passes of the real Reconciler on the
//	                                 store and the model; after every step the snapshots must be
//	                                 equal, every operation must fail alike (same sentinel), every
//	                                 pass must write exactly the model's plan
//	StateMachine/Snapshot            random operations, snapshots compared at random parameters
//	                                 (either failure policy, a stuck-build cut-off, filtered to
//	                                 random presets or a random shard, read under the lock or
//	                                 with Store.Snapshot)
//
// The scenarios are named by rule, e.g. Basic/NetNew, Supply/ClaimedNotSupply,
// Backoff/NumFailed, HardLimit/Reached, Expiry/TTL, Schedules/Monday,
// Timezone/LosAngelesAcrossDST. Every rule with a boundary has a scenario on
// each side of it, Boundary/<rule>/Inside (the object sits exactly on the
// inclusive edge and counts) and Boundary/<rule>/Outside (1µs beyond it,
// and does not), each with evidence well inside and well outside the
// window too: Lookback (created_at ≥ now − BackoffLookback), BackoffUntil
// (now ≤ until backs off), BackoffRank (a failure ranked desired vs
// desired + 1), HardLimit (the K newest builds all failed), TTL
// (now − created_at > ttl), Invalidation (created_at < invalidated_at),
// ScheduleMinute (the last µs of a matching minute and the first of the
// next) and Reset (created_at ≥ reset_at). Backoff/AttributedThroughCurrentPreset
// fixes that a failure counts toward the instance's current preset, even a
// preset-less start on an inactive version of the template.
//
// # Reading a failure
//
// Every failure says, in its first lines, the rule broken in one plain
// sentence; where the case is defined ("case: file:line", relative to this
// module, for a scenario the line of the check); and the objects involved,
// by scenario key with the first eight hex digits of the UUID beside
// ("objects: wanted b (630ffea9), store took c (a1d5074f)"). Then come the
// details: -model +store (or -want +got) diffs with every ID named the same
// way. A case gathers everything it found into one failure; a Reconcile
// case whose store snapshot already differs from the model's says so in one
// line and points at the Snapshot case with the diff. The suite's mock
// clocks log nothing, whatever quartz version your module resolves.
//
// The state machines try Harness.StateMachineChecks random sequences
// (default 100; the -rapid.checks flag wins). A failing sequence is shrunk to
// a minimal one, saved under testdata/rapid of the package running the test
// and replayed first on the next run. The failure prints the shrunk
// operation sequence in the same vocabulary of keys (leaving out operations
// that changed nothing: refused alike by the store and the model, or
// read-only) and how to rerun it. When fixed cases have failed already, a
// state machine that fails too only states the rule and how to rerun it
// alone: it most likely found the same misbehaviour.
package conformance
