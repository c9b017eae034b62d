package logging

import (
	"fmt"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Syslog priorities (RFC 3164) with the daemon facility.
const (
	facilityDaemon = 3 << 3
	sevErr         = 3
	sevWarning     = 4
	sevInfo        = 6
	sevDebug       = 7
)

// syslogConn writes to the local syslog socket. It replaces log/syslog,
// which links the whole net package and its start-up cost into a binary
// that libvirtd runs on every phase of every guest.
type syslogConn struct {
	fd  int
	tag string
	pid int
}

// dialSyslog connects to path as a datagram socket (journald, rsyslog),
// else as a stream socket.
func dialSyslog(path, tag string) (*syslogConn, error) {
	for _, typ := range []int{unix.SOCK_DGRAM, unix.SOCK_STREAM} {
		fd, err := unix.Socket(unix.AF_UNIX, typ|unix.SOCK_CLOEXEC, 0)
		if err != nil {
			return nil, err
		}
		if err := unix.Connect(fd, &unix.SockaddrUnix{Name: path}); err != nil {
			unix.Close(fd)
			if typ == unix.SOCK_STREAM {
				return nil, fmt.Errorf("syslog %s: %w", path, err)
			}
			continue
		}
		return &syslogConn{fd: fd, tag: tag, pid: os.Getpid()}, nil
	}
	return nil, fmt.Errorf("syslog %s: no socket", path)
}

func (s *syslogConn) send(severity int, msg string) error {
	line := fmt.Sprintf("<%d>%s %s[%d]: %s\n", facilityDaemon|severity, time.Now().Format(time.Stamp), s.tag, s.pid, msg)
	_, err := unix.Write(s.fd, []byte(line))
	return err
}

func (s *syslogConn) Close() error { return unix.Close(s.fd) }
