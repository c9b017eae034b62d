// Command libvirt-nvram-hook is the libvirt QEMU hook that creates missing
// UEFI variable stores. All logic lives in internal/app; main only wires the
// process to it so that the whole program stays testable in-process.
package main

import (
	"os"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/app"
)

func main() {
	os.Exit(app.Main(os.Args, os.Stdin, os.Stdout, os.Stderr))
}
