//go:build hookdeps

package main

import (
	_ "encoding/hex"
	_ "os/exec"
	_ "os/user"
	_ "text/tabwriter"

	_ "golang.org/x/sys/unix"
)
