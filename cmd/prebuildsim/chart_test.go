package main

import (
	"bytes"
	"encoding/xml"
	"errors"
	"image/png"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestChartPNG(t *testing.T) {
	path := filepath.Join(t.TempDir(), "run.png")
	var stdout, stderr bytes.Buffer
	require.Equal(t, exitOK, run([]string{"-duration=20m", "-quiet", "-chart=" + path}, &stdout, &stderr), "stderr: %s", stderr.String())

	f, err := os.Open(path)
	require.NoError(t, err)
	defer f.Close()
	img, err := png.Decode(f)
	require.NoError(t, err, "the chart is a PNG")
	// 14in wide at 96 dpi; a header and one 2.1in row per two groups.
	rows := (len(fleet) + chartColumns - 1) / chartColumns
	b := img.Bounds()
	require.Equal(t, 14*96, b.Dx())
	require.InDelta(t, (0.6+2.1*float64(rows))*96, b.Dy(), 1)
	colours := map[[4]uint32]bool{}
	for y := b.Min.Y; y < b.Max.Y; y += 7 {
		for x := b.Min.X; x < b.Max.X; x += 7 {
			r, g, bl, a := img.At(x, y).RGBA()
			colours[[4]uint32{r, g, bl, a}] = true
		}
	}
	require.Greater(t, len(colours), 10, "something was drawn")
}

func TestChartSVGComparesPolicies(t *testing.T) {
	path := filepath.Join(t.TempDir(), "compare.svg")
	var stdout, stderr bytes.Buffer
	require.Equal(t, exitOK, run([]string{"-compare", "-duration=20m", "-quiet", "-chart=" + path}, &stdout, &stderr), "stderr: %s", stderr.String())
	data, err := os.ReadFile(path)
	require.NoError(t, err)

	// Well-formed XML whose root is an svg element; collect its text and
	// where it is drawn.
	dec := xml.NewDecoder(bytes.NewReader(data))
	var root string
	var texts []string
	height := map[string]float64{} // text → height above the bottom
	var y float64
	inText := false
	for {
		tok, err := dec.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		require.NoError(t, err, "the chart is well-formed XML")
		switch tok := tok.(type) {
		case xml.StartElement:
			if root == "" {
				root = tok.Name.Local
			}
			inText = tok.Name.Local == "text"
			for _, a := range tok.Attr {
				if inText && a.Name.Local == "y" {
					y, err = strconv.ParseFloat(a.Value, 64)
					require.NoError(t, err)
				}
			}
		case xml.CharData:
			if inText {
				texts = append(texts, string(tok))
				height[string(tok)] = -y // drawn under scale(1, -1)
			}
		case xml.EndElement:
			inText = false
		}
	}
	require.Equal(t, "svg", root)
	// Both policies, one panel each per group, coder above adaptive.
	title := func(prefix string) float64 {
		t.Helper()
		for _, text := range texts {
			if strings.HasPrefix(text, prefix) {
				return height[text]
			}
		}
		t.Fatalf("no panel titled %q…", prefix)
		return 0
	}
	for _, g := range fleet {
		require.Greater(t, title(g.name+" — coder: fill "), title(g.name+" — adaptive: fill "),
			"%s: the coder panel is above the adaptive one", g.name)
	}
	for _, text := range texts {
		require.NotContains(t, text, "interval-only: fill", "the chart draws the policies in the mode of the flags only")
	}
	require.True(t, slices.ContainsFunc(texts, func(s string) bool { return strings.Contains(s, "targeted passes: coder (upper) vs adaptive (lower)") }),
		"the title names the mode")
	for _, legend := range []string{"backoff", "blocked (hard limit, validation)", "held (probe, canary, budget)",
		"desired", "eligible (claimable)", "claim missed", "eligible in the failure-free ceiling"} {
		require.Contains(t, texts, legend)
	}
}

func TestChartFormat(t *testing.T) {
	t.Parallel()
	for path, want := range map[string]string{"a.png": "png", "dir/b.SVG": "svg", "c.Png": "png"} {
		got, err := chartFormat(path)
		require.NoError(t, err)
		require.Equal(t, want, got, path)
	}
	for _, path := range []string{"a.pdf", "png", "a.png.txt", ""} {
		_, err := chartFormat(path)
		require.Error(t, err, path)
	}
}
