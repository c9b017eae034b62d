// Command createfile calls varstore.Create once, as a separate process, so
// that tests can race and kill real processes. Tests build it without -race:
// the race detector's checks on 64 MiB syscall buffers would make a copy
// thirty times slower than the real hook's.
package main

import (
	"fmt"
	"os"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/varstore"
)

func main() {
	if len(os.Args) != 4 {
		fmt.Fprintln(os.Stderr, "usage: createfile DIR NAME TEMPLATE")
		os.Exit(2)
	}
	res, err := varstore.Create(os.Args[1], os.Args[2], os.Args[3], varstore.Options{UID: -1, GID: -1})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println(res.Created)
}
