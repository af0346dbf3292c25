package model

import (
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

var t0 = time.Date(2025, time.June, 2, 0, 0, 0, 0, time.UTC)

func id(key string) uuid.UUID { return uuid.NewSHA1(uuid.NameSpaceOID, []byte(key)) }

func at(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }

// fixture is a world with template t1, active version v1 and preset p1 on it.
func fixture(tb testing.TB, desired int) *World {
	tb.Helper()
	w := &World{}
	must(tb, w.CreateTemplate(prebuilds.Template{ID: id("t1"), Name: "t1", OrganizationID: id("org"), OrganizationName: "org"}))
	must(tb, w.CreateTemplateVersion(prebuilds.TemplateVersion{ID: id("v1"), TemplateID: id("t1"), Name: "v1", CreatedAt: t0}))
	must(tb, w.SetActiveVersion(id("t1"), id("v1")))
	must(tb, w.UpsertPreset(prebuilds.Preset{ID: id("p1"), TemplateVersionID: id("v1"), Name: "p1", Desired: &desired}))
	return w
}

func must(tb testing.TB, err error) {
	tb.Helper()
	if err != nil {
		tb.Fatal(err)
	}
}

// prebuild creates a SystemOwner instance of preset with build #1 at s
// seconds, its job then set to status (pending: left as is).
func prebuild(tb testing.TB, w *World, key, preset string, s int, status prebuilds.JobStatus) {
	tb.Helper()
	must(tb, w.CreateInstance(prebuilds.CreateInstanceParams{
		InstanceID: id(key), OwnerID: prebuilds.SystemOwner, TemplateID: id("t1"), Name: key,
		BuildID: id(key + "/b1"), TemplateVersionID: id("v1"), PresetID: id(preset),
		Transition: prebuilds.TransitionStart, Now: at(s),
	}))
	setJob(tb, w, key+"/b1", status, s)
}

func setJob(tb testing.TB, w *World, build string, status prebuilds.JobStatus, s int) {
	tb.Helper()
	if status == prebuilds.JobPending {
		return
	}
	_, err := w.UpdateJob(prebuilds.UpdateJobParams{BuildID: id(build), Status: status, Now: at(s)})
	must(tb, err)
}

func startBuild(tb testing.TB, w *World, inst, build, preset string, tr prebuilds.Transition, s int) {
	tb.Helper()
	p := prebuilds.StartBuildParams{InstanceID: id(inst), BuildID: id(build), TemplateVersionID: id("v1"), Transition: tr, Now: at(s)}
	if preset != "" {
		p.PresetID = id(preset)
	}
	must(tb, w.StartBuild(p))
}

// params are the snapshot inputs at now with hard limit k (0 = off here, for
// table brevity; the encoding's 0 = default is tested in TestHardLimitK).
func params(now time.Time, k int) prebuilds.SnapshotParams {
	h := prebuilds.HardLimit(k)
	if k == 0 {
		h = prebuilds.NoHardLimit
	}
	return prebuilds.SnapshotParams{Now: now, Lookback: now.Add(-time.Hour), HardLimit: h}
}
