// Package drivers registers every target driver of ddhil. Import it for
// its side effect wherever a target is chosen by name; a new driver adds
// one line here.
package drivers

import (
	_ "github.com/ddhil/ddhil/harness/target/board"
	_ "github.com/ddhil/ddhil/harness/target/qemu"
	_ "github.com/ddhil/ddhil/harness/target/renode"
)
