// Package testbin builds a Go program for tests that must run real
// processes (the hook as libvirtd runs it, writers to race and kill).
package testbin

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"testing"
)

// Main builds pkg (a package path relative to the test's directory) as a
// static binary named name, without -race, stores its path in *bin, runs
// the tests and exits. Call it from TestMain.
func Main(m *testing.M, pkg, name string, bin *string) {
	dir, err := os.MkdirTemp("", "testbin-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	*bin = filepath.Join(dir, name)
	build := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", *bin, pkg)
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "building %s: %v\n%s", pkg, err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}
