package report

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"time"
)

// Headroom is the share of Config.Interval a pass may take: the sizing
// answer is the largest fleet whose pass stays under Headroom × Interval.
const Headroom = 0.10

// Intervals are the reconcile intervals the sizing table answers for.
var Intervals = []time.Duration{time.Minute, 30 * time.Second, 10 * time.Second}

// Budget is the pass time the sizing allows at interval d.
func Budget(d time.Duration) time.Duration {
	return time.Duration(float64(d) * Headroom)
}

// DefaultMaxExtrapolation bounds how far above the largest measured preset
// count an answer may come from the fit: beyond it the table says "more
// than" instead of a number.
const DefaultMaxExtrapolation = 4.0

// Fit is the least-squares line ln t = A + K·ln N through every sample of
// a pass (t its time, N the preset count): t grows as N^K.
type Fit struct {
	A, K float64
	// SEK is the standard error of K.
	SEK float64
	// RSE is the residual standard error in natural-log units: a single
	// pass is typically within a factor e^RSE of the line.
	RSE float64
	// Points is the number of samples, Sizes the number of distinct preset
	// counts, MinN and MaxN the smallest and largest.
	Points, Sizes int
	MinN, MaxN    float64

	meanX, sxx float64
}

// ErrTooFewSizes is returned by FitPowerLaw when the samples do not span
// enough preset counts for a fit with an error.
var ErrTooFewSizes = errors.New("report: a fit needs samples at 3 or more preset counts")

// FitPowerLaw fits ln t = A + K·ln N to the samples (ns[i], ts[i]); every
// value must be positive.
func FitPowerLaw(ns, ts []float64) (Fit, error) {
	if len(ns) != len(ts) {
		return Fit{}, fmt.Errorf("report: fit: %d preset counts for %d times", len(ns), len(ts))
	}
	f := Fit{Points: len(ns), MinN: math.Inf(1), MaxN: math.Inf(-1)}
	var distinct []float64
	var sumX, sumY float64
	for i := range ns {
		if !(ns[i] > 0) || !(ts[i] > 0) || math.IsInf(ts[i], 0) {
			return Fit{}, fmt.Errorf("report: fit: sample (%g presets, %g) is not positive", ns[i], ts[i])
		}
		if !slices.Contains(distinct, ns[i]) {
			distinct = append(distinct, ns[i])
		}
		f.MinN, f.MaxN = min(f.MinN, ns[i]), max(f.MaxN, ns[i])
		sumX += math.Log(ns[i])
		sumY += math.Log(ts[i])
	}
	f.Sizes = len(distinct)
	if f.Sizes < 3 {
		return Fit{}, ErrTooFewSizes
	}
	n := float64(len(ns))
	f.meanX = sumX / n
	meanY := sumY / n
	var sxy float64
	for i := range ns {
		dx := math.Log(ns[i]) - f.meanX
		f.sxx += dx * dx
		sxy += dx * (math.Log(ts[i]) - meanY)
	}
	f.K = sxy / f.sxx
	f.A = meanY - f.K*f.meanX
	var sse float64
	for i := range ns {
		r := math.Log(ts[i]) - (f.A + f.K*math.Log(ns[i]))
		sse += r * r
	}
	f.RSE = math.Sqrt(sse / (n - 2))
	f.SEK = f.RSE / math.Sqrt(f.sxx)
	return f, nil
}

// Predict returns the fitted pass time at n presets.
func (f Fit) Predict(n float64) float64 { return math.Exp(f.A + f.K*math.Log(n)) }

// Band returns the 95% prediction interval of one more sample at n
// presets: where a new measurement is expected to fall.
func (f Fit) Band(n float64) (lo, hi float64) {
	y := f.A + f.K*math.Log(n)
	h := f.halfWidth(math.Log(n))
	return math.Exp(y - h), math.Exp(y + h)
}

// halfWidth is the half-width of the 95% prediction interval at x = ln N,
// in log units.
func (f Fit) halfWidth(x float64) float64 {
	n := float64(f.Points)
	d := x - f.meanX
	return tQuantile975(f.Points-2) * f.RSE * math.Sqrt(1+1/n+d*d/f.sxx)
}

// Answer is the largest preset count whose pass stays within a budget.
type Answer struct {
	// N is where the fitted line reaches the budget; Lo and Hi where the
	// upper and the lower bound of the 95% prediction band reach it (Lo is
	// the cautious answer). Each is clamped to [Min, Limit].
	N, Lo, Hi float64
	// Min is the smallest measured preset count and Limit the largest
	// count the table answers with (MaxN × the extrapolation factor). A
	// value equal to Limit means "more than Limit", equal to Min "less
	// than Min": the fit is not trusted there.
	Min, Limit float64
	// Missing names what is not measured when there is no answer.
	Missing string
	// Only, when not empty, says the answer rests on one pass because the
	// other was not measured.
	Only string
}

// Above and Below report an answer beyond the range the table trusts.
func (a Answer) Above() bool { return a.Missing == "" && a.N >= a.Limit }
func (a Answer) Below() bool { return a.Missing == "" && a.N <= a.Min }

// Within answers for budget (in the unit of the fitted times), trusting
// the fit from the smallest measured preset count up to factor × the
// largest.
func (f Fit) Within(budget, factor float64) Answer {
	a := Answer{Min: f.MinN, Limit: f.MaxN * factor}
	lb := math.Log(budget)
	lo, hi := math.Log(a.Min), math.Log(a.Limit)
	// Where g, increasing over [lo, hi] for a growing pass, first exceeds
	// lb; clamped to the range.
	solve := func(g func(x float64) float64) float64 {
		switch {
		case g(lo) > lb:
			return a.Min
		case g(hi) <= lb:
			return a.Limit
		}
		l, h := lo, hi
		for range 100 {
			m := (l + h) / 2
			if g(m) > lb {
				h = m
			} else {
				l = m
			}
		}
		return math.Exp(l)
	}
	line := func(x float64) float64 { return f.A + f.K*x }
	a.N = solve(line)
	a.Lo = solve(func(x float64) float64 { return line(x) + f.halfWidth(x) })
	a.Hi = solve(func(x float64) float64 { return line(x) - f.halfWidth(x) })
	return a
}

// Both is the answer for two passes that must both stay within the budget:
// the smaller at every bound.
func Both(a, b Answer) Answer {
	switch {
	case a.Missing != "":
		return a
	case b.Missing != "":
		return b
	}
	return Answer{N: min(a.N, b.N), Lo: min(a.Lo, b.Lo), Hi: min(a.Hi, b.Hi), Min: max(a.Min, b.Min), Limit: min(a.Limit, b.Limit)}
}

// tQuantile975 is the 0.975 quantile of Student's t with df degrees of
// freedom (two-sided 95%).
func tQuantile975(df int) float64 {
	table := []float64{
		12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228,
		2.201, 2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086,
		2.080, 2.074, 2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042,
	}
	switch {
	case df < 1:
		return math.Inf(1)
	case df <= len(table):
		return table[df-1]
	}
	return 1.96 + 2.4/float64(df) // within 0.002 of the exact value above 30
}

// Sizing is the sizing answer for one store.
type Sizing struct {
	Store string
	// Fits are per pass kind ("idle", "churn"); a kind without a fit has
	// its reason in Errs.
	Fits map[string]Fit
	Errs map[string]string
}

// SizingKinds are the passes the sizing answer covers.
var SizingKinds = []string{"idle", "churn"}

// Sizings fits the idle and churn passes of every store in rows.
func Sizings(rows []SuiteRow) []Sizing {
	var out []Sizing
	for _, store := range Stores(rows) {
		s := Sizing{Store: store, Fits: map[string]Fit{}, Errs: map[string]string{}}
		any := false
		for _, kind := range SizingKinds {
			var ns, ts []float64
			for _, r := range rows {
				if r.Store != store || r.Group != "Pass/"+kind || r.N <= 0 {
					continue
				}
				for _, v := range r.Samples["ns/op"] {
					ns = append(ns, float64(r.N))
					ts = append(ts, v)
				}
			}
			if len(ns) == 0 {
				s.Errs[kind] = "not measured"
				continue
			}
			any = true
			f, err := FitPowerLaw(ns, ts)
			switch {
			case errors.Is(err, ErrTooFewSizes):
				s.Errs[kind] = "measured at fewer than 3 preset counts"
			case err != nil:
				s.Errs[kind] = err.Error()
			default:
				s.Fits[kind] = f
			}
		}
		if any {
			out = append(out, s)
		}
	}
	return out
}

// Answer is the store's answer for budget (ns) for kind, or for both
// kinds when kind is "": when one of them was not measured at all, the
// answer of the other, marked Only.
func (s Sizing) Answer(kind string, budget, factor float64) Answer {
	if kind == "" {
		var got []Answer
		var missing []string
		for _, k := range SizingKinds {
			if s.Errs[k] == "not measured" {
				missing = append(missing, k)
				continue
			}
			got = append(got, s.Answer(k, budget, factor))
		}
		switch len(got) {
		case 0:
			return Answer{Missing: "no pass measured"}
		case 1:
			a := got[0]
			if a.Missing == "" {
				a.Only = fmt.Sprintf("%s pass only: the %s pass was not measured", otherKind(missing[0]), missing[0])
			}
			return a
		}
		return Both(got[0], got[1])
	}
	f, ok := s.Fits[kind]
	if !ok {
		return Answer{Missing: kind + " pass " + s.Errs[kind]}
	}
	return f.Within(budget, factor)
}

// otherKind is the sizing kind that is not k.
func otherKind(k string) string {
	for _, o := range SizingKinds {
		if o != k {
			return o
		}
	}
	return k
}
