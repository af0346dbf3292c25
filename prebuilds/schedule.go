package prebuilds

import (
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/robfig/cron/v3"
)

// cronParser accepts exactly five fields and no descriptors (@hourly,
// @every): a schedule says which minutes it covers, not how often to fire.
var cronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow)

// starBit is robfig/cron's marker for a field written as "*" or "?"; it
// changes how day-of-month and day-of-week combine.
const starBit = 1 << 63

// parseCache memoises parsed cron expressions and loaded zones: a pass
// evaluates every scheduled preset, and parsing (or reading the zone file)
// each time would dominate planning. Entries are immutable once stored; the
// cache stops growing at maxCached entries of each kind (fuzzed or hostile
// input then just goes uncached).
type parseCache struct {
	mu    sync.RWMutex
	crons map[string]cronResult
	zones map[string]zoneResult
}

type cronResult struct {
	spec *cron.SpecSchedule
	err  error
}

type zoneResult struct {
	loc *time.Location
	err error
}

const maxCached = 4096

var cache = parseCache{crons: map[string]cronResult{}, zones: map[string]zoneResult{}}

func parseCron(expr string) (*cron.SpecSchedule, error) {
	cache.mu.RLock()
	r, ok := cache.crons[expr]
	cache.mu.RUnlock()
	if ok {
		return r.spec, r.err
	}
	spec, err := parseCronUncached(expr)
	cache.mu.Lock()
	if len(cache.crons) < maxCached {
		cache.crons[expr] = cronResult{spec, err}
	}
	cache.mu.Unlock()
	return spec, err
}

func loadLocation(name string) (*time.Location, error) {
	cache.mu.RLock()
	r, ok := cache.zones[name]
	cache.mu.RUnlock()
	if ok {
		return r.loc, r.err
	}
	loc, err := loadLocationUncached(name)
	cache.mu.Lock()
	if len(cache.zones) < maxCached {
		cache.zones[name] = zoneResult{loc, err}
	}
	cache.mu.Unlock()
	return loc, err
}

// parseCronUncached parses a five-field expression. Time-zone prefixes are
// rejected because the zone belongs to the preset.
func parseCronUncached(expr string) (*cron.SpecSchedule, error) {
	trimmed := strings.TrimSpace(expr)
	if trimmed == "" {
		return nil, fmt.Errorf("empty cron expression")
	}
	if strings.HasPrefix(trimmed, "TZ=") || strings.HasPrefix(trimmed, "CRON_TZ=") {
		return nil, fmt.Errorf("time zone prefix not allowed: set the preset's timezone instead")
	}
	if len(strings.Fields(trimmed)) != 5 {
		return nil, fmt.Errorf("want 5 fields (minute hour day-of-month month day-of-week), got %d", len(strings.Fields(trimmed)))
	}
	s, err := cronParser.Parse(trimmed)
	if err != nil {
		return nil, err
	}
	spec, ok := s.(*cron.SpecSchedule)
	if !ok {
		return nil, fmt.Errorf("unsupported cron expression")
	}
	return spec, nil
}

// cronMatches reports whether spec covers the wall-clock minute of t (t is
// already in the preset's zone).
func cronMatches(spec *cron.SpecSchedule, t time.Time) bool {
	if spec.Minute&(1<<uint(t.Minute())) == 0 ||
		spec.Hour&(1<<uint(t.Hour())) == 0 ||
		spec.Month&(1<<uint(t.Month())) == 0 {
		return false
	}
	dom := spec.Dom&(1<<uint(t.Day())) != 0
	dow := spec.Dow&(1<<uint(t.Weekday())) != 0
	if spec.Dom&starBit != 0 || spec.Dow&starBit != 0 {
		return dom && dow
	}
	return dom || dow
}

// DesiredAt returns the number of prebuilds p wants at instant now: the
// instances of the first schedule whose cron expression matches the minute
// containing now in p.Timezone, or *p.Desired when none matches (0 when
// Desired is nil). A stored preset whose timezone or cron cannot be parsed
// falls back to Desired; the error says why so the caller can report it.
func DesiredAt(p Preset, now time.Time) (int, error) {
	base := 0
	if p.Desired != nil {
		base = *p.Desired
	}
	if len(p.Schedules) == 0 {
		return base, nil
	}
	loc, err := loadLocation(p.Timezone)
	if err != nil {
		return base, &ValidationError{Field: "timezone", Reason: err.Error()}
	}
	local := now.In(loc)
	for i, s := range p.Schedules {
		spec, err := parseCron(s.Cron)
		if err != nil {
			return base, &ValidationError{Field: fmt.Sprintf("schedules[%d].cron", i), Reason: err.Error()}
		}
		if cronMatches(spec, local) {
			return s.Instances, nil
		}
	}
	return base, nil
}

func loadLocationUncached(name string) (*time.Location, error) {
	if name == "" {
		return nil, fmt.Errorf("required when schedules are set")
	}
	// time.LoadLocation treats "Local" specially and accepts "" as UTC; both
	// would make a stored preset depend on the machine that evaluates it.
	if name == "Local" {
		return nil, fmt.Errorf("%q is not a fixed zone", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown time zone %q", name)
	}
	return loc, nil
}
