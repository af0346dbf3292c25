package conformance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"time"

	"github.com/coder/quartz"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/model"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// tb is what the checks need from *testing.T and *rapid.T alike.
type tb interface {
	Helper()
	Errorf(format string, args ...any)
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// presetWrites summarises what one pass wrote for one preset, in a form
// whose diff says what went wrong.
type presetWrites struct {
	Preset string
	// Creates counts instances created.
	Creates int
	// Deletes names deleted instances, sorted.
	Deletes []string
	// CancelPending counts CancelPending calls; Canceled the instances they
	// canceled.
	CancelPending int
	Canceled      int
	// Status lists status transitions ("healthy→hard_limited"); a
	// compare-and-set that changed nothing is marked "(unchanged)".
	Status []string
	// TimedOut names the stuck builds failed, sorted.
	TimedOut []string
	// Errors lists writes that failed.
	Errors []string
}

func (p presetWrites) empty() bool {
	return p.Creates == 0 && len(p.Deletes) == 0 && p.CancelPending == 0 && p.Canceled == 0 &&
		len(p.Status) == 0 && len(p.TimedOut) == 0 && len(p.Errors) == 0
}

type passSummary struct {
	byID  map[uuid.UUID]*presetWrites
	label labeler
}

func newPassSummary(l labeler) *passSummary {
	return &passSummary{byID: map[uuid.UUID]*presetWrites{}, label: l}
}

func (s *passSummary) at(id uuid.UUID) *presetWrites {
	p := s.byID[id]
	if p == nil {
		p = &presetWrites{Preset: s.label.of(id)}
		if id == uuid.Nil {
			p.Preset = "(instance of no planned preset)"
		}
		s.byID[id] = p
	}
	return p
}

// list returns the non-empty entries in preset ID order.
func (s *passSummary) list() []presetWrites {
	ids := make([]uuid.UUID, 0, len(s.byID))
	for id := range s.byID {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, prebuilds.CompareUUID)
	var out []presetWrites
	for _, id := range ids {
		p := s.byID[id]
		slices.Sort(p.Deletes)
		slices.Sort(p.TimedOut)
		if !p.empty() {
			out = append(out, *p)
		}
	}
	return out
}

// expectedPass is what a pass must write given the plans, and the events it
// must emit at now: the status transitions are the plans' SetStatus actions;
// the preset rows of before (the snapshot the plans were made from) label
// their events.
func expectedPass(plans []prebuilds.Plan, before *prebuilds.GlobalSnapshot, l labeler, now time.Time) ([]presetWrites, []prebuilds.Event) {
	s := newPassSummary(l)
	rows := map[uuid.UUID]prebuilds.PresetRow{}
	for _, r := range before.Presets {
		rows[r.ID] = r
	}
	var events []prebuilds.Event
	for _, plan := range plans {
		p := s.at(plan.PresetID)
		for _, a := range plan.Actions {
			switch a.Kind {
			case prebuilds.ActionSetStatus:
				p.Status = append(p.Status, fmt.Sprintf("%s→%s", a.From, a.To))
				kind := prebuilds.EventRecovered
				if a.To == prebuilds.PresetHardLimited {
					kind = prebuilds.EventHardLimited
				}
				row := rows[plan.PresetID]
				events = append(events, prebuilds.Event{
					Kind: kind, At: now,
					PresetID: row.ID, PresetName: row.Name,
					TemplateID: row.TemplateID, TemplateName: row.TemplateName,
					TemplateVersionID: row.TemplateVersionID, OrganizationName: row.OrganizationName,
				})
			case prebuilds.ActionCreate:
				p.Creates += a.Count
			case prebuilds.ActionDelete:
				for _, id := range a.InstanceIDs {
					p.Deletes = append(p.Deletes, l.of(id))
				}
			case prebuilds.ActionCancelPending:
				p.CancelPending++
				p.Canceled += a.Count
			case prebuilds.ActionFailStuck:
				for _, id := range a.BuildIDs {
					p.TimedOut = append(p.TimedOut, l.of(id))
				}
			}
		}
	}
	sortEvents(events)
	return s.list(), events
}

// actualPass summarises recorded writes. Deletes are attributed to the
// preset of the running prebuild in snap (the state before the pass).
func actualPass(writes []Write, snap *prebuilds.GlobalSnapshot, l labeler) []presetWrites {
	owner := map[uuid.UUID]uuid.UUID{}
	for _, r := range snap.Running {
		owner[r.InstanceID] = r.PresetID
	}
	stuckOwner := map[uuid.UUID]uuid.UUID{}
	for _, b := range snap.Stuck {
		stuckOwner[b.BuildID] = b.PresetID
	}
	s := newPassSummary(l)
	for _, w := range writes {
		switch w.Kind {
		case WriteCreatePrebuilds:
			p := s.at(w.Create.PresetID)
			if w.Err != nil {
				p.Errors = append(p.Errors, fmt.Sprintf("CreatePrebuilds(%d): %s", len(w.Create.Instances), errClass(w.Err)))
				continue
			}
			p.Creates += len(w.Create.Instances)
		case WriteDeletePrebuild:
			p := s.at(owner[w.Delete.InstanceID])
			if w.Err != nil {
				p.Errors = append(p.Errors, fmt.Sprintf("DeletePrebuild(%s): %s", l.of(w.Delete.InstanceID), errClass(w.Err)))
				continue
			}
			p.Deletes = append(p.Deletes, l.of(w.Delete.InstanceID))
		case WriteCancelPending:
			p := s.at(w.Cancel.PresetID)
			p.CancelPending++
			if w.Err != nil {
				p.Errors = append(p.Errors, "CancelPending: "+errClass(w.Err))
				continue
			}
			p.Canceled += len(w.Canceled)
		case WriteFailStuckBuild:
			p := s.at(stuckOwner[w.Fail.BuildID])
			if w.Err != nil {
				p.Errors = append(p.Errors, fmt.Sprintf("FailStuckBuild(%s): %s", l.of(w.Fail.BuildID), errClass(w.Err)))
				continue
			}
			p.TimedOut = append(p.TimedOut, l.of(w.Fail.BuildID))
		case WriteSetPresetStatus:
			p := s.at(w.PresetID)
			if w.Err != nil {
				p.Errors = append(p.Errors, fmt.Sprintf("SetPresetStatus(%s→%s): %s", w.From, w.To, errClass(w.Err)))
				continue
			}
			st := fmt.Sprintf("%s→%s", w.From, w.To)
			if !w.Changed {
				st += " (unchanged)"
			}
			p.Status = append(p.Status, st)
		}
	}
	return s.list()
}

func sortEvents(events []prebuilds.Event) {
	slices.SortStableFunc(events, func(a, b prebuilds.Event) int {
		if c := prebuilds.CompareUUID(a.PresetID, b.PresetID); c != 0 {
			return c
		}
		return strings.Compare(string(a.Kind), string(b.Kind))
	})
}

// passConfig is the reconciler configuration and the matching snapshot
// parameters of a pass.
type passConfig struct {
	cfg Config
}

func (c passConfig) params(now time.Time) prebuilds.SnapshotParams {
	return c.cfg.SnapshotParams(now)
}

// reconcileOnce runs one real Reconciler pass over store (through a
// Recorder) at the clock's instant, requires its writes and events to
// match want (plans) and the model's status transitions, then applies the
// very same writes to w and requires the results to agree. It returns the
// recorded writes.
func reconcileOnce(ctx context.Context, t tb, clock *quartz.Mock, store prebuilds.Store, w *model.World, cfg Config, want []prebuilds.Plan) []Write {
	t.Helper()
	return reconcileWith(ctx, t, clock, store, w, cfg, want, passOptions{})
}

// passOptions make a pass deterministic for the state machine.
type passOptions struct {
	// maxConcurrency is the Reconciler's MaxConcurrency (0 = default); 1
	// keeps the order of writes deterministic.
	maxConcurrency int
	// newID replaces the Reconciler's random IDs (see Recorder.newID).
	newID func() uuid.UUID
}

// reconcileWith is reconcileOnce with options.
func reconcileWith(ctx context.Context, t tb, clock *quartz.Mock, store prebuilds.Store, w *model.World, cfg Config, want []prebuilds.Plan, o passOptions) []Write {
	t.Helper()
	now := prebuilds.Micro(clock.Now())
	params := passConfig{cfg}.params(now)
	before := w.Snapshot(params)
	labels := labelsFromWorld(w)

	rec := NewRecorder(store)
	rec.newID = o.newID
	rc := reconcilerConfig(t, cfg, clock, rec.Notifier())
	rc.MaxConcurrency = o.maxConcurrency
	r := prebuilds.NewReconciler(rec, rc)
	stats, err := r.ReconcileAll(ctx)
	if err != nil {
		t.Fatalf("ReconcileAll at %s: %v", now.Format(time.RFC3339Nano), err)
	}
	if !stats.Acquired {
		t.Fatalf("ReconcileAll at %s: lock not acquired although nobody else holds it", now.Format(time.RFC3339Nano))
	}
	writes, events := rec.Writes(), rec.Events()

	wantWrites, wantEvents := expectedPass(want, before, labels, now)
	gotWrites := actualPass(writes, before, labels)
	if diff := cmp.Diff(wantWrites, gotWrites, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("reconciliation pass at %s wrote something else than planned (-want +got):\n%s\nplans: %s",
			now.Format(time.RFC3339Nano), diff, describePlans(want, labels))
	}
	sortEvents(events)
	if diff := cmp.Diff(wantEvents, events, cmpopts.EquateEmpty()); diff != "" {
		t.Fatalf("reconciliation pass at %s: events (-want +got):\n%s", now.Format(time.RFC3339Nano), diff)
	}
	if stats.PresetErrors != 0 || stats.Clamped != 0 || stats.Conflicts != 0 {
		t.Fatalf("reconciliation pass at %s: stats %+v: want no preset errors, clamps or conflicts", now.Format(time.RFC3339Nano), stats)
	}
	applyWrites(t, w, writes, labels)
	return writes
}

// applyWrites replays recorded writes on the model and requires the same
// outcome (error class, jobs, canceled IDs, changed flag).
func applyWrites(t tb, w *model.World, writes []Write, l labeler) {
	t.Helper()
	for _, wr := range writes {
		switch wr.Kind {
		case WriteSetPresetStatus:
			changed, err := w.SetPresetStatus(wr.PresetID, wr.From, wr.To)
			sameError(t, fmt.Sprintf("SetPresetStatus(%s, %s→%s)", l.of(wr.PresetID), wr.From, wr.To), wr.Err, err)
			if err == nil && changed != wr.Changed {
				t.Fatalf("SetPresetStatus(%s, %s→%s): store changed=%v, model changed=%v", l.of(wr.PresetID), wr.From, wr.To, wr.Changed, changed)
			}
		case WriteFailStuckBuild:
			err := w.FailStuckBuild(wr.Fail)
			sameError(t, fmt.Sprintf("FailStuckBuild(%s)", l.of(wr.Fail.BuildID)), wr.Err, err)
		case WriteCreatePrebuilds:
			jobs, err := w.CreatePrebuilds(wr.Create)
			sameError(t, fmt.Sprintf("CreatePrebuilds(%s, %d)", l.of(wr.Create.PresetID), len(wr.Create.Instances)), wr.Err, err)
			if diff := cmp.Diff(jobs, wr.Jobs, cmpopts.EquateEmpty()); err == nil && diff != "" {
				t.Fatalf("CreatePrebuilds(%s): jobs (-model +store):\n%s", l.of(wr.Create.PresetID), diff)
			}
		case WriteDeletePrebuild:
			job, err := w.DeletePrebuild(wr.Delete)
			sameError(t, fmt.Sprintf("DeletePrebuild(%s)", l.of(wr.Delete.InstanceID)), wr.Err, err)
			if diff := cmp.Diff(job, wr.Job, cmpopts.EquateEmpty()); err == nil && diff != "" {
				t.Fatalf("DeletePrebuild(%s): job (-model +store):\n%s", l.of(wr.Delete.InstanceID), diff)
			}
		case WriteCancelPending:
			ids, err := w.CancelPending(wr.Cancel)
			sameError(t, fmt.Sprintf("CancelPending(%s)", l.of(wr.Cancel.PresetID)), wr.Err, err)
			if diff := cmp.Diff(ids, wr.Canceled, cmpopts.EquateEmpty()); err == nil && diff != "" {
				t.Fatalf("CancelPending(%s): canceled IDs (-model +store):\n%s", l.of(wr.Cancel.PresetID), diff)
			}
		}
	}
}

// describePlans renders plans for a failure message.
func describePlans(plans []prebuilds.Plan, l labeler) string {
	var b strings.Builder
	for _, p := range plans {
		fmt.Fprintf(&b, "\n  %s desired %d:", l.of(p.PresetID), p.Desired)
		if len(p.Actions) == 0 {
			b.WriteString(" nothing")
		}
		for _, a := range p.Actions {
			fmt.Fprintf(&b, " %s/%s", a.Kind, a.Reason)
			switch a.Kind {
			case prebuilds.ActionDelete:
				names := make([]string, len(a.InstanceIDs))
				for i, id := range a.InstanceIDs {
					names[i] = l.of(id)
				}
				fmt.Fprintf(&b, "%v", names)
			case prebuilds.ActionBackoff:
				fmt.Fprintf(&b, "(%d until %s)", a.Count, a.Until.Format(time.RFC3339Nano))
			default:
				fmt.Fprintf(&b, "(%d)", a.Count)
			}
		}
	}
	return b.String()
}

// reconcilerConfig is the prebuilds.Config of a scenario Config.
func reconcilerConfig(t tb, c Config, clock quartz.Clock, n prebuilds.Notifier) prebuilds.Config {
	rc := c.reconciler()
	rc.Clock = clock
	rc.Logger = testLogger(t)
	rc.Notifier = n
	return rc
}

// testLogger sends warnings and errors of the Reconciler to t's log, so
// they show up next to a failure.
func testLogger(t tb) *slog.Logger {
	return slog.New(slog.NewTextHandler(logWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
}

type logWriter struct{ t tb }

func (w logWriter) Write(p []byte) (int, error) {
	w.t.Logf("%s", strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var _ io.Writer = logWriter{}
