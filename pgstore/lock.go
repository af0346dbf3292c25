package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
)

// lockReleaseTimeout bounds the release of a session advisory lock: the
// unlock statement and, when the connection has to be dropped, the wait
// for the server to end its backend.
const lockReleaseTimeout = 10 * time.Second

// errLockNotHeld reports an unlock that found the lock not held by the
// session that took it.
var errLockNotHeld = errors.New("lock was not held")

// sessionLock is a session-level advisory lock (the reconciliation lock or
// the migration lock) taken on one connection of pool.
//
// Why the release must wait for the server: PostgreSQL frees a session's
// advisory locks only when the session unlocks them or when its backend
// process exits. Closing a connection on the client side does not make the
// backend exit then: pgx sends Terminate (or just closes the socket) and
// returns at once, and the backend reads it, aborts, and releases its locks
// whenever the operating system next schedules it. A connection gets closed
// more often than one might think: pgx's BeginTx closes the connection on
// any error that is not a server error, including "context canceled" for a
// context that was already done before BEGIN was sent (so a pass whose
// context was canceled used to drop the lock's connection on its next
// Snapshot), and a context canceled during a query makes pgx close the
// connection too. Returning right after the close left a window in which
// the next acquirer, on another connection, found the lock still held; on a
// loaded machine the window lasted long enough to be hit (it made
// TestLockReleasedOnCancel flaky). So release unlocks on a context that is
// not canceled, and when the connection has to be dropped it returns only
// once pg_locks shows that the backend no longer holds the lock.
type sessionLock struct {
	pool *pgxpool.Pool
	pc   *pgxpool.Conn
	key  int64
	// pid is the backend process of pc, recorded when the connection was
	// acquired: it is what pg_locks names the holder by.
	pid uint32
}

// newSessionLock records pc's backend before the lock is requested on it.
func newSessionLock(pool *pgxpool.Pool, pc *pgxpool.Conn, key int64) *sessionLock {
	return &sessionLock{pool: pool, pc: pc, key: key, pid: pc.Conn().PgConn().PID()}
}

// release frees the lock and gives the connection back to the pool, or
// drops the connection and waits until its backend no longer holds the
// lock. granted says whether the lock request is known to have succeeded;
// after a lock request that failed (granted false) the server may or may not
// have granted it, and finding it not held is then no error. release runs
// on ctx without its cancellation, bounded by lockReleaseTimeout; when it
// returns nil the lock is free for the next acquirer.
func (l *sessionLock) release(ctx context.Context, granted bool) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), lockReleaseTimeout)
	defer cancel()
	var unlockErr error
	if !l.pc.Conn().IsClosed() {
		var released bool
		unlockErr = l.pc.QueryRow(rctx, `SELECT pg_advisory_unlock($1)`, l.key).Scan(&released)
		switch {
		case unlockErr == nil && (released || !granted):
			l.pc.Release()
			return nil
		case unlockErr == nil:
			unlockErr = errLockNotHeld
		}
	}
	conn := l.pc.Hijack()
	_ = conn.Close(rctx)
	if err := l.waitBackendReleased(rctx); err != nil {
		return errors.Join(unlockErr, err)
	}
	if errors.Is(unlockErr, errLockNotHeld) {
		return fmt.Errorf("release advisory lock %d: %w", l.key, unlockErr)
	}
	// The lock is free: the connection failed, but the release did not.
	return nil
}

// lockHeldByBackendSQL reports whether backend $1 holds the advisory lock
// whose 64-bit key has high half $2 and low half $3 in the current
// database. pg_locks shows an advisory lock taken with one bigint key as
// classid = high 32 bits, objid = low 32 bits, objsubid = 1.
const lockHeldByBackendSQL = `
SELECT EXISTS (
    SELECT FROM pg_locks
    WHERE locktype = 'advisory'
      AND pid = $1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND classid::int8 = $2
      AND objid::int8 = $3
      AND objsubid = 1
)`

// waitBackendReleased polls pg_locks on another connection of the pool
// until l's backend no longer holds the lock, with a delay growing from
// 1ms to 50ms between polls, until ctx is done.
//
// pg_terminate_backend(pid, timeout) would wait on the server instead, but
// it needs PostgreSQL 14, the right to signal the backend, and, should the
// backend have exited and its process ID been reused by then, it would end
// an unrelated session; reading pg_locks can do no harm.
func (l *sessionLock) waitBackendReleased(ctx context.Context) error {
	high, low := int64(uint64(l.key)>>32), int64(uint32(l.key))
	delay := time.Millisecond
	for {
		var held bool
		if err := l.pool.QueryRow(ctx, lockHeldByBackendSQL, int64(l.pid), high, low).Scan(&held); err != nil {
			return fmt.Errorf("advisory lock %d: connection of backend %d dropped; checking that the server released the lock: %w", l.key, l.pid, err)
		}
		if !held {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("advisory lock %d: connection of backend %d dropped, and the server still held the lock for it when the wait (at most %s) ended: %w", l.key, l.pid, lockReleaseTimeout, context.Cause(ctx))
		case <-t.C:
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}
