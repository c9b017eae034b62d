// Command libvirtcopy creates a varstore the way libvirt 9 does in
// qemuPrepareNVRAMFile: PATH.new opened O_CREAT|O_TRUNC with mode 0600,
// the template copied 1 KiB read by 1 KiB write (nothing sparse), fsync,
// rename() over PATH. No fsync of the directory. It is the reference the
// hook's own writer is compared with.
//
// Usage: libvirtcopy TEMPLATE PATH
package main

import (
	"fmt"
	"os"
	"syscall"
)

func main() {
	if len(os.Args) != 3 {
		fmt.Fprintln(os.Stderr, "usage: libvirtcopy TEMPLATE PATH")
		os.Exit(2)
	}
	if err := copyNVRAM(os.Args[1], os.Args[2]); err != nil {
		fmt.Fprintln(os.Stderr, "libvirtcopy:", err)
		os.Exit(1)
	}
}

func copyNVRAM(template, path string) error {
	src, err := syscall.Open(template, syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("open %s: %w", template, err)
	}
	defer syscall.Close(src)
	tmp := path + ".new"
	dst, err := syscall.Open(tmp, syscall.O_WRONLY|syscall.O_CREAT|syscall.O_TRUNC|syscall.O_CLOEXEC, 0o600)
	if err != nil {
		return fmt.Errorf("open %s: %w", tmp, err)
	}
	var buf [1024]byte
	for {
		n, err := syscall.Read(src, buf[:])
		if err == syscall.EINTR {
			continue
		}
		if err != nil {
			syscall.Close(dst)
			return fmt.Errorf("read %s: %w", template, err)
		}
		if n == 0 {
			break
		}
		for w := 0; w < n; {
			m, err := syscall.Write(dst, buf[w:n])
			if err == syscall.EINTR {
				continue
			}
			if err != nil {
				syscall.Close(dst)
				return fmt.Errorf("write %s: %w", tmp, err)
			}
			w += m
		}
	}
	if err := syscall.Fsync(dst); err != nil {
		syscall.Close(dst)
		return fmt.Errorf("fsync %s: %w", tmp, err)
	}
	if err := syscall.Close(dst); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	return syscall.Rename(tmp, path)
}
