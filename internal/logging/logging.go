// Package logging sets up the hook's structured log. It is only ever built
// when a call has work to do or an error to report: phases that need
// nothing never pay for it. stdout is never a target, since in the
// migrate and restore filters stdout is the domain XML.
package logging

import (
	"errors"
	"fmt"
	"io"
	"log/syslog"
	"os"
	"path/filepath"
	"strings"

	"github.com/sirupsen/logrus"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/varstore"
)

// Tag is the syslog identifier.
const Tag = "libvirt-nvram-hook"

// DevLog is the local syslog socket whose presence makes syslog the default.
const DevLog = "/dev/log"

// New returns a logger for target ("syslog", "stderr", "file:PATH", or ""
// for syslog when devLog exists and stderr otherwise) at level. The closer
// releases the file or socket.
func New(target, level string, stderr io.Writer, devLog string) (*logrus.Logger, io.Closer, error) {
	lv, err := ParseLevel(level)
	if err != nil {
		return nil, nil, err
	}
	l := logrus.New()
	l.SetLevel(lv)
	l.SetFormatter(&logrus.TextFormatter{DisableColors: true, FullTimestamp: true})
	if target == "" {
		target = "stderr"
		if _, err := os.Stat(devLog); err == nil {
			target = "syslog"
		}
	}
	switch {
	case target == "stderr":
		l.SetOutput(stderr)
		l.SetFormatter(&logrus.TextFormatter{DisableColors: true, DisableTimestamp: true})
		return l, nopCloser{}, nil
	case target == "syslog":
		w, err := dialSyslog(devLog)
		if err != nil {
			// No syslog after all: fall back rather than fail a VM start.
			l.SetOutput(stderr)
			l.SetFormatter(&logrus.TextFormatter{DisableColors: true, DisableTimestamp: true})
			return l, nopCloser{}, nil
		}
		l.SetOutput(io.Discard)
		l.SetFormatter(&logrus.TextFormatter{DisableColors: true, DisableTimestamp: true})
		l.AddHook(&syslogHook{w: w})
		return l, w, nil
	case strings.HasPrefix(target, "file:"):
		f, err := openFile(target[len("file:"):])
		if err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		l.SetOutput(f)
		return l, f, nil
	}
	return nil, nil, fmt.Errorf("unknown log target %q", target)
}

// openFile opens the log file at path for appending, creating it (0640)
// if missing. Its directory is walked as varstore directories are (a
// symlink on the way only where root owns it and its directory), and the
// file itself must be a regular file, never a symlink: the open neither
// blocks (a FIFO, whose open for writing waits for a reader) nor writes to
// a device or wherever someone else's symlink points.
func openFile(path string) (*os.File, error) {
	if !filepath.IsAbs(path) {
		return nil, &os.PathError{Op: "open", Path: path, Err: errors.New("not an absolute path")}
	}
	d, err := varstore.OpenDir(filepath.Dir(path))
	if err != nil {
		return nil, err
	}
	defer d.Close()
	return d.OpenAppend(filepath.Base(path), 0o640)
}

// ParseLevel accepts the config's level names.
func ParseLevel(s string) (logrus.Level, error) {
	switch s {
	case "", "info":
		return logrus.InfoLevel, nil
	case "error":
		return logrus.ErrorLevel, nil
	case "warning":
		return logrus.WarnLevel, nil
	case "debug":
		return logrus.DebugLevel, nil
	}
	return 0, fmt.Errorf("unknown log level %q", s)
}

type nopCloser struct{}

func (nopCloser) Close() error { return nil }

// dialSyslog connects to the local syslog socket at path, a datagram
// socket (journald, rsyslog) or else a stream socket.
func dialSyslog(path string) (*syslog.Writer, error) {
	w, err := syslog.Dial("unixgram", path, syslog.LOG_DAEMON|syslog.LOG_INFO, Tag)
	if err != nil {
		w, err = syslog.Dial("unix", path, syslog.LOG_DAEMON|syslog.LOG_INFO, Tag)
	}
	return w, err
}

// syslogHook sends each entry, formatted as logfmt, at its own priority.
type syslogHook struct{ w *syslog.Writer }

func (h *syslogHook) Levels() []logrus.Level { return logrus.AllLevels }

func (h *syslogHook) Fire(e *logrus.Entry) error {
	line, err := e.String()
	if err != nil {
		return err
	}
	line = strings.TrimSuffix(line, "\n")
	switch e.Level {
	case logrus.PanicLevel, logrus.FatalLevel, logrus.ErrorLevel:
		return h.w.Err(line)
	case logrus.WarnLevel:
		return h.w.Warning(line)
	case logrus.InfoLevel:
		return h.w.Info(line)
	}
	return h.w.Debug(line)
}
