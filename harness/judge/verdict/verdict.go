// Package verdict is the judging vocabulary shared by every part of ddhil
// that says how a check went: the checks themselves
// (harness/judge/conformance), the report writers (harness/report: JSON,
// JUnit, Markdown, HTML), the CLI's check table and hiltest. It is a leaf
// package with no dependencies, so a reader of report.json does not pull in
// the check catalogue, and the catalogue does not depend on the writers.
// The string values are part of the ddhil.report/v1 schema.
package verdict

// Severity says what findings on a check do to the run: fail it, or only
// warn.
type Severity string

const (
	SeverityFail Severity = "fail"
	SeverityWarn Severity = "warn"
)

// Effect says in words what a failing check of this severity does, for
// tables where "fail" next to "PASS" would read as a contradiction.
func (s Severity) Effect() string {
	switch s {
	case SeverityFail:
		return "fails run"
	case SeverityWarn:
		return "warns only"
	}
	return string(s)
}

// Status is the outcome of one check on one run.
type Status string

const (
	StatusPass  Status = "pass"
	StatusFail  Status = "fail"  // findings on a fail-severity check
	StatusWarn  Status = "warn"  // findings on a warn-severity check
	StatusError Status = "error" // the check could not run (the lab failed, the check panicked)
	StatusSkip  Status = "skip"  // not applicable to this target, profile or capture
)

// Statuses lists every status, most alarming first: the order in which
// reports list checks.
var Statuses = []Status{StatusFail, StatusError, StatusWarn, StatusSkip, StatusPass}

// Valid reports whether s is one of the five statuses.
func (s Status) Valid() bool { return s.Rank() < len(Statuses) }

// Rank is s's position in Statuses (len(Statuses) for an unknown status):
// sorting by rank puts failing checks first.
func (s Status) Rank() int {
	for i, x := range Statuses {
		if x == s {
			return i
		}
	}
	return len(Statuses)
}

// Of gives the status of a check that ran: findings fail it (or warn, under
// warn severity); without findings it passes, unless it was not applicable
// (skipReason non-empty).
func Of(sev Severity, findings int, skipReason string) Status {
	switch {
	case findings > 0 && sev == SeverityWarn:
		return StatusWarn
	case findings > 0:
		return StatusFail
	case skipReason != "":
		return StatusSkip
	default:
		return StatusPass
	}
}

// Category is the catalogue section of a check, named by the letter after
// "DD-" in its ID.
type Category string

const (
	CategorySchema     Category = "schema"     // DD-S..
	CategoryProtocol   Category = "protocol"   // DD-P..
	CategoryTiming     Category = "timing"     // DD-T..
	CategoryIdentity   Category = "identity"   // DD-I..
	CategoryAccuracy   Category = "accuracy"   // DD-A..
	CategoryResilience Category = "resilience" // DD-R..
	CategorySecurity   Category = "security"   // DD-X..
	CategoryDetect     Category = "detect"     // DD-D.. (security profiles)
	CategoryOther      Category = "other"      // anything else (e.g. DD-RUN)
)

var categoryLetter = map[byte]Category{
	'S': CategorySchema, 'P': CategoryProtocol, 'T': CategoryTiming, 'I': CategoryIdentity,
	'A': CategoryAccuracy, 'R': CategoryResilience, 'X': CategorySecurity, 'D': CategoryDetect,
}

// CategoryOf names the section of a check ID such as "DD-T02". IDs with
// more than one letter after "DD-" ("DD-RUN") are not catalogue checks.
func CategoryOf(id string) Category {
	if len(id) >= 5 && id[:3] == "DD-" && id[4] >= '0' && id[4] <= '9' {
		if c, ok := categoryLetter[id[3]]; ok {
			return c
		}
	}
	return CategoryOther
}
