package logging

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/nohang"
)

func TestTargets(t *testing.T) {
	dir := t.TempDir()
	var stderr bytes.Buffer
	tests := []struct {
		name, target, level, devLog string
		wantErr                     string
	}{
		{"stderr when no /dev/log", "", "info", filepath.Join(dir, "no-such-socket"), ""},
		{"explicit stderr", "stderr", "debug", "", ""},
		{"file", "file:" + filepath.Join(dir, "hook.log"), "warning", "", ""},
		{"file in a missing dir", "file:" + filepath.Join(dir, "nope", "hook.log"), "info", "", "log file"},
		{"bad target", "carrier-pigeon", "info", "", "unknown log target"},
		{"bad level", "stderr", "loud", "", "unknown log level"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l, c, err := New(tt.target, tt.level, &stderr, tt.devLog)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("err = %v, want %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			l.WithField("domain", "vm 1").Warn("hello")
		})
	}
	if !strings.Contains(stderr.String(), `level=warning msg=hello domain="vm 1"`) {
		t.Errorf("stderr log: %q", stderr.String())
	}
	data, _ := os.ReadFile(filepath.Join(dir, "hook.log"))
	if !strings.Contains(string(data), "msg=hello") || !strings.Contains(string(data), "time=") {
		t.Errorf("file log: %q", data)
	}
}

// TestSyslog reads what the hook sends to a syslog socket of our own.
func TestSyslog(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	conn, err := net.ListenUnixgram("unixgram", &net.UnixAddr{Name: sock, Net: "unixgram"})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	l, c, err := New("syslog", "info", io.Discard, sock)
	if err != nil {
		t.Fatal(err)
	}
	l.WithField("nvram", "/nv/a b_VARS.fd").Warn("outside allowed_dirs")
	l.Debug("not at info level")
	c.Close()
	buf := make([]byte, 4096)
	conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	n, err := conn.Read(buf)
	if err != nil {
		t.Fatal(err)
	}
	got := string(buf[:n])
	// <28> = facility daemon (3) * 8 + warning (4)
	if !strings.HasPrefix(got, "<28>") || !strings.Contains(got, "libvirt-nvram-hook[") ||
		!strings.Contains(got, `level=warning msg="outside allowed_dirs" nvram="/nv/a b_VARS.fd"`) {
		t.Errorf("syslog line %q", got)
	}
}

// TestSyslogStream: a syslog socket that only takes streams (rsyslog's
// imuxsock can be set up so) gets the same line.
func TestSyslogStream(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "log")
	ln, err := net.ListenUnix("unix", &net.UnixAddr{Name: sock, Net: "unix"})
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- err.Error()
			return
		}
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		b, _ := io.ReadAll(c)
		got <- string(b)
	}()
	l, c, err := New("syslog", "info", io.Discard, sock)
	if err != nil {
		t.Fatal(err)
	}
	l.Error("cannot create varstore")
	c.Close()
	// <27> = facility daemon (3) * 8 + error (3)
	if line := <-got; !strings.HasPrefix(line, "<27>") || !strings.Contains(line, "libvirt-nvram-hook[") || !strings.Contains(line, `level=error msg="cannot create varstore"`) {
		t.Errorf("syslog line %q", line)
	}
}

// TestFileTargetRefusesWhatIsNotARegularFile: a file: target that is a
// FIFO (with or without a reader), a device, a symlink, or is reached
// through a symlink that a non-root user planted is refused with one error
// naming it, without blocking and without writing anywhere else.
func TestFileTargetRefusesWhatIsNotARegularFile(t *testing.T) {
	dir := t.TempDir()
	fifo, readFifo := filepath.Join(dir, "fifo"), filepath.Join(dir, "fifo-with-reader")
	for _, p := range []string{fifo, readFifo} {
		if err := syscall.Mkfifo(p, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// A reader makes a non-blocking open for writing succeed.
	if r, err := os.OpenFile(readFifo, os.O_RDONLY|syscall.O_NONBLOCK, 0); err != nil {
		t.Fatal(err)
	} else {
		defer r.Close()
	}
	victim := filepath.Join(dir, "victim")
	os.WriteFile(victim, []byte("keep\n"), 0o600)
	link := filepath.Join(dir, "link.log")
	os.Symlink(victim, link)
	// A directory of uid 1000 holding a symlink of theirs to another
	// directory: the walk must not follow it.
	userDir := filepath.Join(dir, "user")
	elsewhere := filepath.Join(dir, "elsewhere")
	os.Mkdir(userDir, 0o755)
	os.Mkdir(elsewhere, 0o755)
	os.Symlink(elsewhere, filepath.Join(userDir, "logs"))
	if os.Geteuid() == 0 {
		os.Lchown(userDir, 1000, 1000)
		os.Lchown(filepath.Join(userDir, "logs"), 1000, 1000)
	}
	regular := filepath.Join(dir, "hook.log")
	os.WriteFile(regular, []byte("old\n"), 0o640)
	tests := []struct {
		name, path string
		root       bool // needs root to plant another user's files
		wantErr    string
	}{
		{"FIFO without a reader", fifo, false, "a FIFO"},
		{"FIFO with a reader", readFifo, false, "a FIFO"},
		{"device", "/dev/null", false, "a device"},
		{"symlink to a file", link, false, "a symlink"},
		{"through another user's symlink", filepath.Join(userDir, "logs", "hook.log"), true, "symlink owned by uid 1000"},
		{"existing regular file", regular, false, ""},
		{"new file", filepath.Join(dir, "new.log"), false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.root && os.Geteuid() != 0 {
				t.Skip("needs root to own files as uid 1000")
			}
			var res struct {
				c   io.Closer
				err error
			}
			nohang.Run(t, 5*time.Second, "New(file:"+tt.path+")", func() {
				var l *logrus.Logger
				l, res.c, res.err = New("file:"+tt.path, "info", io.Discard, "")
				if res.err == nil {
					l.Warn("hello")
				}
			})
			if tt.wantErr == "" {
				if res.err != nil {
					t.Fatal(res.err)
				}
				res.c.Close()
				if data, _ := os.ReadFile(tt.path); !strings.Contains(string(data), "msg=hello") {
					t.Errorf("%s holds %q", tt.path, data)
				}
				return
			}
			if res.err == nil {
				res.c.Close()
				t.Fatalf("New(file:%s) = nil error, want one saying %q", tt.path, tt.wantErr)
			}
			t.Log(res.err)
			if !strings.Contains(res.err.Error(), tt.wantErr) || !strings.Contains(res.err.Error(), "log file") {
				t.Errorf("error %q, want it to say %q", res.err, tt.wantErr)
			}
		})
	}
	if data, _ := os.ReadFile(victim); string(data) != "keep\n" {
		t.Errorf("symlink's target written: %q", data)
	}
	if _, err := os.Stat(filepath.Join(elsewhere, "hook.log")); err == nil {
		t.Errorf("log created through another user's symlink")
	}
}
