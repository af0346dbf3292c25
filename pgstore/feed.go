package pgstore

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// Compile-time proof that Store offers a change feed.
var _ prebuilds.ChangeFeed = (*Store)(nil)

// The change feed rides on PostgreSQL's LISTEN/NOTIFY. Every write that is a
// change calls pg_notify in its own transaction, so the server delivers the
// notification only if, and once, that transaction commits. A payload is
// "<kind>:<preset id>" (kind as prebuilds.ChangeKind, the preset in its
// canonical text form) or "resync".

// templateNotifyLimit is the most presets a template-level write names one
// by one: a template with more configured presets gets one resync instead
// (a full pass), so that one write never queues thousands of notifications.
const templateNotifyLimit = 1000

var templateNotifyLimitSQL = strconv.Itoa(templateNotifyLimit)

var (
	// notifyPresetsSQL notifies channel $1 of a change of kind $2 of each
	// preset in $3.
	notifyPresetsSQL = `SELECT pg_notify($1, $2::text || ':' || p::text) FROM unnest($3::uuid[]) AS p`

	// notifyInstanceSQL notifies channel $1 of a change of kind $2 of the
	// presets instance $3 concerns: its current preset (its pool), the
	// preset its first build counts for (a prebuild's build #1), and the
	// presets in $4 (its pool before the write). Repeats are notified once.
	notifyInstanceSQL = `
SELECT pg_notify($1, $2::text || ':' || x.preset_id::text)
FROM (
    SELECT i.preset_id FROM instances i WHERE i.id = $3
    UNION
    SELECT b.preset_id FROM instances i JOIN builds b ON b.instance_id = i.id AND b.number = 1
    WHERE i.id = $3 AND i.created_as_prebuild
    UNION
    SELECT unnest($4::uuid[])
) x
WHERE x.preset_id IS NOT NULL`

	// templatePresetsCTE lists, as CTE "notified", the notifications of a
	// write to the templates in CTE "written" (column id): preset_written
	// for each configured preset of their versions, or one resync when
	// there are more than templateNotifyLimit. $1 is the channel.
	templatePresetsCTE = `
written_presets AS (
    SELECT p.id FROM presets p JOIN template_versions v ON v.id = p.template_version_id
    WHERE v.template_id IN (SELECT id FROM written) AND p.desired IS NOT NULL
), written_count AS (
    SELECT count(*) AS n FROM written_presets
), notified AS (
    SELECT pg_notify($1, '` + string(prebuilds.ChangePresetWritten) + `:' || w.id::text) FROM written_presets w, written_count c
    WHERE c.n <= ` + templateNotifyLimitSQL + `
    UNION ALL
    SELECT pg_notify($1, '` + string(prebuilds.ChangeResync) + `') FROM written_count c WHERE c.n > ` + templateNotifyLimitSQL + `
)`
)

// notifyPresets notifies the channel of a change of kind of each preset, in
// tx: delivered when tx commits.
func (s *Store) notifyPresets(ctx context.Context, tx pgx.Tx, kind prebuilds.ChangeKind, presets ...uuid.UUID) error {
	ids := presets[:0:0]
	for _, id := range presets {
		if id != uuid.Nil {
			ids = append(ids, id)
		}
	}
	if len(ids) == 0 {
		return nil
	}
	_, err := tx.Exec(ctx, notifyPresetsSQL, s.channel, string(kind), pgUUIDs(ids))
	return err
}

// notifyInstance notifies the channel of a change of kind of the presets
// instance concerns (notifyInstanceSQL), plus before (its current preset
// before the write, uuid.Nil for none), in tx.
func (s *Store) notifyInstance(ctx context.Context, tx pgx.Tx, kind prebuilds.ChangeKind, instance, before uuid.UUID) error {
	extra := []uuid.UUID{}
	if before != uuid.Nil {
		extra = append(extra, before)
	}
	_, err := tx.Exec(ctx, notifyInstanceSQL, s.channel, string(kind), pgUUID(instance), pgUUIDs(extra))
	return err
}

// parsePayload reads a notification payload back. A payload that is not
// one pgstore writes (another version's kind, or garbage someone sent on
// the channel) is a resync: a full pass is always safe.
func parsePayload(payload string) prebuilds.Change {
	resync := prebuilds.Change{Kind: prebuilds.ChangeResync}
	kind, id, ok := strings.Cut(payload, ":")
	if !ok {
		return resync
	}
	switch k := prebuilds.ChangeKind(kind); k {
	case prebuilds.ChangeClaimed, prebuilds.ChangeJobCompleted, prebuilds.ChangeBuildStarted,
		prebuilds.ChangeInstanceRemoved, prebuilds.ChangePresetWritten:
		if len(id) != 36 {
			return resync
		}
		presetID, err := uuid.Parse(id)
		if err != nil || presetID == uuid.Nil {
			return resync
		}
		return prebuilds.Change{PresetID: presetID, Kind: k}
	default:
		return resync
	}
}

// Listener timing. The LISTEN connection is pinged after listenIdle without
// a notification, so that a connection that died without a word (a network
// partition) is noticed; a reconnection is tried at once after a healthy
// connection broke, then after listenBackoffMin, doubling up to
// listenBackoffMax while the attempts fail.
const (
	listenIdle       = 30 * time.Second
	listenPing       = 10 * time.Second
	listenBackoffMin = 50 * time.Millisecond
	listenBackoffMax = 5 * time.Second
	listenCloseWait  = time.Second
)

// Changes implements prebuilds.ChangeFeed: the changes committed after it
// returns, until ctx is done; then the channel is closed, once the
// listener's goroutines have ended and its connection is closed.
//
// Each call LISTENs on a dedicated connection: one taken from the pool and
// hijacked, so that it leaves the pool (it does not count against
// MaxConns and is never handed to another caller) but is made with the
// pool's configuration. Notifications received while the reader falls
// behind are coalesced per preset (the latest kind wins), so a slow reader
// holds neither the connection nor the server's notification queue. When
// the connection breaks (a server restart, pg_terminate_backend, a network
// failure noticed by a ping after 30 seconds of silence) notifications may
// have been lost: the listener reconnects, at once and then with a backoff
// from 50ms doubling to 5s while attempts fail, and once it listens again it
// delivers a resync (prebuilds.ChangeResync), which the Reconciler answers
// with a full pass. A payload it does not recognise is delivered as a
// resync too.
func (s *Store) Changes(ctx context.Context) (<-chan prebuilds.Change, error) {
	conn, err := s.listen(ctx)
	if err != nil {
		return nil, opError("changes", s.channel, err)
	}
	f := &feedBuffer{pending: map[uuid.UUID]int{}, wake: make(chan struct{}, 1)}
	out := make(chan prebuilds.Change)
	read := make(chan struct{})
	go func() {
		defer close(read)
		s.readNotifications(ctx, conn, f)
	}()
	go func() {
		defer close(out)
		defer func() { <-read }()
		f.deliver(ctx, out)
	}()
	return out, nil
}

// listen returns a new connection, hijacked from the pool, that listens on
// the store's channel.
func (s *Store) listen(ctx context.Context) (*pgx.Conn, error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return nil, err
	}
	conn := pc.Hijack()
	if _, err := conn.Exec(ctx, `LISTEN `+pgx.Identifier{s.channel}.Sanitize()); err != nil {
		closeConn(ctx, conn)
		return nil, err
	}
	return conn, nil
}

// closeConn closes a listener's connection, on a context that is not
// canceled, briefly.
func closeConn(ctx context.Context, conn *pgx.Conn) {
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), listenCloseWait)
	defer cancel()
	_ = conn.Close(cctx)
}

// readNotifications reads conn's notifications into f until ctx is done,
// reconnecting (and pushing a resync) whenever the connection breaks. It
// closes the connection it holds when it returns.
func (s *Store) readNotifications(ctx context.Context, conn *pgx.Conn, f *feedBuffer) {
	backoff := time.Duration(0) // the next reconnection's delay
	for {
		n, err := waitForNotification(ctx, conn)
		switch {
		case err == nil:
			f.push(parsePayload(n.Payload))
			backoff = 0
			continue
		case ctx.Err() != nil:
			closeConn(ctx, conn)
			return
		case pgconn.Timeout(err) && !conn.IsClosed():
			pctx, cancel := context.WithTimeout(ctx, listenPing)
			err = conn.Ping(pctx)
			cancel()
			if err == nil {
				backoff = 0
				continue
			}
			if ctx.Err() != nil {
				closeConn(ctx, conn)
				return
			}
		}
		// The connection is broken: notifications may be lost.
		closeConn(ctx, conn)
		for {
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(max(2*backoff, listenBackoffMin), listenBackoffMax)
			if conn, err = s.listen(ctx); err == nil {
				break
			}
			if ctx.Err() != nil {
				return
			}
		}
		f.push(prebuilds.Change{Kind: prebuilds.ChangeResync})
	}
}

// waitForNotification waits for the next notification on conn, at most
// listenIdle.
func waitForNotification(ctx context.Context, conn *pgx.Conn) (*pgconn.Notification, error) {
	wctx, cancel := context.WithTimeout(ctx, listenIdle)
	defer cancel()
	n, err := conn.WaitForNotification(wctx)
	if err == nil && n == nil {
		err = errors.New("no notification")
	}
	return n, err
}

// sleep waits d, or until ctx is done (false).
func sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return ctx.Err() == nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// feedBuffer holds the changes read and not yet delivered, coalesced: one
// entry per preset, in order of first arrival, with the latest kind, and a
// resync flag delivered first.
type feedBuffer struct {
	mu      sync.Mutex
	order   []prebuilds.Change
	pending map[uuid.UUID]int // preset → index in order
	resync  bool
	wake    chan struct{} // capacity 1: "something is pending"
}

func (f *feedBuffer) push(c prebuilds.Change) {
	f.mu.Lock()
	if c.Kind == prebuilds.ChangeResync {
		f.resync = true
	} else if i, ok := f.pending[c.PresetID]; ok {
		f.order[i].Kind = c.Kind
	} else {
		f.pending[c.PresetID] = len(f.order)
		f.order = append(f.order, c)
	}
	f.mu.Unlock()
	select {
	case f.wake <- struct{}{}:
	default:
	}
}

// take empties the buffer: a resync first, then the presets' changes.
func (f *feedBuffer) take() []prebuilds.Change {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []prebuilds.Change
	if f.resync {
		out = append(out, prebuilds.Change{Kind: prebuilds.ChangeResync})
		f.resync = false
	}
	out = append(out, f.order...)
	f.order = f.order[:0]
	clear(f.pending)
	return out
}

// deliver sends the buffered changes to out until ctx is done.
func (f *feedBuffer) deliver(ctx context.Context, out chan<- prebuilds.Change) {
	for {
		select {
		case <-ctx.Done():
			return
		case <-f.wake:
		}
		for _, c := range f.take() {
			select {
			case out <- c:
			case <-ctx.Done():
				return
			}
		}
	}
}
