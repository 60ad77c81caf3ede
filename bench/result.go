package main

import (
	"fmt"
	"strings"
)

// Marks for a goal.
const (
	markPass    = "pass"
	markMiss    = "MISS"
	markPending = "pending"
	markError   = "error"
)

// result is one row of the table.
type result struct {
	Workload string
	Baseline string // what it is compared with; "" for absolute goals
	Base     string // the baseline's figure
	Bastion  string // the bastion's figure
	Ratio    string // ratio (median, min-max over rounds) or the absolute figure the goal is about
	CPUBase  string // CPU per unit of work, baseline side
	CPUBast  string // CPU per unit of work, bastion side
	Goal     string
	Mark     string
	Notes    []string // lines printed under the table
}

func (r *result) notef(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// failed turns a workload error into a row that says so.
func failed(r result, err error) result {
	if err == errPending {
		r.Mark = markPending
		return r
	}
	r.Mark = markError
	r.notef("error: %s", strings.TrimSpace(err.Error()))
	return r
}

// mark is pass or MISS.
func mark(ok bool) string {
	if ok {
		return markPass
	}
	return markMiss
}

// ratioCell formats "0.93x (0.90–0.95)".
func ratioCell(rs []float64) string {
	lo, hi := spread(rs)
	return fmt.Sprintf("%sx (%s–%s)", fmtNum(median(rs)), fmtNum(lo), fmtNum(hi))
}

// table renders rows as a Markdown table. The same text is printed and
// written to the report.
func table(rows []result) string {
	head := []string{"workload", "baseline", "baseline result", "bastion result", "ratio / figure (median, min–max)", "CPU baseline", "CPU bastion", "goal", ""}
	var b strings.Builder
	b.WriteString("| " + strings.Join(head, " | ") + " |\n")
	b.WriteString("|" + strings.Repeat("---|", len(head)) + "\n")
	dash := func(s string) string {
		if s == "" {
			return "—"
		}
		return strings.ReplaceAll(s, "|", "\\|")
	}
	for _, r := range rows {
		cells := []string{r.Workload, r.Baseline, r.Base, r.Bastion, r.Ratio, r.CPUBase, r.CPUBast, r.Goal, r.Mark}
		for i := range cells {
			cells[i] = dash(cells[i])
		}
		b.WriteString("| " + strings.Join(cells, " | ") + " |\n")
	}
	return b.String()
}
