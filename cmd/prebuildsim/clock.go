package main

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/coder/quartz"
)

// errClockUnsupported is returned (through a Waiter) or reported (by a
// panic with a clear message) when code under simulation asks the simulated
// clock for something it cannot provide.
var errClockUnsupported = errors.New("simclock: timers and tickers are not simulated; the simulation calls ReconcileAll itself")

// simClock is a quartz.Clock whose time only moves when the simulation
// advances it. It implements what the Reconciler's ReconcileAll and
// ReconcilePresets use (Now, Since, Until). TickerFunc returns a Waiter that fails at once without
// calling f, because the simulation drives every pass itself; NewTicker,
// NewTimer and AfterFunc cannot be built outside quartz and panic with
// errClockUnsupported — a programming error in this command, never input.
type simClock struct {
	mu  sync.Mutex
	now time.Time
}

var _ quartz.Clock = (*simClock)(nil)

func newSimClock(start time.Time) *simClock { return &simClock{now: start} }

// Advance moves simulated time forward by d (never backward).
func (c *simClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if d > 0 {
		c.now = c.now.Add(d)
	}
	return c.now
}

// AdvanceTo moves simulated time forward to t (never backward).
func (c *simClock) AdvanceTo(t time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	if t.After(c.now) {
		c.now = t
	}
	return c.now
}

func (c *simClock) Now(...string) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *simClock) Since(t time.Time, _ ...string) time.Duration { return c.Now().Sub(t) }

func (c *simClock) Until(t time.Time, _ ...string) time.Duration { return t.Sub(c.Now()) }

func (c *simClock) TickerFunc(context.Context, time.Duration, func() error, ...string) quartz.Waiter {
	return failedWaiter{err: errClockUnsupported}
}

func (c *simClock) NewTicker(time.Duration, ...string) *quartz.Ticker { panic(errClockUnsupported) }

func (c *simClock) NewTimer(time.Duration, ...string) *quartz.Timer { panic(errClockUnsupported) }

func (c *simClock) AfterFunc(time.Duration, func(), ...string) *quartz.Timer {
	panic(errClockUnsupported)
}

type failedWaiter struct{ err error }

func (w failedWaiter) Wait(...string) error { return w.err }
