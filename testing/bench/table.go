package bench

import (
	"fmt"
	"io"
	"strings"
	"time"
)

// Goal is the target for a row's median ratio.
type Goal struct {
	Op    string // "<=" or ">="; "" for none
	Value float64
}

// Met reports whether v reaches the goal; true when there is none.
func (g Goal) Met(v float64) bool {
	switch g.Op {
	case "<=":
		return v <= g.Value
	case ">=":
		return v >= g.Value
	}
	return true
}

// Row is one line of the table: a figure of borgkit's, its peer's, and
// their paired ratio over the rounds.
type Row struct {
	Item       string
	What       string
	Kit, Peer  string
	Ratio      Summary
	Percent    bool // the ratio is a share, shown in percent
	Goal       Goal
	GoalText   string // the goal in words when Goal cannot say it
	Unmeasured string // why the row has no figure (a tool is missing)
	// Limit, when set, is a bound in seconds on borgkit's own median
	// (KitSeconds), met besides the ratio's goal: a target users feel
	// whatever the peer does.
	Limit, KitSeconds float64
}

// Report is a whole run.
type Report struct {
	Started time.Time
	Version string // borgkit version
	Machine Machine
	Data    string // the data set in words
	Runs    int
	Rows    []Row
	Notes   []string
	Wall    time.Duration
}

func (r Row) ratioText() string {
	if r.Unmeasured != "" {
		return "not measured: " + r.Unmeasured
	}
	f := func(v float64) string {
		switch {
		case r.Percent:
			return fmt.Sprintf("%.1f %%", v*100)
		case v >= 100:
			return fmt.Sprintf("%.0f×", v)
		case v >= 10:
			return fmt.Sprintf("%.1f×", v)
		}
		return fmt.Sprintf("%.2f×", v)
	}
	if r.Ratio.N == 1 {
		return f(r.Ratio.Median) + " (n=1)"
	}
	return fmt.Sprintf("%s (%s – %s, n=%d)", f(r.Ratio.Median), f(r.Ratio.Min), f(r.Ratio.Max), r.Ratio.N)
}

func (r Row) goalText() (goal, met string) {
	goal = r.GoalText
	if goal == "" && r.Goal.Op != "" {
		v := fmt.Sprintf("%g", r.Goal.Value)
		if r.Percent {
			v = fmt.Sprintf("%g %%", r.Goal.Value*100)
		}
		goal = strings.ReplaceAll(strings.ReplaceAll(r.Goal.Op, "<=", "≤"), ">=", "≥") + " " + v
	}
	if r.Limit > 0 {
		goal = strings.TrimPrefix(goal+fmt.Sprintf("; borgkit ≤ %g s", r.Limit), "; ")
	}
	switch {
	case r.Unmeasured != "":
		met = "—"
	case r.Goal.Op == "" && r.Limit == 0:
		met = ""
	case r.Goal.Met(r.Ratio.Median) && (r.Limit == 0 || r.KitSeconds <= r.Limit):
		met = "yes"
	default:
		met = "**no**"
	}
	return goal, met
}

// Markdown writes the report as the README's Performance section shows it.
func (rep *Report) Markdown(w io.Writer) {
	fmt.Fprintf(w, "Run of %s, borgkit %s.\n\n", rep.Started.Format("2006-01-02 15:04 MST"), rep.Version)
	fmt.Fprintf(w, "Machine: %s\n\n", rep.Machine)
	fmt.Fprintf(w, "Data: %s. Every ratio is the median over at least %d rounds after a warm-up round (n in each row), min – max in parentheses; it is taken within each round, borgkit and its peer side by side, and only then summarized. The borgkit and peer columns are medians too.\n\n", rep.Data, rep.Runs)
	fmt.Fprintln(w, "| # | comparison | borgkit | peer | ratio | goal | met |")
	fmt.Fprintln(w, "| --- | --- | --- | --- | --- | --- | --- |")
	for _, r := range rep.Rows {
		goal, met := r.goalText()
		fmt.Fprintf(w, "| %s | %s | %s | %s | %s | %s | %s |\n", r.Item, cell(r.What), cell(r.Kit), cell(r.Peer), r.ratioText(), goal, met)
	}
	if len(rep.Notes) > 0 {
		fmt.Fprintln(w)
		for _, n := range rep.Notes {
			fmt.Fprintf(w, "- %s\n", n)
		}
	}
	if rep.Wall > 0 {
		fmt.Fprintf(w, "\nWall time of the table's run: %s.\n", rep.Wall.Round(time.Second))
	}
}

// cell keeps a value inside its table cell.
func cell(s string) string { return strings.ReplaceAll(s, "|", "\\|") }

// Seconds formats a duration sample the way the table does.
func Seconds(s float64) string {
	switch {
	case s >= 10:
		return fmt.Sprintf("%.1f s", s)
	case s >= 1:
		return fmt.Sprintf("%.2f s", s)
	case s >= 0.01:
		return fmt.Sprintf("%.0f ms", s*1000)
	}
	return fmt.Sprintf("%.1f ms", s*1000)
}

// Bytes formats a size in binary units.
func Bytes(n float64) string {
	switch {
	case n >= 1<<30:
		return fmt.Sprintf("%.2f GiB", n/(1<<30))
	case n >= 1<<20:
		return fmt.Sprintf("%.1f MiB", n/(1<<20))
	case n >= 1<<10:
		return fmt.Sprintf("%.1f KiB", n/(1<<10))
	}
	return fmt.Sprintf("%.0f B", n)
}
