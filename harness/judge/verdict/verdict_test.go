package verdict

import (
	"slices"
	"testing"
)

func TestOf(t *testing.T) {
	cases := []struct {
		sev      Severity
		findings int
		skip     string
		want     Status
	}{
		{SeverityFail, 0, "", StatusPass},
		{SeverityWarn, 0, "", StatusPass},
		{SeverityFail, 2, "", StatusFail},
		{SeverityWarn, 1, "", StatusWarn},
		{SeverityFail, 0, "no report", StatusSkip},
		{SeverityFail, 1, "no report", StatusFail}, // a finding outweighs a skip reason
	}
	for _, c := range cases {
		if got := Of(c.sev, c.findings, c.skip); got != c.want {
			t.Errorf("Of(%s, %d, %q) = %s, want %s", c.sev, c.findings, c.skip, got, c.want)
		}
	}
}

func TestCategoryOf(t *testing.T) {
	cases := map[string]Category{
		"DD-S03": CategorySchema, "DD-P01": CategoryProtocol, "DD-T02": CategoryTiming, "DD-I01": CategoryIdentity,
		"DD-A02": CategoryAccuracy, "DD-R01": CategoryResilience, "DD-X02": CategorySecurity,
		"DD-RUN": CategoryOther, "DD-Q01": CategoryOther, "XX-S01": CategoryOther, "DD-": CategoryOther, "": CategoryOther,
	}
	for id, want := range cases {
		if got := CategoryOf(id); got != want {
			t.Errorf("CategoryOf(%q) = %s, want %s", id, got, want)
		}
	}
}

func TestRankPutsFailuresFirst(t *testing.T) {
	in := []Status{StatusPass, StatusSkip, StatusWarn, StatusFail, StatusError, "bogus"}
	slices.SortStableFunc(in, func(a, b Status) int { return a.Rank() - b.Rank() })
	want := []Status{StatusFail, StatusError, StatusWarn, StatusSkip, StatusPass, "bogus"}
	if !slices.Equal(in, want) {
		t.Fatalf("sorted %v, want %v", in, want)
	}
	if Status("bogus").Valid() || !StatusSkip.Valid() {
		t.Fatal("Valid disagrees with Statuses")
	}
}

func TestEffectReadsAsWords(t *testing.T) {
	if SeverityFail.Effect() == string(SeverityFail) || SeverityWarn.Effect() == string(SeverityWarn) {
		t.Fatal("Effect must not repeat the bare severity word")
	}
}
