package memstore

import (
	"context"
	"slices"
	"sync"

	"github.com/google/uuid"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Compile-time proof that Store offers a change feed.
var _ prebuilds.ChangeFeed = (*Store)(nil)

// feed fans changes out to subscribers, after the write that made them
// released the state mutex. A subscriber never makes a writer wait: its
// pending changes are coalesced per preset in a map that its own goroutine
// drains into the subscriber's channel, so nothing is ever dropped and no
// resync is needed.
type feed struct {
	mu   sync.Mutex
	subs map[*subscriber]struct{}
}

type subscriber struct {
	mu      sync.Mutex
	pending map[uuid.UUID]prebuilds.ChangeKind
	resync  bool
	wake    chan struct{} // capacity 1: "pending is not empty"
}

// Changes implements prebuilds.ChangeFeed: the changes committed after it
// returns, per preset in ID order within a burst, until ctx is done.
func (s *Store) Changes(ctx context.Context) (<-chan prebuilds.Change, error) {
	sub := &subscriber{pending: map[uuid.UUID]prebuilds.ChangeKind{}, wake: make(chan struct{}, 1)}
	s.feed.mu.Lock()
	if s.feed.subs == nil {
		s.feed.subs = map[*subscriber]struct{}{}
	}
	s.feed.subs[sub] = struct{}{}
	s.feed.mu.Unlock()

	out := make(chan prebuilds.Change)
	go func() {
		defer close(out)
		defer func() {
			s.feed.mu.Lock()
			delete(s.feed.subs, sub)
			s.feed.mu.Unlock()
		}()
		for {
			select {
			case <-ctx.Done():
				return
			case <-sub.wake:
			}
			for _, c := range sub.take() {
				select {
				case out <- c:
				case <-ctx.Done():
					return
				}
			}
		}
	}()
	return out, nil
}

// take empties the subscriber's pending changes: a resync first, then one
// change per preset in ID order.
func (sub *subscriber) take() []prebuilds.Change {
	sub.mu.Lock()
	defer sub.mu.Unlock()
	var out []prebuilds.Change
	if sub.resync {
		out = append(out, prebuilds.Change{Kind: prebuilds.ChangeResync})
		sub.resync = false
	}
	ids := make([]uuid.UUID, 0, len(sub.pending))
	for id := range sub.pending {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, prebuilds.CompareUUID)
	for _, id := range ids {
		out = append(out, prebuilds.Change{PresetID: id, Kind: sub.pending[id]})
	}
	clear(sub.pending)
	return out
}

// publish hands *changes to every subscriber. Writers defer it before they
// take the state mutex, so it runs once the write is visible.
func (s *Store) publish(changes *[]prebuilds.Change) {
	if len(*changes) == 0 {
		return
	}
	s.feed.mu.Lock()
	defer s.feed.mu.Unlock()
	for sub := range s.feed.subs {
		sub.mu.Lock()
		for _, c := range *changes {
			if c.Kind == prebuilds.ChangeResync {
				sub.resync = true
			} else {
				sub.pending[c.PresetID] = c.Kind
			}
		}
		sub.mu.Unlock()
		select {
		case sub.wake <- struct{}{}:
		default:
		}
	}
}

// instanceChanges names the presets a change of in concerns: its current
// preset (its pool) and the preset its first build counts for, when they
// differ. Callers hold s.mu.
func instanceChanges(in *instance, kind prebuilds.ChangeKind) []prebuilds.Change {
	var out []prebuilds.Change
	for _, id := range []uuid.UUID{in.current, in.counted} {
		if id != uuid.Nil && !slices.ContainsFunc(out, func(c prebuilds.Change) bool { return c.PresetID == id }) {
			out = append(out, prebuilds.Change{PresetID: id, Kind: kind})
		}
	}
	return out
}

// templateChanges names every preset of the template's versions: its
// activation, deprecation or deletion changes all their plans. Callers hold
// s.mu.
func (s *Store) templateChanges(templateID uuid.UUID) []prebuilds.Change {
	var out []prebuilds.Change
	for _, p := range s.presetOrder {
		if v := s.versions[p.TemplateVersionID]; v != nil && v.TemplateID == templateID {
			out = append(out, prebuilds.Change{PresetID: p.ID, Kind: prebuilds.ChangePresetWritten})
		}
	}
	return out
}
