// Command minimal is the floor a Go hook can reach: it only drains stdin,
// as the hook does for phases it has nothing to do in. Built with the
// hook's flags, it is the reference of the start-up targets.
//
// Build tags link packages in without using them, to show what their
// initialisation and size cost before any code runs: `deps` links the
// hook's three third-party packages (etree, logrus, ini.v1); `hookdeps`
// links every package outside internal/ that the hook links.
package main

import (
	"io"
	"os"
)

func main() { io.Copy(io.Discard, os.Stdin) }
