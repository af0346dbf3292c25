package report

import (
	"fmt"
	"sort"
	"strconv"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Series is one line of the chart: milliseconds per pass by preset count.
type Series struct {
	Store  string
	Points plotter.XYs
}

// PassLatency collects the steady-state pass medians, one series per
// store, from the names "<prefix>/store=S/presets=N".
func PassLatency(rs *Results, prefix string) []Series {
	byStore := map[string]plotter.XYs{}
	for _, name := range matching(rs, prefix) {
		var store string
		presets := -1
		for _, part := range strings.Split(strings.TrimPrefix(name, prefix+"/"), "/") {
			k, v, _ := strings.Cut(part, "=")
			switch k {
			case "store":
				store = v
			case "presets":
				if n, err := strconv.Atoi(v); err == nil {
					presets = n
				}
			}
		}
		ns, ok := rs.Median(name, "ns/op")
		if store == "" || presets <= 0 || !ok {
			continue
		}
		byStore[store] = append(byStore[store], plotter.XY{X: float64(presets), Y: ns / 1e6})
	}
	stores := make([]string, 0, len(byStore))
	for s := range byStore {
		stores = append(stores, s)
	}
	sort.Strings(stores)
	out := make([]Series, 0, len(stores))
	for _, s := range stores {
		pts := byStore[s]
		sort.Slice(pts, func(i, j int) bool { return pts[i].X < pts[j].X })
		out = append(out, Series{Store: s, Points: pts})
	}
	return out
}

// storeLabels names the stores in the legend.
var storeLabels = map[string]string{"mem": "memstore", "pg": "pgstore"}

// SaveChart draws the series on log-log axes and writes a PNG to path.
func SaveChart(path, title string, series []Series) error {
	if len(series) == 0 {
		return fmt.Errorf("report: chart %s: no data", path)
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "presets (5 running prebuilds each)"
	p.Y.Label.Text = "ms per ReconcileAll pass (median)"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())
	var args []any
	for _, s := range series {
		label := storeLabels[s.Store]
		if label == "" {
			label = s.Store
		}
		args = append(args, label, s.Points)
	}
	if err := plotutil.AddLinePoints(p, args...); err != nil {
		return fmt.Errorf("report: chart %s: %w", path, err)
	}
	p.Legend.Top, p.Legend.Left = true, true
	if err := p.Save(7*vg.Inch, 4.5*vg.Inch, path); err != nil {
		return fmt.Errorf("report: chart %s: %w", path, err)
	}
	return nil
}
