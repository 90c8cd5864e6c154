package defender

// The binary and oversized report fixtures are generated from Go code in
// fixtures_gen_test.go; the test fails when the files on disk drift.
//go:generate go test -run TestGeneratedFixtures -update .
