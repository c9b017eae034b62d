package logging

import (
	"bytes"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
