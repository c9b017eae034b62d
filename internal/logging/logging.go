// Package logging sets up the hook's structured log. It is only ever built
// when a call has work to do or an error to report: phases that need
// nothing never pay for it. stdout is never a target, since in the
// migrate and restore filters stdout is the domain XML.
package logging

import (
	"fmt"
	"io"
	"log/syslog"
	"os"
	"strings"

	"github.com/sirupsen/logrus"
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
		f, err := os.OpenFile(target[len("file:"):], os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
		if err != nil {
			return nil, nil, fmt.Errorf("log file: %w", err)
		}
		l.SetOutput(f)
		return l, f, nil
	}
	return nil, nil, fmt.Errorf("unknown log target %q", target)
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
