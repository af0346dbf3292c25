package pgstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// lockReleaseTimeout bounds the release of a session advisory lock: the
// unlock statement and, when the connection has to be dropped, the wait
// for the server to end its backend.
const lockReleaseTimeout = 10 * time.Second

// errLockNotHeld reports an unlock that found the lock not held by the
// session that took it.
var errLockNotHeld = errors.New("lock was not held")

// advisoryKey names an advisory lock in one of PostgreSQL's two key spaces,
// which never overlap: one bigint key (the reconciliation and migration
// locks), or a pair of integer keys (the shard locks).
type advisoryKey struct {
	pair   bool
	single int64
	k1, k2 int32
}

// singleKey is the lock of one bigint key.
func singleKey(k int64) advisoryKey { return advisoryKey{single: k} }

// pairKey is the lock of the integer pair (k1, k2).
func pairKey(k1, k2 int32) advisoryKey { return advisoryKey{pair: true, k1: k1, k2: k2} }

// args are the key's arguments of the advisory lock functions.
func (k advisoryKey) args() []any {
	if k.pair {
		return []any{k.k1, k.k2}
	}
	return []any{k.single}
}

// call is the SQL that calls the advisory lock function fn on the key.
func (k advisoryKey) call(fn string) string {
	if k.pair {
		return `SELECT ` + fn + `($1::int4, $2::int4)`
	}
	return `SELECT ` + fn + `($1::int8)`
}

// pgLocks is how pg_locks shows the lock: a bigint key as classid = its high
// 32 bits, objid = its low 32 bits, objsubid = 1; a pair as classid = k1,
// objid = k2 (both as unsigned oids), objsubid = 2.
func (k advisoryKey) pgLocks() (classid, objid int64, objsubid int32) {
	if k.pair {
		return int64(uint32(k.k1)), int64(uint32(k.k2)), 2
	}
	return int64(uint64(k.single) >> 32), int64(uint32(k.single)), 1
}

func (k advisoryKey) String() string {
	if k.pair {
		return fmt.Sprintf("(%d, %d)", k.k1, k.k2)
	}
	return fmt.Sprint(k.single)
}

// sessionLock is a session-level advisory lock (the reconciliation lock, a
// shard lock or the migration lock) taken on one connection of pool.
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
	key  advisoryKey
	// pid is the backend process of pc, recorded when the connection was
	// acquired: it is what pg_locks names the holder by.
	pid uint32
}

// newSessionLock records pc's backend before the lock is requested on it.
func newSessionLock(pool *pgxpool.Pool, pc *pgxpool.Conn, key advisoryKey) *sessionLock {
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
		unlockErr = l.pc.QueryRow(rctx, l.key.call("pg_advisory_unlock"), l.key.args()...).Scan(&released)
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
		return fmt.Errorf("release advisory lock %s: %w", l.key, unlockErr)
	}
	// The lock is free: the connection failed, but the release did not.
	return nil
}

// lockHeldByBackendSQL reports whether backend $1 holds the advisory lock
// that pg_locks shows as classid $2, objid $3, objsubid $4 (see
// advisoryKey.pgLocks) in the current database.
const lockHeldByBackendSQL = `
SELECT EXISTS (
    SELECT FROM pg_locks
    WHERE locktype = 'advisory'
      AND pid = $1
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND classid::int8 = $2
      AND objid::int8 = $3
      AND objsubid = $4
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
	classid, objid, objsubid := l.key.pgLocks()
	delay := time.Millisecond
	for {
		var held bool
		if err := l.pool.QueryRow(ctx, lockHeldByBackendSQL, int64(l.pid), classid, objid, objsubid).Scan(&held); err != nil {
			return fmt.Errorf("advisory lock %s: connection of backend %d dropped; checking that the server released the lock: %w", l.key, l.pid, err)
		}
		if !held {
			return nil
		}
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return fmt.Errorf("advisory lock %s: connection of backend %d dropped, and the server still held the lock for it when the wait (at most %s) ended: %w", l.key, l.pid, lockReleaseTimeout, context.Cause(ctx))
		case <-t.C:
		}
		delay = min(2*delay, 50*time.Millisecond)
	}
}

// Compile-time proof that Store locks shards.
var _ prebuilds.ShardLocker = (*Store)(nil)

// WithReconciliationLock tries the cluster-wide reconciliation lock without
// blocking and, when it gets it, calls fn with a reader each of whose
// Snapshot calls runs in its own short REPEATABLE READ READ ONLY
// transaction.
//
// The lock is a session-level advisory lock (pg_try_advisory_lock) on a
// dedicated pooled connection, held until fn returns. Each snapshot
// transaction is begun on that connection only after the lock is granted
// and is committed as soon as the snapshot has been read, so no
// transaction stays open (pinning xmin and holding back vacuum) while fn
// writes. A transaction-level lock taken by the snapshot transaction's own
// first statement would not do: a REPEATABLE READ snapshot is fixed when
// that statement starts, before the lock is granted, so it could miss
// writes the previous holder committed just before releasing the lock.
// Writes fn makes go through the Store's pool (other connections) and
// commit while the lock is held.
//
// When WithReconciliationLock returns, the lock is free for the next
// acquirer, whatever happened to ctx: the unlock runs on a context that is
// not canceled, and if the connection has to be dropped instead (it died
// during fn, or the unlock failed) the call returns only once the server
// has ended that connection's session, or with an error after waiting
// 10 seconds for it.
func (s *Store) WithReconciliationLock(ctx context.Context, fn func(ctx context.Context, r prebuilds.SnapshotReader) error) (acquired bool, err error) {
	return s.withSessionLock(ctx, "reconciliation lock", singleKey(s.lockKey), fn)
}

// MaxShards is the largest Shard.Count WithShardLock accepts: the shard's
// count and index share one 32-bit key.
const MaxShards = prebuilds.MaxShards

// WithShardLock implements prebuilds.ShardLocker: the reconciliation lock of
// one shard, taken and released exactly as WithReconciliationLock's (the
// same code). Each (Count, Index) has its own session advisory lock in the
// two-key space of pg_try_advisory_lock(int4, int4), which no bigint key
// (the cluster-wide lock, the migration lock) can collide with: the first
// key is the store's lock key folded to 32 bits (its halves XORed), the
// second Count<<16 | Index. The zero shard (Count ≤ 1) is the cluster-wide
// lock. A shard that is not Valid, or a Count above MaxShards, is
// ErrInvalidArgument.
func (s *Store) WithShardLock(ctx context.Context, shard prebuilds.Shard, fn func(ctx context.Context, r prebuilds.SnapshotReader) error) (bool, error) {
	key, err := s.shardKey(shard)
	if err != nil {
		return false, opError("shard lock", fmt.Sprintf("%d of %d", shard.Index, shard.Count), err)
	}
	if shard.All() {
		return s.WithReconciliationLock(ctx, fn)
	}
	return s.withSessionLock(ctx, fmt.Sprintf("shard lock %d of %d", shard.Index, shard.Count), key, fn)
}

// shardKey is the advisory key of a shard's lock.
func (s *Store) shardKey(shard prebuilds.Shard) (advisoryKey, error) {
	switch {
	case !shard.Valid():
		return advisoryKey{}, errf(prebuilds.ErrInvalidArgument, "shard %d of %d is not a shard", shard.Index, shard.Count)
	case shard.Count > MaxShards:
		return advisoryKey{}, errf(prebuilds.ErrInvalidArgument, "shard count %d is above %d", shard.Count, MaxShards)
	case shard.All():
		return singleKey(s.lockKey), nil
	}
	folded := uint32(uint64(s.lockKey)>>32) ^ uint32(s.lockKey)
	return pairKey(int32(folded), int32(uint32(shard.Count)<<16|uint32(shard.Index))), nil
}

// withSessionLock is WithReconciliationLock for any key: op names the lock
// in errors.
func (s *Store) withSessionLock(ctx context.Context, op string, key advisoryKey, fn func(ctx context.Context, r prebuilds.SnapshotReader) error) (acquired bool, err error) {
	pc, err := s.pool.Acquire(ctx)
	if err != nil {
		return false, opError(op, key, err)
	}
	l := newSessionLock(s.pool, pc, key)
	var got bool
	if err := pc.QueryRow(ctx, key.call("pg_try_advisory_lock"), key.args()...).Scan(&got); err != nil {
		// The server may have granted the lock before the request failed
		// (a canceled context, a broken connection).
		return false, opError(op, key, errors.Join(err, l.release(ctx, false)))
	}
	if !got {
		pc.Release()
		return false, nil
	}
	r := &snapshotReader{pc: pc}
	defer func() {
		// close waits for a Snapshot still running on the connection, so
		// the unlock never shares it with a read.
		r.close()
		if uerr := l.release(ctx, true); uerr != nil && err == nil {
			err = opError(op, key, uerr)
		}
	}()
	return true, fn(ctx, r)
}
