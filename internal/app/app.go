// Package app is the whole program behind hook/main.go: hook mode for
// libvirtd and the command line for people.
//
// Exit codes: 0 success or nothing to do; 1 the hook failed (libvirt aborts
// the start, restore or incoming migration and shows our one stderr line);
// 2 the command line was not understood.
package app

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/config"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/domain"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/early"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/hookcall"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/logging"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/plan"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/varstore"
)

// Version is set at build time with -ldflags -X.
var Version = "dev"

// Exit codes.
const (
	ExitOK      = 0
	ExitFailure = 1
	ExitUsage   = 2
)

// Prog prefixes every line the user sees.
const Prog = "libvirt-nvram-hook"

// Env is everything the program takes from its process, so that tests run
// it in-process and in parallel.
type Env struct {
	Args           []string
	Stdin          io.Reader
	Stdout, Stderr io.Writer
	ConfigPath     string
	ConfigRequired bool   // the path was named explicitly
	ConfigHome     string // non-empty: a session daemon's defaults, under this directory
	DevLog         string // syslog socket deciding the default log target
	Euid           int
	// Doc, when set, is the domain XML internal/early already read from
	// Stdin (and checked) before the program initialised.
	Doc *early.Doc
}

// Main runs the program for a real process.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := Env{Args: args, Stdin: stdin, Stdout: stdout, Stderr: stderr,
		ConfigPath: config.DefaultPath, DevLog: logging.DevLog, Euid: os.Geteuid(), Doc: early.Document()}
	if e.Euid != 0 {
		// Not root: a session daemon (qemu:///session) runs us as its
		// user, with HOME set; its files live under ~/.config.
		if home, err := os.UserConfigDir(); err == nil {
			e.ConfigHome = home
			e.ConfigPath = config.SessionPath(home)
		}
	}
	if p := os.Getenv(config.EnvPath); p != "" {
		e.ConfigPath, e.ConfigRequired = p, true
	}
	return Run(e)
}

// Run dispatches on the argument shape: exactly four arguments is libvirtd
// calling the hook, anything else is a person.
func Run(e Env) int {
	var args []string
	if len(e.Args) > 0 {
		args = e.Args[1:]
	}
	if call, ok := hookcall.Parse(args); ok {
		return runHook(e, call)
	}
	return runCLI(e, args)
}

func runHook(e Env, call hookcall.Call) int {
	phase := call.Phase()
	if phase == hookcall.None {
		// Drain stdin so libvirt's write never meets a closed pipe; no
		// config, no logging, no files.
		io.Copy(io.Discard, e.Stdin)
		return ExitOK
	}
	start := time.Now()
	h := &hookRun{env: e, call: call, planner: e.planner()}
	d, err := e.domain()
	if err != nil {
		return h.fail(fmt.Errorf("cannot use the domain XML for %q (%s %s): %w", call.Domain, call.Op, call.SubOp, err))
	}
	mode := plan.Prepare
	if phase == hookcall.Filter {
		mode = plan.Filter
	}
	dec, err := h.planner.Plan(d, mode)
	if err != nil {
		return h.fail(err)
	}
	if dec.Notable {
		h.logger().WithFields(logrus.Fields{"domain": call.Domain, "op": string(call.Op), "action": "none"}).Debug(dec.Reason)
	}
	if dec.Action != plan.Create && dec.Action != plan.Outside && !dec.AddNVRAM && !dec.AddTemplate && dec.NewLoader == "" {
		return ExitOK // the common case: nothing missing, nothing logged
	}
	log := h.logger().WithFields(logrus.Fields{"domain": call.Domain, "op": string(call.Op), "loader": d.Loader.Path, "nvram": dec.Path})
	if dec.NewLoader != "" {
		if err := d.SetLoader(dec.NewLoader); err != nil {
			return h.fail(err)
		}
		log.WithFields(logrus.Fields{"action": "translate-loader", "old_loader": dec.OldLoader, "loader": dec.NewLoader}).
			Warn("loader does not exist on this host; replaced by the local firmware that fits the domain")
	}
	switch dec.Action {
	case plan.Outside:
		log.WithField("action", "skip").Warn(dec.Reason)
	case plan.Create:
		if code := h.create(log, dec); code != ExitOK {
			return code
		}
	}
	if dec.AddNVRAM {
		if err := d.AddNVRAM(dec.Path, dec.Template.Template); err != nil {
			return h.fail(err)
		}
		log.WithFields(tmplFields(dec)).WithField("action", "add-nvram").Info("added <nvram> to the domain XML")
	}
	if dec.AddTemplate {
		if err := d.SetTemplate(dec.Template.Template); err != nil {
			return h.fail(err)
		}
		log.WithFields(tmplFields(dec)).WithField("action", "add-template").Info("added template= to <nvram>")
	}
	if d.Changed() {
		if _, err := d.WriteTo(e.Stdout); err != nil {
			return h.fail(fmt.Errorf("writing the domain XML to stdout: %w", err))
		}
	}
	log.WithField("duration", time.Since(start).Round(time.Microsecond).String()).Debug("done")
	return ExitOK
}

// domain reads and parses the domain XML on stdin, or parses what
// internal/early read and checked already.
func (e Env) domain() (*domain.Domain, error) {
	if e.Doc == nil {
		return domain.Read(e.Stdin)
	}
	if e.Doc.Err != nil {
		return nil, e.Doc.Err
	}
	return domain.ParseChecked(e.Doc.Data, e.Doc.Layout)
}

func (e Env) planner() *plan.Planner {
	return &plan.Planner{ConfigPath: e.ConfigPath, ConfigRequired: e.ConfigRequired, ConfigHome: e.ConfigHome}
}

func tmplFields(dec *plan.Decision) logrus.Fields {
	return logrus.Fields{"template": dec.Template.Template, "template_source": string(dec.Template.Source), "template_origin": dec.Template.Origin}
}

// hookRun carries one hook call's state: the planner (whose config is
// loaded at most once) and the logger, built only when needed.
type hookRun struct {
	env     Env
	call    hookcall.Call
	planner *plan.Planner
	log     *logrus.Logger
	toErr   bool // the log goes to stderr already
}

func (h *hookRun) create(log *logrus.Entry, dec *plan.Decision) int {
	cfg, err := h.planner.Config()
	if err != nil {
		return h.fail(err)
	}
	opt := varstore.Options{UID: -1, GID: -1, Format: dec.Format, TemplateFormat: dec.TemplateFormat}
	opt.QemuImg = func() string {
		p, _ := exec.LookPath("qemu-img") // only when the formats differ
		return p
	}
	if h.env.Euid == 0 || cfg.User != "" || cfg.Group != "" {
		// As root, the file goes to the qemu user; a session daemon (not
		// root) runs QEMU as itself and needs no chown.
		owner, err := resolveOwner(cfg)
		if err != nil {
			return h.fail(fmt.Errorf("varstore owner: %w", err))
		}
		opt.UID, opt.GID = owner.UID, owner.GID
		log = log.WithField("owner", owner.Name)
	}
	log = log.WithFields(tmplFields(dec))
	t0 := time.Now()
	res, err := varstore.Create(dec.Dir, filepath.Base(dec.Path), dec.Template.Template, opt)
	if err != nil {
		return h.fail(fmt.Errorf("cannot create varstore %s from template %s (%s): %w", dec.Path, dec.Template.Template, dec.Template.Source, err))
	}
	log = log.WithField("duration", time.Since(t0).Round(time.Microsecond).String())
	if !res.Created {
		log.WithField("action", "none").Info("varstore appeared meanwhile; left as it is")
		return ExitOK
	}
	log.WithFields(logrus.Fields{"action": "created", "bytes": res.Size, "method": res.Method}).Info("created varstore")
	return ExitOK
}

// logger builds the log from the config on first use; with a broken config
// it still logs, to the default target.
func (h *hookRun) logger() *logrus.Logger {
	if h.log != nil {
		return h.log
	}
	target, level := "", "info"
	if cfg, err := h.planner.Config(); err == nil {
		target, level = cfg.LogTarget, cfg.LogLevel
	}
	l, _, err := logging.New(target, level, h.env.Stderr, h.env.DevLog)
	if err != nil {
		l, _, _ = logging.New("stderr", "info", h.env.Stderr, h.env.DevLog)
	}
	// The process ends right after; the log's file or socket closes with
	// it. When the log is stderr (chosen, or the fallback without syslog),
	// an error is printed once, as the line libvirt shows.
	h.toErr = l.Out == h.env.Stderr
	h.log = l
	return l
}

// fail logs err and prints it as the one line libvirt shows the user.
func (h *hookRun) fail(err error) int {
	l := h.logger()
	if !h.toErr {
		l.WithFields(logrus.Fields{"domain": h.call.Domain, "op": string(h.call.Op), "action": "failed"}).Error(err.Error())
	}
	fmt.Fprintf(h.env.Stderr, "%s: %s\n", Prog, oneLine(err.Error()))
	return ExitFailure
}

// oneLine keeps libvirt's error message to one line whatever the cause.
func oneLine(s string) string {
	return strings.TrimSpace(strings.NewReplacer("\r", " ", "\n", " ").Replace(s))
}
