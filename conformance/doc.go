// Package conformance holds what every prebuilds store must agree on: the
// planning scenarios of DESIGN §8 as data (Scenarios, with the Op steps that
// replay them into the reference model or into any prebuilds.ControlPlane),
// checked here against the model and the pure planner.
package conformance
