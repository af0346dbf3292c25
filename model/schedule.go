package model

import (
	"fmt"
	"strings"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/prebuildkit/prebuildkit/prebuilds"
)

// parser reads five-field cron expressions, no descriptors.
var parser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// scheduleOn reports whether expr covers the wall-clock minute that contains
// now in loc. It asks robfig/cron for the first activation at or after the
// start of that minute and checks that it is the start itself.
func scheduleOn(expr string, loc *time.Location, now time.Time) (bool, error) {
	if strings.Contains(expr, "TZ=") {
		return false, fmt.Errorf("cron %q: time zone prefix not allowed", expr)
	}
	sched, err := parser.Parse(expr)
	if err != nil {
		return false, fmt.Errorf("cron %q: %w", expr, err)
	}
	local := now.In(loc)
	minuteStart := local.Add(-time.Duration(local.Second())*time.Second - time.Duration(local.Nanosecond()))
	return sched.Next(minuteStart.Add(-time.Nanosecond)).Equal(minuteStart), nil
}

// zone loads a preset's time zone. The empty name and "Local" are refused:
// they would make the answer depend on the machine.
func zone(name string) (*time.Location, error) {
	if name == "" || name == "Local" {
		return nil, fmt.Errorf("time zone %q not usable", name)
	}
	return time.LoadLocation(name)
}

// desiredAt is desired_at(P, now) of docs/spec.md ("desired_at"). invalid reports that a stored
// zone or cron expression could not be evaluated and the static count was
// used.
func desiredAt(desired *int, tz string, schedules []prebuilds.Schedule, now time.Time) (n int, invalid bool) {
	static := 0
	if desired != nil {
		static = *desired
	}
	if len(schedules) == 0 {
		return static, false
	}
	loc, err := zone(tz)
	if err != nil {
		return static, true
	}
	for _, s := range schedules {
		on, err := scheduleOn(s.Cron, loc, now)
		if err != nil {
			return static, true
		}
		if on {
			return s.Instances, false
		}
	}
	return static, false
}
