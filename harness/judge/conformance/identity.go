package conformance

import (
	"fmt"
	"strings"
)

// checkIDsPerConnection: report_id strictly increases on one connection.
func checkIDsPerConnection(c *Capture) Outcome {
	reports := c.Reports()
	var out Outcome
	last := map[string]uint64{}
	n := 0
	var lo, hi uint64
	for i := range reports {
		r := &reports[i]
		id, ok := r.ID()
		if !ok {
			continue
		}
		n++
		if n == 1 {
			lo, hi = id, id
		}
		lo, hi = min(lo, id), max(hi, id)
		if prev, seen := last[r.Event.ConnID]; seen && id <= prev {
			out.Findings = append(out.Findings, finding(r,
				fmt.Sprintf("report_id %d does not increase on this connection (previous %d)", id, prev),
				map[string]any{"report_id": id, "previous_id": prev, "conn_id": r.Event.ConnID}).
				expecting(fmt.Sprintf("> %d", prev), fmt.Sprint(id)))
		}
		last[r.Event.ConnID] = id
	}
	if n < 2 {
		return skip("fewer than 2 reports with a readable report_id")
	}
	out.Measured = fmt.Sprintf("%d report_ids on %s, from %d to %d", n, plural(len(last), "connection"), lo, hi)
	return out
}

// checkIDsAcrossRestarts: the first report_id after a reconnect or a reboot is
// above the last one before it; AWS discards reports whose id was used
// before as duplicates.
func checkIDsAcrossRestarts(c *Capture) Outcome {
	reports := c.Reports()
	var out Outcome
	boundaries := 0
	var steps []string
	var prev *ReportView
	for i := range reports {
		r := &reports[i]
		id, ok := r.ID()
		if !ok {
			continue
		}
		if prev != nil && prev.Event.ConnID != r.Event.ConnID {
			boundaries++
			pid, _ := prev.ID()
			steps = append(steps, fmt.Sprintf("%d → %d", pid, id))
			if id <= pid {
				why := "reconnect"
				for _, a := range c.ActionsOf(ActionReset) {
					if a.At > prev.At() && a.At < r.At() {
						why = "reboot"
					}
				}
				out.Findings = append(out.Findings, finding(r,
					fmt.Sprintf("report_id %d after a %s is not above the last id before it (%d): AWS treats it as a duplicate", id, why, pid),
					map[string]any{"report_id": id, "last_id_before": pid, "boundary": why}).
					expecting(fmt.Sprintf("> %d", pid), fmt.Sprint(id)))
			}
		}
		prev = r
	}
	if boundaries == 0 {
		return skip("no reconnect or reboot with reports on both sides")
	}
	out.Measured = fmt.Sprintf("report_id across %s (reconnect or reboot, reports on both sides): %s", plural(boundaries, "restart"), strings.Join(steps, ", "))
	return out
}
