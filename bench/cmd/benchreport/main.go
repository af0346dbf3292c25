// Command benchreport writes bench/REPORT.md and the pass-latency chart
// from the raw output of the capacity benchmarks (scripts/bench.sh runs it).
//
//	benchreport -out bench/REPORT.md -chart bench/results/pass_latency.png \
//	    -machine bench/results/machine.txt -cmd "scripts/bench.sh" bench/results/raw.txt
//
// The machine file holds "key: value" lines (date, cpu, cores, ram, go,
// postgres, load); the notes file, when given and present, is appended to
// the report under "Analysis".
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

	opts := report.Options{Command: *command}
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
		opts.Notes = string(body)
	}
	if *chart != "" {
		series := report.PassLatency(rs, "BenchmarkReconcileSteady")
		if err := report.SaveChart(*chart, "Steady-state reconciliation pass", series); err != nil {
			return err
		}
		opts.Chart = relTo(*out, *chart)
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
