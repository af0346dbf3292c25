// Package scenario holds the scenario table of the conformance suite and the
// vocabulary it is written in: symbolic keys ("t1", "v1", "p1", "i1",
// "i1/b2") that become deterministic UUIDs through ID, operations (Op) that
// apply the same change to the reference model or to a store's control
// plane, and the hand-written plans each scenario expects.
//
// It is internal: store authors meet it only through conformance.Run, which
// replays every scenario into their store; prebuilds' tests check the
// planner against the same table. Every scenario and check records where it
// is defined (Pos), so that a failure can point at it.
package scenario
