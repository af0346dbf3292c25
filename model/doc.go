// Package model is the reference model of prebuildkit: the executable
// specification that stores and the planner are checked against.
//
// It is deliberately naive. A World keeps the whole state in plain slices,
// every question is answered by scanning them, and nothing is indexed or
// cached. The semantics it implements are specified in docs/spec.md: its
// operations mirror prebuilds.ControlPlane and the write side of
// prebuilds.Store with the errors and check order of "Store operations";
// World.Snapshot follows "The snapshot" literally; World.Plan computes the
// rules of "The planner" straight from the state, without going through a
// snapshot.
//
// The model shares plain types, constants and sentinel errors with package
// prebuilds and calls none of its functions: not the planner, the snapshot
// index, prebuilds.ValidatePreset, prebuilds.DesiredAt, prebuilds.Expired,
// nor even prebuilds.Micro or prebuilds.CompareUUID (it has its own micro and
// compareUUID): presets are validated by the model's own ValidatePreset and schedules are evaluated here with
// robfig/cron's Next instead of prebuilds' bitmask matching, so each
// implementation checks the other.
//
// Decisions the contract leaves open:
//
//   - Times passed to operations are stored at microsecond precision in
//     UTC (what prebuilds.Micro(t) gives).
//   - Plan for a preset that does not exist, or whose desired count is nil,
//     is an empty plan naming the preset (such presets are not planned).
//   - Plan takes the planning instant as now; of its SnapshotParams only
//     Lookback and HardLimit are read.
//   - An instance counts as "created as a prebuild" when CreateInstance or
//     CreatePrebuilds gave it owner SystemOwner; the model remembers that
//     and whether it was claimed (Instance.CreatedAsPrebuild, Claimed).
//   - Schedules are tried in order and the first match wins, so a stored
//     cron expression that cannot be parsed is only reported (ScheduleInvalid,
//     static desired) when no earlier schedule matched, as in prebuilds.DesiredAt.
//   - Snapshot rows come back in prebuilds.SortSnapshot's canonical order.
//
// World is a value type: Clone gives an independent copy, so a state machine
// can keep one model per step. A World is not safe for concurrent use.
package model
