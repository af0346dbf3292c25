// Command benchreport writes bench/REPORT.md, with the sizing table and the
// pass-latency chart, from the raw output of the capacity benchmarks
// (scripts/bench.sh runs it; so can the author of another store, on the
// output of go test -bench of a package that calls bench.Run).
//
//	benchreport -out bench/REPORT.md -chart bench/results/pass_latency.png \
//	    -machine bench/results/machine.txt -cmd "scripts/bench.sh" bench/results/raw.txt
//
// The machine file holds "key: value" lines (date, cpu, cores, ram, go,
// postgres, load); the notes file, when given and present, is appended to
// the report under "Analysis" (a first line "<!-- notes for: RAW -->" names
// the raw output they were written for; the report warns when it is
// another). -doc rewrites the sizing block of a Go file's package
// documentation (bench/doc.go). -partial marks a scratch report.
package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/prebuildkit/prebuildkit/bench/internal/report"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "benchreport:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fl := flag.NewFlagSet("benchreport", flag.ContinueOnError)
	out := fl.String("out", "bench/REPORT.md", "report to write")
	chart := fl.String("chart", "", "pass-latency PNG to write (none when empty)")
	machine := fl.String("machine", "", "file of key: value lines describing the machine")
	notes := fl.String("notes", "", "Markdown appended under Analysis, when the file exists")
	command := fl.String("cmd", "", "command that reproduces the run")
	doc := fl.String("doc", "", "Go file whose sizing block (after report.DocMarker) to rewrite")
	partial := fl.String("partial", "", "why this run is partial (a filter, fewer runs): the report says so at the top")
	examplePresets := fl.Int("example-presets", 3_000, "presets of the worked example's fleet")
	exampleTemplate := fl.Int("example-template-prebuilds", 1_500, "prebuilds of the worked example's largest template (its roll-out)")
	extrapolation := fl.Float64("max-extrapolation", report.DefaultMaxExtrapolation, "the sizing table answers up to this multiple of the largest measured preset count")
	if err := fl.Parse(args); err != nil {
		return err
	}
	if fl.NArg() == 0 {
		return errors.New("usage: benchreport [flags] RAW_OUTPUT...")
	}

	all := &strings.Builder{}
	for _, path := range fl.Args() {
		body, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		all.Write(body)
		all.WriteByte('\n')
	}
	rs, err := report.Parse(strings.NewReader(all.String()))
	if err != nil {
		return err
	}
	if len(rs.Names()) == 0 {
		return fmt.Errorf("no benchmark results in %s", strings.Join(fl.Args(), ", "))
	}

	opts := report.Options{
		Command: *command, Partial: *partial, ExamplePresets: *examplePresets,
		ExampleTemplatePrebuilds: *exampleTemplate, MaxExtrapolation: *extrapolation,
	}
	for _, path := range fl.Args() {
		opts.Raw = append(opts.Raw, relTo(*out, path))
	}
	if *machine != "" {
		kv, err := readKV(*machine)
		if err != nil {
			return err
		}
		opts.Machine = report.Machine{
			Date: kv["date"], CPU: kv["cpu"], Cores: kv["cores"], RAM: kv["ram"],
			GoVersion: kv["go"], Postgres: kv["postgres"], Load: kv["load"],
		}
	}
	if opts.Machine.CPU == "" {
		opts.Machine.CPU = rs.Config["cpu"]
	}
	if *notes != "" {
		body, err := os.ReadFile(*notes)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		opts.Notes, opts.NotesFor = report.SplitNotes(string(body))
	}
	if series := report.PassSeries(report.Suite(rs)); *chart != "" && len(series) > 0 {
		if err := report.SaveChart(*chart, "ReconcileAll pass time (median of the runs) by preset count", series); err != nil {
			return err
		}
		opts.Chart = relTo(*out, *chart)
	}
	if *doc != "" {
		if err := rewriteDoc(*doc, report.SizingText(rs, opts)); err != nil {
			return err
		}
	}

	f, err := os.Create(*out)
	if err != nil {
		return err
	}
	if err := report.Write(f, rs, opts); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// rewriteDoc replaces the sizing block of the Go file at path: the
// indented comment lines that follow report.DocMarker and one empty comment
// line.
func rewriteDoc(path, table string) error {
	body, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	out, err := report.ReplaceDocBlock(string(body), table)
	if err != nil {
		return fmt.Errorf("%s: %w", path, err)
	}
	return os.WriteFile(path, []byte(out), 0o644)
}

// relTo returns path relative to the directory of file, or path itself.
func relTo(file, path string) string {
	rel, err := filepath.Rel(filepath.Dir(file), path)
	if err != nil {
		return path
	}
	return filepath.ToSlash(rel)
}

func readKV(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	kv := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if k, v, ok := strings.Cut(sc.Text(), ":"); ok {
			kv[strings.TrimSpace(k)] = strings.TrimSpace(v)
		}
	}
	return kv, sc.Err()
}
