package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
)

// shortName abbreviates path names in ratio column headers.
var shortName = map[string]string{"kernel": "k", "tungate": "tg", "tungate-run": "run", "pasta": "pasta", "slirp4netns": "slirp"}

// short is the name of path in the ratio table's heads: a -variant column
// (tungate-NAME) is tg-NAME.
func short(path string) string {
	if s, ok := shortName[path]; ok {
		return s
	}
	return "tg" + strings.TrimPrefix(path, "tungate")
}

// ratioColumn is one a÷b column of the ratio table.
type ratioColumn struct{ a, b string }

// printTable writes the values table and the ratio table.
func (r *results) printTable(w io.Writer) {
	fmt.Fprintf(w, "\ntungate-bench at %s, %s; median of %d runs, iperf3 -t %.0f, %d idle conns, TCP congestion control %s\n\n",
		r.Commit, r.Started.Format("2006-01-02 15:04 UTC"), r.Runs, r.IperfSecs, r.IdleConns, r.Congestion)
	var names []string
	for _, p := range r.Paths {
		names = append(names, p.Name)
	}
	r.printRows(w, names, func(m metric, col string) string {
		p := r.path(col)
		if p.Skipped != "" {
			return "skipped"
		}
		if v := p.Values[m.ID]; v != nil {
			return formatValue(v.Median)
		}
		return "-"
	})
	cols := r.ratioColumns()
	if len(cols) > 0 {
		fmt.Fprintf(w, "\nratios a/b of the medians above (same run); k=kernel tg=tungate run=tungate-run slirp=slirp4netns\n")
		fmt.Fprintf(w, "(%s)\n\n", ratioLegend(r.Metrics))
		var heads []string
		for _, c := range cols {
			heads = append(heads, short(c.a)+"/"+short(c.b))
		}
		r.printRows(w, heads, func(m metric, col string) string {
			c := cols[indexOf(heads, col)]
			if v, ok := r.Ratios[m.ID][c.a][c.b]; ok {
				return fmt.Sprintf("%.2f", v)
			}
			return "-"
		})
	}
	fmt.Fprintln(w)
	for _, p := range r.Paths {
		if p.Skipped != "" {
			fmt.Fprintf(w, "%s: skipped: %s\n", p.Name, p.Skipped)
		}
		for _, e := range p.Errors {
			fmt.Fprintf(w, "%s: error: %s\n", p.Name, e)
		}
	}
}

// ratioLegend says, by unit, which way each ratio reads, from the
// metrics' own direction.
func ratioLegend(ms []metric) string {
	var higher, lower []string
	for _, m := range ms {
		if m.ID == "best_mtu" {
			continue // a setting, not a result: it has no ratios
		}
		side := &lower
		if m.HigherIsBetter {
			side = &higher
		}
		if !slices.Contains(*side, m.Unit) {
			*side = append(*side, m.Unit)
		}
	}
	return fmt.Sprintf("%s: above 1 means a is better; %s: below 1 means a is better",
		strings.Join(higher, ", "), strings.Join(lower, ", "))
}

// printRows prints one row per metric that has any cell, with columns cols.
func (r *results) printRows(w io.Writer, cols []string, cell func(m metric, col string) string) {
	labelWidth := 0
	for _, m := range r.Metrics {
		labelWidth = max(labelWidth, len([]rune(m.Label+" ("+m.Unit+")")))
	}
	width := 9
	for _, c := range cols {
		width = max(width, len(c)+1)
	}
	fmt.Fprintf(w, "%-*s", labelWidth, "")
	for _, c := range cols {
		fmt.Fprintf(w, "%*s", width, c)
	}
	fmt.Fprintln(w)
	for _, m := range r.Metrics {
		cells := make([]string, len(cols))
		filled := false
		for i, c := range cols {
			cells[i] = cell(m, c)
			filled = filled || (cells[i] != "-" && cells[i] != "skipped")
		}
		if !filled {
			continue
		}
		label := m.Label + " (" + m.Unit + ")"
		fmt.Fprintf(w, "%s%s", label, strings.Repeat(" ", labelWidth-len([]rune(label))))
		for _, c := range cells {
			fmt.Fprintf(w, "%*s", width, c)
		}
		fmt.Fprintln(w)
	}
}

// ratioColumns is every path against the kernel, then each tungate mode
// against each peer.
func (r *results) ratioColumns() []ratioColumn {
	var measured []string
	for _, p := range r.Paths {
		if p.Skipped == "" {
			measured = append(measured, p.Name)
		}
	}
	var cols []ratioColumn
	for _, a := range measured {
		if a != "kernel" && indexOf(measured, "kernel") >= 0 {
			cols = append(cols, ratioColumn{a, "kernel"})
		}
	}
	for _, a := range measured {
		if strings.HasPrefix(a, "tungate-") && a != "tungate-run" && indexOf(measured, "tungate") >= 0 {
			cols = append(cols, ratioColumn{a, "tungate"}) // a -variant column
		}
	}
	for _, a := range []string{"tungate", "tungate-run"} {
		for _, b := range []string{"pasta", "slirp4netns"} {
			if indexOf(measured, a) >= 0 && indexOf(measured, b) >= 0 {
				cols = append(cols, ratioColumn{a, b})
			}
		}
	}
	return cols
}

func indexOf(s []string, v string) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

func formatValue(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

// save writes the results as dir/<timestamp>-<commit>.json.
func (r *results) save(dir string) (string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create results directory: %w", err)
	}
	name := filepath.Join(dir, r.Started.Format("20060102-150405")+"-"+r.Commit+".json")
	data, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return "", fmt.Errorf("encode results: %w", err)
	}
	if err := os.WriteFile(name, append(data, '\n'), 0o644); err != nil {
		return "", fmt.Errorf("write results: %w", err)
	}
	return name, nil
}

// gitCommit is the short commit being measured, marked -dirty when the
// tree has changes, or "nogit".
func gitCommit() string {
	out, err := exec.Command("git", "rev-parse", "--short", "HEAD").Output()
	if err != nil {
		return "nogit"
	}
	sha := strings.TrimSpace(string(out))
	if st, err := exec.Command("git", "status", "--porcelain", "--untracked-files=no").Output(); err == nil && len(st) > 0 {
		sha += "-dirty"
	}
	return sha
}
