package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"strings"
	"time"
)

// printTable writes the results as a Markdown table with the machine's
// state, so the figures can be pasted as they are.
func printTable(w io.Writer, cfg *config, results []*result) {
	load, _ := os.ReadFile("/proc/loadavg")
	fmt.Fprintf(w, "\nsockpin load: %d rounds, %s per rate round, proxy listening on %s; %d CPUs; load average %s\n\n",
		cfg.rounds, cfg.duration, cfg.listen, runtime.NumCPU(), strings.Join(strings.Fields(string(load))[:3], " "))
	fmt.Fprintln(w, "| scenario | direct | proxy | ratio | target | bare relay ratio | direct p50 / p99 | proxy p50 / p99 |")
	fmt.Fprintln(w, "|---|---|---|---|---|---|---|---|")
	allMet := true
	for _, r := range results {
		if r.text != "" {
			mark := "met"
			if !*r.met {
				mark, allMet = "NOT met", false
			}
			fmt.Fprintf(w, "| %s | | %s | | %s | | | |\n", r.name, r.text, mark)
			continue
		}
		d, p, rl := median(r.values["direct"]), median(r.values["proxy"]), median(r.values["relay"])
		ratio := p / d
		mark := fmt.Sprintf(">= %.2f met", r.target)
		if ratio < r.target {
			mark, allMet = fmt.Sprintf(">= %.2f NOT met", r.target), false
		}
		fmt.Fprintf(w, "| %s | %s %s | %s %s | %.2f | %s | %.2f | %s | %s |\n", r.name,
			num(d), r.unit, num(p), r.unit, ratio, mark, rl/d, latencies(r.lats["direct"]), latencies(r.lats["proxy"]))
	}
	if allMet {
		fmt.Fprintln(w, "\nEvery target met.")
	} else {
		fmt.Fprintln(w, "\nSome targets not met.")
	}
}

func num(v float64) string {
	if v >= 100 {
		return fmt.Sprintf("%.0f", v)
	}
	return fmt.Sprintf("%.2f", v)
}

func latencies(l []time.Duration) string {
	return fmt.Sprintf("%s / %s", round(percentile(l, 50)), round(percentile(l, 99)))
}

func round(d time.Duration) string {
	switch {
	case d >= time.Second:
		return d.Round(10 * time.Millisecond).String()
	case d >= time.Millisecond:
		return d.Round(10 * time.Microsecond).String()
	}
	return d.Round(time.Microsecond).String()
}
