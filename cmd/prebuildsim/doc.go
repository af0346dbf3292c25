// Command prebuildsim runs the real prebuilds.Reconciler on a memstore.Store
// over a simulated fleet, a simulated provisioner and simulated users, on a
// simulated clock, so that an hour of operation takes a fraction of a
// second.
//
// Usage:
//
//	go run ./cmd/prebuildsim [flags]
//	go run ./cmd/prebuildsim -compare -duration 8h -quiet [-chart compare.png]
//	go run ./cmd/prebuildsim -targeted=false   # full passes every -interval only
//	go run ./cmd/prebuildsim -h
//
// # Passes
//
// The simulation reconciles as Reconciler.Run does with a store that has a
// change feed (prebuilds.ChangeFeed), which memstore has: a full pass
// (ReconcileAll) every -interval, and, between them, targeted passes
// (ReconcilePresets) over the presets memstore's feed names — a claim, a
// build reaching a terminal status, a preset or template written (the
// operator's reset, the mid-run roll-out) — -trigger-delay (Config
// TriggerDelay, 25ms by default) after the first change of a burst; changes
// committed within that delay join the same pass. As Run does, it also
// wakes a microsecond after the end of every backoff a pass planned and
// reconciles that preset -trigger-delay later, so a pool held back by
// backoff resumes when the backoff ends. -targeted=false (Config
// DisableChangeFeed) runs the full passes only, as Run does without a feed.
//
// # The fleet
//
// Eight preset groups, one template each (-presets N gives every template
// version N presets of the group):
//
//	web            desired 10; a new template version is activated half-way
//	               through the run: the outdated prebuilds are deleted and
//	               replaced by prebuilds of the new version's presets
//	ci-runner      desired 20, raised to 40 by a schedule during business
//	               hours (09:00-17:59 Monday-Friday, America/New_York)
//	gpu            desired 3, TTL 20m: prebuilds nobody claims expire and
//	               are replaced
//	broken         desired 2, every build fails: backoff, then the hard limit
//	broken-big     desired 40, every build fails: what a broken version of a
//	               big pool costs before the hard limit stops it
//	flaky          desired 4, half the builds fail: backoff, and recovery
//	misconfigured  desired 2, builds fail validation: validation_failed
//	hanging        desired 5, one build in ten never reports (the
//	               provisioner hangs on it): it counts as starting supply
//	               until -build-timeout has the Reconciler fail it as stuck
//
// Healthy groups (web, ci-runner, gpu, hanging) fail -failure-rate of their
// start builds.
//
// # The actors
//
// The provisioner takes jobs from the Reconciler's JobSink (a buffered
// channel; by default twice the fleet's peak desired count, so that no pass
// overflows it: a pass hands off at most one job per create and per
// delete; -sink-buffer sets it, and a full buffer drops the hand-off) and,
// every -poll, from ControlPlane.PendingJobs (oldest first, pages of 100)
// for the hand-offs it missed. It takes a job with UpdateJob(pending →
// running), the store's at-most-once hand-out; a job canceled while queued
// is no longer listed, or fails that take and is skipped. A build takes a
// lognormal duration around -build-time (deletes a third of it), start
// builds fail as their group says, and a succeeded start build is marked
// ready at once. Reports go through Reconciler.ReportJob so validation
// events fire; the late report of a build the Reconciler has failed as
// stuck is refused (ErrInvalidTransition) and counted.
//
// Users claim prebuilds as a Poisson process of -claim-rate × -presets
// claims per minute, spread over the groups in proportion to their static
// desired counts, so every preset sees the same load whatever -presets is;
// a claim that finds no ready prebuild is a miss.
//
// An operator acts on a preset -operator-delay after its hard_limited event:
// it resets the preset (ResetPreset, the admin "try again") and removes its
// failed prebuilds. The reset clears the hard limit under both failure
// policies; removing the failures alone would not under PolicyAdaptive,
// which keeps a failure as evidence after its instance is gone. A preset
// that keeps failing is hard-limited again.
//
// # Output
//
// One progress line per reconcile interval: the pools as the pass found
// them (running/desired, eligible, expired, creating, deleting — read before
// the pass, because the pass deletes expired prebuilds at once), then what it
// did (created, deleted, timed_out) and how many presets it held back
// (backoff; blocked by the hard limit or validation_failed; held to one
// probe or canary at a time, or by -max-creates). Then a summary per group —
// times are per preset, the average over the group's presets — and a
// timeline. A backoff note gives the instant until which creation is held,
// inclusive, and where it comes from: under PolicyCoder the window is
// counted from the newest failed build's creation, so a build that outlasts
// num_failed × -backoff has spent its window by the time it fails, and the
// note reads "this pass only".
//
// Held time (backoff, blocked, held) runs from the pass whose plan held a
// preset's creation back to the next pass, full or targeted, that planned
// the preset. The fill ratio of a group is the time average, sampled every
// -tick, of min(eligible, desired) ÷ desired over its active presets.
//
// Claim → refill is, for each served claim that leaves its pool short, the
// simulated time from the claim to the commit of the create of its
// replacement: every prebuild the Reconciler creates for a preset refills
// the oldest of its claims still waiting. A claim that takes a surplus
// prebuild (the pool is still at its desired count) waits for nothing
// (unneeded); a claim whose replacement stops being due — the schedule
// lowered desired, the version was replaced — leaves the queue unrefilled
// (obviated); claims still waiting at the end are counted apart. The
// summary gives, per group and over the fleet, the refilled claims and the
// p50, p99 and maximum of their latency. With targeted passes a claim in a
// healthy pool is refilled -trigger-delay after it (or at once, by a full
// pass at the claim's instant); interval-only, at the next full pass. The
// tail is the time pools spend held back (backoff, a canary or probe in
// flight, the hard limit), which no pass shortens.
//
// # Comparing policies and modes
//
// -compare runs the same seed five times: a failure-free ceiling
// (-failure-rate 0 under PolicyCoder, which never holds a healthy pool back
// when nothing fails, while PolicyAdaptive's canary would delay the cold
// start; broken, broken-big, flaky, misconfigured and hanging's hangs stay
// as they are), then PolicyCoder, then PolicyAdaptive — these three in the
// mode the flags set, targeted passes by default — and then each policy in
// the other mode. It prints one table per group of the first three runs
// (fill ratio, claims served and missed, start and failed builds, hard
// limits, failed builds per hard limit — on average and in the worst cycle
// between resets —, backoff, blocked and held time, claim → refill p50,
// p99 and maximum) with a verdict on fill, claims missed, failed builds and
// backoff, then the targets: for ci-runner, fill ÷ ceiling fill under each
// policy and adaptive's backoff ÷ coder's; for broken-big, failed builds
// per hard limit against K; and every figure on which adaptive is behind.
// Last, the modes side by side: per group and over the fleet, for each
// policy with targeted passes and interval-only, the refilled claims, the
// p50, p99 and maximum of their latency, the fill ratio and the claims
// missed.
//
// -chart FILE (.png or .svg) draws, per group, desired and eligible
// prebuilds over time, missed claims, and backoff, blocked and held spans;
// with -compare the coder panel sits above the adaptive one and the
// ceiling's eligible prebuilds are drawn in grey. The plotting library
// (gonum.org/v1/plot) is imported here only: the library packages never
// import it.
//
// # Determinism
//
// A run is a function of its flags: every random draw comes from generators
// seeded by -seed, the simulation is one goroutine, the Reconciler executes
// one preset plan at a time (MaxConcurrency 1), and the UUID generator of
// github.com/google/uuid is seeded too (uuid.SetRand) for the duration of the
// run, because the Reconciler names instances with uuid.New and ties between
// prebuilds created in the same pass are broken by ID. The runs of -compare
// are sequential.
//
// The targeted passes keep it so. The simulation does not run Reconciler.Run:
// Run follows the feed on a goroutine of its own and arms a timer per
// burst, and a single-threaded simulation cannot tell when that goroutine
// has taken a change and armed its timer, so its passes would land at
// instants that depend on scheduling. Nor does the simulated clock implement
// timers for the same reason. Instead the simulation subscribes to
// memstore's feed (Store.Changes) itself and drains it synchronously after
// every step: memstore delivers changes from a goroutine of its own, so it
// writes to a hidden preset that has no desired count (in no snapshot, never
// planned) and whose ID, uuid.Max, sorts after every other, then reads
// until that change arrives. memstore hands a subscriber its changes in
// commit order, burst by burst, each burst in preset-ID order, so every
// change committed before the barrier has arrived by then. What is drained
// is the set of changed presets — the feed may coalesce a preset's changes
// or not, which the set does not see — and the targeted pass runs at the
// simulated instant the trigger delay sets, between two steps if need be.
// The barrier's template, version and preset have fixed IDs, so a run with
// -targeted=false draws the same UUIDs it did before targeted passes
// existed.
package main
