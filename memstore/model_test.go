package memstore_test

import (
	"context"
	"errors"
	"fmt"
	"reflect"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"
	"pgregory.net/rapid"

	"github.com/prebuildkit/prebuildkit/memstore"
	"github.com/prebuildkit/prebuildkit/model"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// pool returns n UUIDs whose first byte encodes kind and index, so byte
// order is meaningful and pools never collide.
func pool(kind byte, n int) []uuid.UUID {
	out := make([]uuid.UUID, n)
	for i := range out {
		out[i][0] = byte(i*7%n) + 1 // not in creation order
		out[i][1] = kind
		out[i][15] = byte(i)
	}
	return out
}

// agreement drives a memstore and the reference model with the same random
// operations and requires the same results, errors and snapshots.
type agreement struct {
	ctx       context.Context
	s         *memstore.Store
	w         *model.World
	now       time.Time
	templates []uuid.UUID
	versions  []uuid.UUID
	presets   []uuid.UUID
	instances []uuid.UUID
	users     []uuid.UUID
	builds    []uuid.UUID // every build ID handed out
	nextBuild int
}

var cmpOpts = cmp.Options{cmpopts.EquateEmpty()}

func sentinel(err error) error {
	for _, s := range []error{prebuilds.ErrNotFound, prebuilds.ErrConflict, prebuilds.ErrNoClaimablePrebuild,
		prebuilds.ErrInvalidPreset, prebuilds.ErrInvalidArgument, prebuilds.ErrInvalidTransition} {
		if errors.Is(err, s) {
			return s
		}
	}
	return err
}

func (a *agreement) same(t *rapid.T, op string, storeRes, modelRes any, storeErr, modelErr error) {
	t.Helper()
	if (storeErr == nil) != (modelErr == nil) || sentinel(storeErr) != sentinel(modelErr) {
		t.Fatalf("%s: store error %v, model error %v", op, storeErr, modelErr)
	}
	if storeErr == nil && !reflect.DeepEqual(modelRes, storeRes) { // fast path; cmp decides
		if d := cmp.Diff(modelRes, storeRes, cmpOpts); d != "" {
			t.Fatalf("%s: result differs (-model +store):\n%s", op, d)
		}
	}
}

func (a *agreement) buildID(t *rapid.T) uuid.UUID {
	if len(a.builds) > 0 && rapid.IntRange(0, 9).Draw(t, "reuseBuild") == 0 {
		return rapid.SampledFrom(a.builds).Draw(t, "oldBuild")
	}
	var id uuid.UUID
	id[0] = rapid.Byte().Draw(t, "buildByte")
	id[1] = 0xbb
	id[14], id[15] = byte(a.nextBuild>>8), byte(a.nextBuild)
	a.nextBuild++
	a.builds = append(a.builds, id)
	return id
}

func (a *agreement) maybe(t *rapid.T, ids []uuid.UUID, label string) uuid.UUID {
	switch rapid.IntRange(0, 12).Draw(t, label+"Kind") {
	case 0:
		return uuid.Nil
	case 1:
		return uuid.New() // never exists
	}
	return rapid.SampledFrom(ids).Draw(t, label)
}

func (a *agreement) transition(t *rapid.T) prebuilds.Transition {
	return rapid.SampledFrom([]prebuilds.Transition{prebuilds.TransitionStart, prebuilds.TransitionStart,
		prebuilds.TransitionStop, prebuilds.TransitionDelete, "bogus"}).Draw(t, "transition")
}

func (a *agreement) ops() map[string]func(*rapid.T) {
	ops := a.baseOps()
	// Weight the operations that move prebuilds through their life.
	for _, name := range []string{"UpdateJob", "CreatePrebuilds", "SetReady", "Advance"} {
		for i := range 3 {
			ops[fmt.Sprintf("%s#%d", name, i)] = ops[name]
		}
	}
	return ops
}

func (a *agreement) baseOps() map[string]func(*rapid.T) {
	return map[string]func(*rapid.T){
		"CreateTemplate": func(t *rapid.T) {
			tp := prebuilds.Template{
				ID: a.maybe(t, a.templates, "template"), Name: rapid.SampledFrom([]string{"", "t"}).Draw(t, "name"),
				OrganizationName: "org", Deprecated: rapid.Bool().Draw(t, "deprecated"),
			}
			a.same(t, "CreateTemplate", nil, nil, a.s.CreateTemplate(a.ctx, tp), a.w.CreateTemplate(tp))
		},
		"CreateTemplateVersion": func(t *rapid.T) {
			v := prebuilds.TemplateVersion{ID: a.maybe(t, a.versions, "version"), TemplateID: a.maybe(t, a.templates, "template"), CreatedAt: a.now}
			a.same(t, "CreateTemplateVersion", nil, nil, a.s.CreateTemplateVersion(a.ctx, v), a.w.CreateTemplateVersion(v))
		},
		"SetActiveVersion": func(t *rapid.T) {
			tp, v := a.maybe(t, a.templates, "template"), a.maybe(t, a.versions, "version")
			a.same(t, "SetActiveVersion", nil, nil, a.s.SetActiveVersion(a.ctx, tp, v), a.w.SetActiveVersion(tp, v))
		},
		"SetTemplateDeprecated": func(t *rapid.T) {
			tp, b := a.maybe(t, a.templates, "template"), rapid.Bool().Draw(t, "deprecated")
			a.same(t, "SetTemplateDeprecated", nil, nil, a.s.SetTemplateDeprecated(a.ctx, tp, b), a.w.SetTemplateDeprecated(tp, b))
		},
		"DeleteTemplate": func(t *rapid.T) {
			if rapid.IntRange(0, 3).Draw(t, "rarely") != 0 {
				t.Skip("delete templates rarely")
			}
			tp := a.maybe(t, a.templates, "template")
			a.same(t, "DeleteTemplate", nil, nil, a.s.DeleteTemplate(a.ctx, tp), a.w.DeleteTemplate(tp))
		},
		"UpsertPreset": func(t *rapid.T) {
			p := prebuilds.Preset{
				ID: a.maybe(t, a.presets, "preset"), TemplateVersionID: a.maybe(t, a.versions, "version"),
				Name:          rapid.SampledFrom([]string{"a", "b", ""}).Draw(t, "name"),
				TTL:           rapid.SampledFrom([]time.Duration{0, 0, time.Minute, time.Hour}).Draw(t, "ttl"),
				InvalidatedAt: rapid.SampledFrom([]time.Time{{}, a.now.Add(-time.Minute)}).Draw(t, "invalidatedAt"),
				Status:        rapid.SampledFrom([]prebuilds.PresetStatus{"", prebuilds.PresetHardLimited, prebuilds.PresetValidationFailed}).Draw(t, "status"),
				Parameters:    rapid.SampledFrom([]map[string]string{nil, {}, {"k": "v"}}).Draw(t, "params"),
			}
			if d := rapid.IntRange(-2, 3).Draw(t, "desired"); d >= -1 {
				p.Desired = ptr(d)
			}
			a.same(t, "UpsertPreset", nil, nil, a.s.UpsertPreset(a.ctx, p), a.w.UpsertPreset(p))
		},
		"InvalidatePreset": func(t *rapid.T) {
			p := a.maybe(t, a.presets, "preset")
			at := a.now.Add(-time.Duration(rapid.IntRange(0, 3).Draw(t, "ago")) * 1500 * time.Nanosecond)
			a.same(t, "InvalidatePreset", nil, nil, a.s.InvalidatePreset(a.ctx, p, at), a.w.InvalidatePreset(p, at))
		},
		"ResetPreset": func(t *rapid.T) {
			p := a.maybe(t, a.presets, "preset")
			a.same(t, "ResetPreset", nil, nil, a.s.ResetPreset(a.ctx, p, a.now), a.w.ResetPreset(p, a.now))
		},
		"SetPaused": func(t *rapid.T) {
			b := rapid.IntRange(0, 4).Draw(t, "paused") == 0
			a.same(t, "SetPaused", nil, nil, a.s.SetPaused(a.ctx, b), a.w.SetPaused(b))
		},
		"CreateInstance": func(t *rapid.T) {
			p := prebuilds.CreateInstanceParams{
				InstanceID: a.maybe(t, a.instances, "instance"), OwnerID: a.maybe(t, a.users, "owner"),
				TemplateID: a.maybe(t, a.templates, "template"), Name: "i", BuildID: a.buildID(t),
				TemplateVersionID: a.maybe(t, a.versions, "version"), Transition: a.transition(t),
				Parameters: map[string]string{"x": "y"}, Now: a.now,
			}
			if rapid.Bool().Draw(t, "withPreset") {
				p.PresetID = a.maybe(t, a.presets, "preset")
			}
			a.same(t, "CreateInstance", nil, nil, a.s.CreateInstance(a.ctx, p), a.w.CreateInstance(p))
		},
		"CreatePrebuilds": func(t *rapid.T) {
			p := prebuilds.CreatePrebuildsParams{
				PresetID: a.maybe(t, a.presets, "preset"), TemplateVersionID: a.maybe(t, a.versions, "version"), Now: a.now,
			}
			if mp, err := a.w.GetPreset(p.PresetID); err == nil && rapid.IntRange(0, 5).Draw(t, "matchVersion") != 0 {
				p.TemplateVersionID = mp.TemplateVersionID
			}
			for range rapid.IntRange(0, 3).Draw(t, "n") {
				p.Instances = append(p.Instances, prebuilds.NewPrebuild{InstanceID: a.maybe(t, a.instances, "instance"), BuildID: a.buildID(t), Name: "pb"})
			}
			jobs, err := a.s.CreatePrebuilds(a.ctx, p)
			mjobs, merr := a.w.CreatePrebuilds(p)
			a.same(t, "CreatePrebuilds", jobs, mjobs, err, merr)
		},
		"StartBuild": func(t *rapid.T) {
			p := prebuilds.StartBuildParams{
				InstanceID: a.maybe(t, a.instances, "instance"), BuildID: a.buildID(t),
				TemplateVersionID: a.maybe(t, a.versions, "version"), Transition: a.transition(t), Now: a.now,
			}
			if rapid.Bool().Draw(t, "withPreset") {
				p.PresetID = a.maybe(t, a.presets, "preset")
			}
			a.same(t, "StartBuild", nil, nil, a.s.StartBuild(a.ctx, p), a.w.StartBuild(p))
		},
		"UpdateJob": func(t *rapid.T) {
			if len(a.builds) == 0 {
				t.Skip("no builds")
			}
			var open []uuid.UUID
			for _, b := range a.w.Builds {
				if !b.JobStatus.Terminal() {
					open = append(open, b.ID)
				}
			}
			target := a.builds
			if len(open) > 0 && rapid.IntRange(0, 4).Draw(t, "openBuild") != 0 {
				target = open
			}
			p := prebuilds.UpdateJobParams{
				BuildID: rapid.SampledFrom(target).Draw(t, "build"),
				Status: rapid.SampledFrom([]prebuilds.JobStatus{prebuilds.JobRunning, prebuilds.JobSucceeded, prebuilds.JobSucceeded,
					prebuilds.JobFailed, prebuilds.JobFailed, prebuilds.JobCanceling, prebuilds.JobCanceled, "bogus"}).Draw(t, "status"),
				Now: a.now,
			}
			if p.Status == prebuilds.JobFailed || rapid.IntRange(0, 9).Draw(t, "oddKind") == 0 {
				p.FailureKind = rapid.SampledFrom([]prebuilds.FailureKind{"", "", prebuilds.FailureTransient, prebuilds.FailureValidation, "bogus"}).Draw(t, "kind")
			}
			res, err := a.s.UpdateJob(a.ctx, p)
			mres, merr := a.w.UpdateJob(p)
			a.same(t, "UpdateJob", res, mres, err, merr)
		},
		"SetReady": func(t *rapid.T) {
			i, b := a.maybe(t, a.instances, "instance"), rapid.IntRange(0, 3).Draw(t, "ready") != 0
			a.same(t, "SetReady", nil, nil, a.s.SetReady(a.ctx, i, b), a.w.SetReady(i, b))
		},
		"Claim": func(t *rapid.T) {
			p := prebuilds.ClaimParams{PresetID: a.maybe(t, a.presets, "preset"), Owner: a.maybe(t, a.users, "owner"), Now: a.now}
			in, err := a.s.Claim(a.ctx, p)
			min, merr := a.w.Claim(p)
			a.same(t, "Claim", in, min, err, merr)
		},
		"RemoveInstance": func(t *rapid.T) {
			i := a.maybe(t, a.instances, "instance")
			a.same(t, "RemoveInstance", nil, nil, a.s.RemoveInstance(a.ctx, i), a.w.RemoveInstance(i))
		},
		"DeletePrebuild": func(t *rapid.T) {
			p := prebuilds.DeletePrebuildParams{InstanceID: a.maybe(t, a.instances, "instance"), BuildID: a.buildID(t), Now: a.now}
			job, err := a.s.DeletePrebuild(a.ctx, p)
			mjob, merr := a.w.DeletePrebuild(p)
			a.same(t, "DeletePrebuild", job, mjob, err, merr)
		},
		"CancelPending": func(t *rapid.T) {
			p := prebuilds.CancelPendingParams{PresetID: a.maybe(t, a.presets, "preset"), Now: a.now}
			ids, err := a.s.CancelPending(a.ctx, p)
			mids, merr := a.w.CancelPending(p)
			a.same(t, "CancelPending", ids, mids, err, merr)
		},
		"SetPresetStatus": func(t *rapid.T) {
			statuses := []prebuilds.PresetStatus{prebuilds.PresetHealthy, prebuilds.PresetHardLimited, prebuilds.PresetValidationFailed, "bogus"}
			p := a.maybe(t, a.presets, "preset")
			from, to := rapid.SampledFrom(statuses).Draw(t, "from"), rapid.SampledFrom(statuses).Draw(t, "to")
			changed, err := a.s.SetPresetStatus(a.ctx, p, from, to)
			mchanged, merr := a.w.SetPresetStatus(p, from, to)
			a.same(t, "SetPresetStatus", changed, mchanged, err, merr)
		},
		"PendingJobs": func(t *rapid.T) {
			p := prebuilds.PendingJobsParams{Limit: rapid.SampledFrom([]int{-1, 0, 1, 2, 5, prebuilds.MaxPendingJobsLimit, prebuilds.MaxPendingJobsLimit + 1}).Draw(t, "limit")}
			jobs, err := a.s.PendingJobs(a.ctx, p)
			mjobs, merr := a.w.PendingJobs(p)
			a.same(t, fmt.Sprintf("PendingJobs(limit %d)", p.Limit), jobs, mjobs, err, merr)
		},
		"Advance": func(t *rapid.T) {
			a.now = a.now.Add(rapid.SampledFrom([]time.Duration{0, time.Nanosecond, 999 * time.Nanosecond, time.Microsecond,
				time.Second, time.Second, time.Minute, time.Minute, 30 * time.Minute, time.Hour}).Draw(t, "d"))
		},
		"": func(t *rapid.T) {
			p := prebuilds.SnapshotParams{
				Now:       a.now,
				Lookback:  a.now.Add(-rapid.SampledFrom([]time.Duration{0, 1500 * time.Nanosecond, time.Minute, time.Hour}).Draw(t, "lookback")),
				HardLimit: prebuilds.HardLimit(rapid.IntRange(-1, 3).Draw(t, "k")),
			}
			var got *prebuilds.GlobalSnapshot
			acquired, err := a.s.WithReconciliationLock(a.ctx, func(ctx context.Context, r prebuilds.SnapshotReader) error {
				var err error
				got, err = r.Snapshot(ctx, p)
				return err
			})
			if err != nil || !acquired {
				t.Fatalf("snapshot: acquired %v, err %v", acquired, err)
			}
			want := a.w.Snapshot(p)
			prebuilds.SortSnapshot(got)
			prebuilds.SortSnapshot(want)
			if reflect.DeepEqual(want, got) {
				// fast path
			} else if d := cmp.Diff(want, got, cmpOpts); d != "" {
				t.Fatalf("snapshot differs (-model +store):\n%s", d)
			}
			for _, id := range a.presets {
				sp, serr := a.s.GetPreset(a.ctx, id)
				mp, merr := a.w.GetPreset(id)
				a.same(t, "GetPreset", sp, mp, serr, merr)
			}
			for _, id := range a.instances {
				si, serr := a.s.GetInstance(a.ctx, id)
				mi, merr := a.w.GetInstance(id)
				a.same(t, "GetInstance", si, mi, serr, merr)
				sb, serr := a.s.ListBuilds(a.ctx, id)
				mb, merr := a.w.ListBuilds(id)
				a.same(t, fmt.Sprintf("ListBuilds(%s)", id), sb, mb, serr, merr)
			}
		},
	}
}

// TestAgreesWithModel is a differential test against the reference model:
// same operations, same results and errors, same snapshot after every step.
// The default run is a smoke test; for depth run
//
//	go test ./memstore -run TestAgreesWithModel -args -rapid.steps=300 -rapid.checks=300
//
// The conformance suite runs the Reconciler on top of this as well.
func TestAgreesWithModel(t *testing.T) {
	t.Parallel()
	rapid.Check(t, func(t *rapid.T) {
		a := newAgreement()
		t.Repeat(a.ops())
	})
}

// newAgreement seeds a store and a model with two templates whose first
// versions are active and carry presets, so that most operations succeed.
func newAgreement() *agreement {
	a := &agreement{
		ctx:       context.Background(),
		s:         memstore.New(),
		w:         &model.World{},
		now:       t0.Add(123 * time.Nanosecond),
		templates: pool(1, 2),
		versions:  pool(2, 4),
		presets:   pool(3, 5),
		instances: pool(4, 12),
		users:     append(pool(5, 2), prebuilds.SystemOwner, prebuilds.SystemOwner),
	}
	// Start from a usable world so that most operations get through.
	for i, v := range a.versions {
		tp := a.templates[i%2]
		if i < 2 {
			must(a.s.CreateTemplate(a.ctx, prebuilds.Template{ID: tp, Name: "t"}))
			must(a.w.CreateTemplate(prebuilds.Template{ID: tp, Name: "t"}))
		}
		must(a.s.CreateTemplateVersion(a.ctx, prebuilds.TemplateVersion{ID: v, TemplateID: tp}))
		must(a.w.CreateTemplateVersion(prebuilds.TemplateVersion{ID: v, TemplateID: tp}))
	}
	for i, p := range a.presets[:4] {
		v := a.versions[i%2] // versions 0 and 1 belong to templates 0 and 1
		pr := prebuilds.Preset{ID: p, TemplateVersionID: v, Name: fmt.Sprint(i), Desired: ptr(1 + i%2)}
		must(a.s.UpsertPreset(a.ctx, pr))
		must(a.w.UpsertPreset(pr))
		if i < 2 {
			must(a.s.SetActiveVersion(a.ctx, a.templates[i], v))
			must(a.w.SetActiveVersion(a.templates[i], v))
		}
	}
	return a
}
