package report

import (
	"fmt"
	"image/color"
	"math"
	"slices"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
)

// Series is one line of the chart: milliseconds per pass (medians) by
// preset count.
type Series struct {
	Store, Kind string
	Points      plotter.XYs
}

// PassSeries collects the medians of the idle and churn passes, one series
// per store and kind, points by ascending preset count.
func PassSeries(rows []SuiteRow) []Series {
	var out []Series
	for _, store := range Stores(rows) {
		for _, kind := range SizingKinds {
			var pts plotter.XYs
			for _, r := range rows {
				if r.Store != store || r.Group != "Pass/"+kind || r.N <= 0 {
					continue
				}
				if ns, ok := r.Median("ns/op"); ok && ns > 0 {
					pts = append(pts, plotter.XY{X: float64(r.N), Y: ns / 1e6})
				}
			}
			if len(pts) == 0 {
				continue
			}
			slices.SortFunc(pts, func(a, b plotter.XY) int {
				switch {
				case a.X < b.X:
					return -1
				case a.X > b.X:
					return 1
				}
				return 0
			})
			out = append(out, Series{Store: store, Kind: kind, Points: pts})
		}
	}
	return out
}

// SaveChart draws the series on log-log axes, each store in its colour
// (idle solid, churn dashed), with a horizontal line at each Interval's
// budget, and writes a PNG to path.
func SaveChart(path, title string, series []Series) error {
	if len(series) == 0 {
		return fmt.Errorf("report: chart %s: no data", path)
	}
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "presets (5 running prebuilds each)"
	// Short: gonum centres the label of a log axis on the linear midpoint of
	// its range, near the top, and pads the plot for a long one.
	p.Y.Label.Text = "ms per pass"
	p.X.Scale, p.Y.Scale = plot.LogScale{}, plot.LogScale{}
	p.X.Tick.Marker, p.Y.Tick.Marker = plot.LogTicks{Prec: -1}, plot.LogTicks{Prec: -1}
	p.Add(plotter.NewGrid())

	xmin, xmax, ymin := math.Inf(1), math.Inf(-1), math.Inf(1)
	stores := map[string]int{}
	for _, s := range series {
		if _, ok := stores[s.Store]; !ok {
			stores[s.Store] = len(stores)
		}
		for _, pt := range s.Points {
			xmin, xmax, ymin = min(xmin, pt.X), max(xmax, pt.X), min(ymin, pt.Y)
		}
	}
	for _, s := range series {
		line, points, err := plotter.NewLinePoints(s.Points)
		if err != nil {
			return fmt.Errorf("report: chart %s: %w", path, err)
		}
		i := stores[s.Store]
		line.Color, points.Color = plotutil.Color(i), plotutil.Color(i)
		points.Shape = plotutil.Shape(i)
		if s.Kind != "idle" {
			line.Dashes = []vg.Length{vg.Points(6), vg.Points(3)}
		}
		p.Add(line, points)
		p.Legend.Add(s.Store+" "+s.Kind, line, points)
	}
	for i, d := range Intervals {
		y := float64(Budget(d).Milliseconds())
		line, err := plotter.NewLine(plotter.XYs{{X: xmin, Y: y}, {X: xmax, Y: y}})
		if err != nil {
			return fmt.Errorf("report: chart %s: %w", path, err)
		}
		line.Color = color.Gray{Y: uint8(90 + 50*i)}
		line.Dashes = []vg.Length{vg.Points(2), vg.Points(2)}
		line.Width = vg.Points(1.5)
		p.Add(line)
		p.Legend.Add(fmt.Sprintf("%s = %.0f%% of a %s interval", budgetName(Budget(d)), Headroom*100, intervalName(d)), line)
	}
	// Whole decades: gonum pads the plot for a tick label of the decade
	// above an axis that ends between two.
	p.Y.Min = math.Pow(10, math.Floor(math.Log10(min(ymin, p.Y.Min))))
	p.Y.Max = math.Pow(10, math.Ceil(math.Log10(max(p.Y.Max, float64(Budget(Intervals[0]).Milliseconds())*1.5))))
	p.Legend.Top, p.Legend.Left = false, false // below the rising lines
	p.Legend.TextStyle.Font.Size = vg.Points(8)
	if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
		return fmt.Errorf("report: chart %s: %w", path, err)
	}
	return nil
}

// intervalName prints an interval as in Go code: "1m", "30s".
func intervalName(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	return s
}

// budgetName prints a pass budget: "6 s", "0.5 s".
func budgetName(d time.Duration) string { return fmt.Sprintf("%g s", d.Seconds()) }
