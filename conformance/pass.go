package conformance

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coder/quartz"
	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/internal/scenario"
	"github.com/prebuildkit/prebuildkit/model"
	"github.com/prebuildkit/prebuildkit/prebuilds"
)

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
// must emit at now. Status transitions are the plans' SetStatus actions;
// before (the snapshot the plans were made from) labels their events.
func expectedPass(plans []prebuilds.Plan, before *prebuilds.GlobalSnapshot, l labeler, now time.Time) ([]presetWrites, []prebuilds.Event) {
	rows := map[uuid.UUID]prebuilds.PresetRow{}
	for _, r := range before.Presets {
		rows[r.ID] = r
	}
	s := newPassSummary(l)
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
			case prebuilds.ActionFailStuck:
				for _, id := range a.BuildIDs {
					p.TimedOut = append(p.TimedOut, l.of(id))
				}
			case prebuilds.ActionCreate:
				p.Creates += a.Count
			case prebuilds.ActionDelete:
				for _, id := range a.InstanceIDs {
					p.Deletes = append(p.Deletes, l.of(id))
				}
			case prebuilds.ActionCancelPending:
				p.CancelPending++
				p.Canceled += a.Count
			}
		}
	}
	sortEvents(events)
	return s.list(), events
}

// actualPass summarises recorded writes. Deletes are attributed to the
// preset of the running prebuild in snap (the state before the pass).
func actualPass(writes []write, snap *prebuilds.GlobalSnapshot, l labeler) []presetWrites {
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
		case writeCreatePrebuilds:
			p := s.at(w.Create.PresetID)
			if w.Err != nil {
				p.Errors = append(p.Errors, fmt.Sprintf("CreatePrebuilds(%d): %s", len(w.Create.Instances), errClass(w.Err)))
				continue
			}
			p.Creates += len(w.Create.Instances)
		case writeDeletePrebuild:
			p := s.at(owner[w.Delete.InstanceID])
			if w.Err != nil {
				p.Errors = append(p.Errors, fmt.Sprintf("DeletePrebuild(%s): %s", l.of(w.Delete.InstanceID), errClass(w.Err)))
				continue
			}
			p.Deletes = append(p.Deletes, l.of(w.Delete.InstanceID))
		case writeCancelPending:
			p := s.at(w.Cancel.PresetID)
			p.CancelPending++
			if w.Err != nil {
				p.Errors = append(p.Errors, "CancelPending: "+errClass(w.Err))
				continue
			}
			p.Canceled += len(w.Canceled)
		case writeFailStuckBuild:
			p := s.at(stuckOwner[w.Fail.BuildID])
			if w.Err != nil {
				p.Errors = append(p.Errors, fmt.Sprintf("FailStuckBuild(%s): %s", l.of(w.Fail.BuildID), errClass(w.Err)))
				continue
			}
			p.TimedOut = append(p.TimedOut, l.of(w.Fail.BuildID))
		case writeSetPresetStatus:
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

// passOptions make a pass deterministic for the state machine.
type passOptions struct {
	// maxConcurrency is the Reconciler's MaxConcurrency (0 = default); 1
	// keeps the order of writes deterministic.
	maxConcurrency int
	// newID replaces the Reconciler's random IDs (see recorder.newID).
	newID func() uuid.UUID
	// labels names the IDs newID makes.
	labels labeler
}

// reconcilePass runs one real Reconciler pass over store (through a
// recorder) at the clock's instant and records in v how its writes and
// events differ from want (plans) and the model's hard-limit transitions;
// then it applies the very same writes to w and records where the model's
// results differ from the store's. It returns the recorded writes.
func reconcilePass(ctx context.Context, v *verdict, clock *quartz.Mock, store prebuilds.Store, w *model.World, cfg scenario.Config, want []prebuilds.Plan, o passOptions) []write {
	now := prebuilds.Micro(clock.Now())
	params := cfg.SnapshotParams(now)
	before := w.Snapshot(params)
	labels := newLabeler().addWorld(w)
	for id, k := range o.labels {
		labels[id] = k
	}

	var log strings.Builder
	rec := newRecorder(store)
	rec.newID = o.newID
	rc := reconcilerConfig(cfg, clock, rec.notifier(), &log)
	rc.MaxConcurrency = o.maxConcurrency
	r := prebuilds.NewReconciler(rec, rc)
	stats, err := r.ReconcileAll(ctx)
	writes, events := rec.recorded(), rec.notified()
	defer func() {
		if v.failed() && log.Len() > 0 {
			v.addf("reconciler log:\n%s", strings.TrimRight(log.String(), "\n"))
		}
	}()
	if err != nil {
		v.addf("the pass at %s failed: %v", now.Format(time.RFC3339Nano), err)
		return writes
	}
	if !stats.Acquired {
		v.addf("the pass at %s did not get the reconciliation lock although nobody else holds it", now.Format(time.RFC3339Nano))
		return writes
	}

	wantWrites, wantEvents := expectedPass(want, before, labels, now)
	labels.addCreated(writes)
	gotWrites := actualPass(writes, before, labels)
	if d := labels.diff(wantWrites, gotWrites); d != "" {
		v.addf("the pass wrote something else than the plan (-want +got):\n%s\nplans:%s", strings.TrimRight(d, "\n"), describePlans(want, labels))
	}
	sortEvents(events)
	v.diff("events of the pass (-want +got)", labels.diff(wantEvents, events))
	if stats.PresetErrors != 0 || stats.Clamped != 0 || stats.Conflicts != 0 {
		v.addf("the pass reported %d preset errors, %d clamps and %d conflicts, want none", stats.PresetErrors, stats.Clamped, stats.Conflicts)
	}
	applyWrites(v, w, writes, labels)
	return writes
}

// addCreated names the instances the writes created by the names the
// Reconciler gave them, unless they are named already.
func (l labeler) addCreated(writes []write) labeler {
	for _, wr := range writes {
		if wr.Kind != writeCreatePrebuilds {
			continue
		}
		for _, n := range wr.Create.Instances {
			if _, ok := l[n.InstanceID]; !ok {
				l[n.InstanceID] = n.Name
			}
		}
	}
	return l
}

// applyWrites replays recorded writes on the model and records where the
// outcome differs (error class, jobs, canceled IDs, changed flag).
func applyWrites(v *verdict, w *model.World, writes []write, l labeler) {
	for _, wr := range writes {
		switch wr.Kind {
		case writeSetPresetStatus:
			changed, err := w.SetPresetStatus(wr.PresetID, wr.From, wr.To)
			what := fmt.Sprintf("SetPresetStatus(%s, %s→%s)", l.of(wr.PresetID), wr.From, wr.To)
			if sameError(v, what, wr.Err, err) && err == nil && changed != wr.Changed {
				v.addf("%s: store changed=%v, model changed=%v", what, wr.Changed, changed)
			}
		case writeFailStuckBuild:
			err := w.FailStuckBuild(wr.Fail)
			sameError(v, fmt.Sprintf("FailStuckBuild(%s)", l.of(wr.Fail.BuildID)), wr.Err, err)
		case writeCreatePrebuilds:
			jobs, err := w.CreatePrebuilds(wr.Create)
			what := fmt.Sprintf("CreatePrebuilds(%s, %d)", l.of(wr.Create.PresetID), len(wr.Create.Instances))
			if sameError(v, what, wr.Err, err) && err == nil {
				v.diff(what+": jobs (-model +store)", l.diff(jobs, wr.Jobs))
			}
		case writeDeletePrebuild:
			job, err := w.DeletePrebuild(wr.Delete)
			what := fmt.Sprintf("DeletePrebuild(%s)", l.of(wr.Delete.InstanceID))
			if sameError(v, what, wr.Err, err) && err == nil {
				v.diff(what+": job (-model +store)", l.diff(job, wr.Job))
			}
		case writeCancelPending:
			ids, err := w.CancelPending(wr.Cancel)
			what := fmt.Sprintf("CancelPending(%s)", l.of(wr.Cancel.PresetID))
			if sameError(v, what, wr.Err, err) && err == nil {
				v.diff(what+": canceled instances (-model +store)", l.diff(ids, wr.Canceled))
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

// reconcilerConfig is a scenario's Config with the pass's clock and
// notifier; the Reconciler's warnings and errors go to log.
func reconcilerConfig(c scenario.Config, clock quartz.Clock, n prebuilds.Notifier, log io.Writer) prebuilds.Config {
	c.Clock = clock
	c.Logger = slog.New(slog.NewTextHandler(&syncWriter{w: log}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	c.Notifier = n
	return c
}

// syncWriter serialises writes of concurrent workers of a pass.
type syncWriter struct {
	mu sync.Mutex
	w  io.Writer
}

func (s *syncWriter) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.w.Write(p)
}
