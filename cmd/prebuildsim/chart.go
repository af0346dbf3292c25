package main

// The chart lives in the command, never in the library: prebuilds and
// memstore must not import gonum.org/v1/plot, so that a consumer's go.sum
// stays free of it.

import (
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
	"gonum.org/v1/plot/vg/vgsvg"
)

// chartFormat returns "png" or "svg" from the file name's extension.
func chartFormat(path string) (string, error) {
	switch ext := strings.ToLower(filepath.Ext(path)); ext {
	case ".png", ".svg":
		return ext[1:], nil
	}
	return "", fmt.Errorf("-chart %q: the file name must end in .png or .svg", path)
}

// chartTitle names the figure: seed, duration, mode, and what was
// compared.
func chartTitle(opts options, compared bool) string {
	what := fmt.Sprintf("policy %s", opts.policy)
	if compared {
		what = "coder (upper) vs adaptive (lower)"
	}
	return fmt.Sprintf("prebuildsim, seed %d, %s, -failure-rate %g, %s passes: %s", opts.seed, shortDuration(opts.duration), opts.failureRate, modeName(opts.targeted), what)
}

// Chart colours.
var (
	colourDesired   = color.RGBA{A: 255}
	colourClaimable = color.RGBA{R: 31, G: 119, B: 180, A: 255}
	colourCeiling   = color.RGBA{R: 150, G: 150, B: 150, A: 255}
	colourMissed    = color.RGBA{R: 214, G: 39, B: 40, A: 255}
	colourBackoff   = color.NRGBA{R: 255, G: 127, B: 14, A: 90}
	colourBlocked   = color.NRGBA{R: 90, G: 90, B: 90, A: 70}
	colourHeld      = color.NRGBA{R: 148, G: 103, B: 189, A: 60}
)

// Chart geometry.
const (
	chartColumns = 2
	chartWidth   = 14 * vg.Inch
	panelHeight  = 2.1 * vg.Inch
	headerHeight = 0.6 * vg.Inch
)

// writeChart draws one panel per group and run — runs of a group one above
// the other, groups in two columns — and writes it to path as PNG or SVG
// by extension. A ceiling run, when given, is drawn as a grey line in every
// panel of its group.
func writeChart(path, title string, ceiling *runResult, runs []runResult) error {
	format, err := chartFormat(path)
	if err != nil {
		return err
	}
	if len(runs) == 0 || len(runs[0].groups) == 0 {
		return errors.New("chart: nothing to draw")
	}
	groups := len(runs[0].groups)
	blockRows := (groups + chartColumns - 1) / chartColumns
	rows := blockRows * len(runs)
	plots := make([][]*plot.Plot, rows)
	for i := range plots {
		plots[i] = make([]*plot.Plot, chartColumns)
	}
	for gi := range groups {
		for ri, r := range runs {
			var ref *groupResult
			if ceiling != nil {
				ref = &ceiling.groups[gi]
			}
			p, err := panel(r, r.groups[gi], ref)
			if err != nil {
				return fmt.Errorf("chart: %s %s: %w", r.label, r.groups[gi].spec.name, err)
			}
			plots[(gi/chartColumns)*len(runs)+ri][gi%chartColumns] = p
		}
	}

	height := headerHeight + vg.Length(rows)*panelHeight
	var canvas vg.CanvasWriterTo
	switch format {
	case "png":
		canvas = vgimg.PngCanvas{Canvas: vgimg.NewWith(vgimg.UseWH(chartWidth, height), vgimg.UseDPI(96))}
	default:
		canvas = vgsvg.New(chartWidth, height)
	}
	dc := draw.New(canvas)
	fillBackground(dc)
	heading := draw.TextStyle{Color: colourDesired, Font: plot.DefaultFont, XAlign: draw.XCenter, YAlign: draw.YTop, Handler: plot.DefaultTextHandler}
	heading.Font.Size = vg.Points(13)
	dc.FillText(heading, vg.Point{X: chartWidth / 2, Y: height - vg.Points(6)}, title)
	entries, err := legendEntries(ceiling != nil)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	drawLegend(dc, height-vg.Points(30), entries)
	body := draw.Crop(dc, 0, 0, 0, -headerHeight)
	tiles := draw.Tiles{Rows: rows, Cols: chartColumns, PadX: vg.Points(18), PadY: vg.Points(8),
		PadTop: vg.Points(4), PadBottom: vg.Points(4), PadLeft: vg.Points(4), PadRight: vg.Points(8)}
	canvases := plot.Align(plots, tiles, body)
	for i := range plots {
		for j, p := range plots[i] {
			if p != nil {
				p.Draw(canvases[i][j])
			}
		}
	}
	return save(path, canvas)
}

// fillBackground paints the canvas white (PNG is transparent otherwise).
func fillBackground(dc draw.Canvas) {
	lo, hi := dc.Min, dc.Max
	dc.FillPolygon(color.White, []vg.Point{lo, {X: hi.X, Y: lo.Y}, hi, {X: lo.X, Y: hi.Y}})
}

// save writes the canvas to path.
func save(path string, canvas io.WriterTo) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	if _, err := canvas.WriteTo(f); err != nil {
		_ = f.Close()
		return fmt.Errorf("chart: write %s: %w", path, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
}

// hours converts an offset from the start to the chart's x unit.
func hours(d time.Duration) float64 { return d.Hours() }

// panel draws one group of one run: spans of backoff, blocked and held
// creation shaded, desired and claimable prebuilds as step lines (the
// ceiling's claimable prebuilds in grey), missed claims as red crosses
// along the top.
func panel(r runResult, g groupResult, ceiling *groupResult) (*plot.Plot, error) {
	p := plot.New()
	p.Title.Text = fmt.Sprintf("%s — %s: fill %.3f, missed %d, failed %d, backoff %s", g.spec.name, r.label, g.fill, g.missed, g.failed, shortDuration(g.backoff))
	p.Title.TextStyle.Font.Size = vg.Points(9)
	p.X.Label.Text = "hours"
	p.Y.Label.Text = "prebuilds"
	for _, a := range []*plot.Axis{&p.X, &p.Y} {
		a.Label.TextStyle.Font.Size = vg.Points(8)
		a.Tick.Label.Font.Size = vg.Points(7)
	}
	p.Y.Tick.Marker = plot.TickerFunc(wholeTicks)
	p.X.Tick.Marker = plot.TickerFunc(hourTicks)
	top := float64(g.spec.peakDesired()*r.opts.presets) * 1.15
	p.X.Min, p.X.Max = 0, hours(r.opts.duration)
	p.Y.Min, p.Y.Max = 0, top

	for _, layer := range []struct {
		spans  []span
		colour color.Color
	}{
		{g.series.blocked, colourBlocked},
		{g.series.held, colourHeld},
		{g.series.backoff, colourBackoff},
	} {
		if len(layer.spans) == 0 {
			continue
		}
		rings := make([]plotter.XYer, len(layer.spans))
		for i, s := range layer.spans {
			x0, x1 := hours(s.from), hours(s.to)
			rings[i] = plotter.XYs{{X: x0, Y: 0}, {X: x1, Y: 0}, {X: x1, Y: top}, {X: x0, Y: top}}
		}
		poly, err := plotter.NewPolygon(rings...)
		if err != nil {
			return nil, err
		}
		poly.Color = layer.colour
		poly.LineStyle.Width = 0
		p.Add(poly)
	}

	if ceiling != nil {
		l, err := stepLine(ceiling.series.points, func(pt seriesPoint) int { return pt.claimable })
		if err != nil {
			return nil, err
		}
		styleCeiling(l)
		p.Add(l)
	}
	desired, err := stepLine(g.series.points, func(pt seriesPoint) int { return pt.desired })
	if err != nil {
		return nil, err
	}
	styleDesired(desired)
	claimable, err := stepLine(g.series.points, func(pt seriesPoint) int { return pt.claimable })
	if err != nil {
		return nil, err
	}
	styleClaimable(claimable)
	p.Add(desired, claimable)

	if len(g.series.missedAt) > 0 {
		pts := make(plotter.XYs, len(g.series.missedAt))
		for i, at := range g.series.missedAt {
			pts[i] = plotter.XY{X: hours(at), Y: top * 0.96}
		}
		sc, err := plotter.NewScatter(pts)
		if err != nil {
			return nil, err
		}
		sc.GlyphStyle = missedGlyph
		p.Add(sc)
	}
	return p, nil
}

// Line and glyph styles, shared by the panels and the legend.
func styleCeiling(l *plotter.Line) {
	l.Color = colourCeiling
	l.Width = vg.Points(0.8)
}

func styleDesired(l *plotter.Line) {
	l.Color = colourDesired
	l.Dashes = []vg.Length{vg.Points(4), vg.Points(2)}
}

func styleClaimable(l *plotter.Line) {
	l.Color = colourClaimable
	l.Width = vg.Points(1.2)
}

var missedGlyph = draw.GlyphStyle{Color: colourMissed, Radius: vg.Points(2), Shape: draw.CrossGlyph{}}

// legendEntry is one item of the chart's legend.
type legendEntry struct {
	name  string
	thumb plot.Thumbnailer
}

// legendEntries lists what the panels draw, in drawing order.
func legendEntries(withCeiling bool) ([]legendEntry, error) {
	line := func(style func(*plotter.Line)) (*plotter.Line, error) {
		l, err := plotter.NewLine(plotter.XYs{{}})
		if err != nil {
			return nil, err
		}
		style(l)
		return l, nil
	}
	entries := []legendEntry{
		{"backoff", swatch{colourBackoff}},
		{"blocked (hard limit, validation)", swatch{colourBlocked}},
		{"held (probe, canary, budget)", swatch{colourHeld}},
	}
	if withCeiling {
		l, err := line(styleCeiling)
		if err != nil {
			return nil, err
		}
		entries = append(entries, legendEntry{"eligible in the failure-free ceiling", l})
	}
	desired, err := line(styleDesired)
	if err != nil {
		return nil, err
	}
	claimable, err := line(styleClaimable)
	if err != nil {
		return nil, err
	}
	sc, err := plotter.NewScatter(plotter.XYs{{}})
	if err != nil {
		return nil, err
	}
	sc.GlyphStyle = missedGlyph
	return append(entries,
		legendEntry{"desired", desired},
		legendEntry{"eligible (claimable)", claimable},
		legendEntry{"claim missed", sc},
	), nil
}

// drawLegend draws the entries in one centred row whose middle is at y.
func drawLegend(dc draw.Canvas, y vg.Length, entries []legendEntry) {
	sty := draw.TextStyle{Color: colourDesired, Font: plot.DefaultFont, XAlign: draw.XLeft, YAlign: draw.YCenter, Handler: plot.DefaultTextHandler}
	sty.Font.Size = vg.Points(9)
	const thumb, gap = vg.Length(18), vg.Length(4)
	between := vg.Points(16)
	total := vg.Length(0)
	for i, e := range entries {
		total += thumb + gap + sty.Width(e.name)
		if i > 0 {
			total += between
		}
	}
	x := (chartWidth - total) / 2
	for _, e := range entries {
		c := draw.Crop(dc, 0, 0, 0, 0)
		c.Min = vg.Point{X: x, Y: y - thumb/3}
		c.Max = vg.Point{X: x + thumb, Y: y + thumb/3}
		e.thumb.Thumbnail(&c)
		x += thumb + gap
		dc.FillText(sty, vg.Point{X: x, Y: y}, e.name)
		x += sty.Width(e.name) + between
	}
}

// hourTicks marks the time axis at a round number of hours, about eight
// labelled ticks.
func hourTicks(lo, hi float64) []plot.Tick {
	step := 24.0
	for _, st := range []float64{0.25, 0.5, 1, 2, 4, 6, 12} {
		if (hi-lo)/st <= 8 {
			step = st
			break
		}
	}
	var ticks []plot.Tick
	for v := math.Ceil(lo/step) * step; v <= hi+1e-9; v += step {
		ticks = append(ticks, plot.Tick{Value: v, Label: strconv.FormatFloat(v, 'f', -1, 64)})
	}
	return ticks
}

// wholeTicks marks whole numbers of prebuilds: about five labelled ticks.
func wholeTicks(lo, hi float64) []plot.Tick {
	step := max(1, int(math.Ceil((hi-lo)/5)))
	var ticks []plot.Tick
	for v := int(math.Ceil(lo)); float64(v) <= hi; v += step {
		ticks = append(ticks, plot.Tick{Value: float64(v), Label: fmt.Sprintf("%d", v)})
	}
	return ticks
}

// stepLine draws a series as a step line that holds each value until the
// next point.
func stepLine(points []seriesPoint, value func(seriesPoint) int) (*plotter.Line, error) {
	xys := make(plotter.XYs, len(points))
	for i, pt := range points {
		xys[i] = plotter.XY{X: hours(pt.at), Y: float64(value(pt))}
	}
	l, err := plotter.NewLine(xys)
	if err != nil {
		return nil, err
	}
	l.StepStyle = plotter.PostStep
	return l, nil
}

// swatch is a legend thumbnail of a colour.
type swatch struct{ colour color.Color }

// Thumbnail implements plot.Thumbnailer.
func (s swatch) Thumbnail(c *draw.Canvas) {
	c.FillPolygon(s.colour, []vg.Point{c.Min, {X: c.Max.X, Y: c.Min.Y}, c.Max, {X: c.Min.X, Y: c.Max.Y}})
}
