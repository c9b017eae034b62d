package varstore

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"time"
)

// convertTimeout bounds qemu-img: the hook holds the domain's job in libvirt.
const convertTimeout = 60 * time.Second

// convert writes src, the template opened and checked, converted from
// format from to format to, into dst, the temp file we created. qemu-img
// gets both as descriptors (3 and 4, named /dev/fd/3 and /dev/fd/4), never
// by name: it reads exactly the file that was checked and writes exactly
// our inode, whatever happens to names meanwhile.
func convert(qemuImg string, src *os.File, from, to string, dst *os.File) error {
	cmd := exec.Command(qemuImg, "convert", "-q", "-f", from, "-O", to, "/dev/fd/3", "/dev/fd/4")
	cmd.ExtraFiles = []*os.File{src, dst}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("running %s: %w", qemuImg, err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return fmt.Errorf("%s convert %s to %s: %v: %s", qemuImg, from, to, err, strings.TrimSpace(stderr.String()))
		}
		return nil
	case <-time.After(convertTimeout):
		cmd.Process.Kill()
		<-done
		return fmt.Errorf("%s convert did not finish in %v", qemuImg, convertTimeout)
	}
}

// convertedSize checks what qemu-img wrote through our descriptor and
// returns its size.
func convertedSize(dst *os.File, format string) (int64, error) {
	fi, err := dst.Stat()
	if err != nil {
		return 0, err
	}
	got, err := detectFormat(dst, dst.Name())
	if err != nil {
		return 0, err
	}
	if fi.Size() == 0 || got != format {
		return 0, fmt.Errorf("qemu-img produced %d bytes of %s, want %s", fi.Size(), got, format)
	}
	return fi.Size(), nil
}
