// Command renode is the FAKE renode of package fakerenode, built into test
// images and launcher scripts for the driver's tests. It is not Renode.
package main

import (
	"os"

	"github.com/ddhil/ddhil/harness/target/renode/internal/fakerenode"
)

func main() { os.Exit(fakerenode.Main(os.Args[1:], os.Stdout)) }
