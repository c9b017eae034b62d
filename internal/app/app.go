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
	"strings"
	"time"

	"github.com/sirupsen/logrus"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/config"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/domain"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/firmware"
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
	Virsh          string // libvirt's client for pin; "" = virsh from PATH
}

// Main runs the program for a real process.
func Main(args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	e := Env{Args: args, Stdin: stdin, Stdout: stdout, Stderr: stderr,
		ConfigPath: config.DefaultPath, DevLog: logging.DevLog, Euid: os.Geteuid()}
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

// Run dispatches on argv: libvirtd calling the hook (hookcall.Parse),
// anything else is a person.
func Run(e Env) int {
	if call, ok := hookcall.Parse(e.Args); ok {
		return runHook(e, call)
	}
	var args []string
	if len(e.Args) > 0 {
		args = e.Args[1:]
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
	h := &hookRun{env: e, call: call, host: e.host()}
	d, err := domain.Read(e.Stdin)
	if err != nil {
		return h.fail(fmt.Errorf("cannot use the domain XML for %q (%s %s): %w", call.Domain, call.Op, call.SubOp, err))
	}
	mode := plan.Prepare
	if phase == hookcall.Filter {
		mode = plan.Filter
	}
	pl, err := h.host.Plan(d, mode)
	if err != nil {
		if pl.NotTranslated != nil {
			// The plan's effects are dropped, its warning with them: the
			// log still says why the loader was not translated (on
			// stderr the failure's one line says it).
			if l := h.openLog(true); !h.toErr {
				l.WithFields(logrus.Fields{"domain": call.Domain, "op": string(call.Op), "loader": d.Loader.Path}).Warn(pl.NotTranslated.Error())
			}
		}
		return h.fail(pl.Cause(err))
	}
	if len(pl.Effects) == 0 {
		return ExitOK // the common case: nothing missing, nothing logged
	}
	log := h.logger().WithFields(logrus.Fields{"domain": call.Domain, "op": string(call.Op), "loader": d.Loader.Path, "nvram": pl.Path})
	for _, eff := range pl.Effects {
		if err := h.apply(log, d, eff); err != nil {
			return h.fail(pl.Cause(err))
		}
	}
	if d.Changed() {
		if _, err := d.WriteTo(e.Stdout); err != nil {
			return h.fail(fmt.Errorf("writing the domain XML to stdout: %w", err))
		}
	}
	log.WithField("duration", time.Since(start).Round(time.Microsecond).String()).Debug("done")
	return ExitOK
}

// apply carries out one effect of the plan, on disk or on d, and logs it.
func (h *hookRun) apply(log *logrus.Entry, d *domain.Domain, eff plan.Effect) error {
	switch eff := eff.(type) {
	case plan.SetLoader:
		if err := edit(d, eff); err != nil {
			return err
		}
		log.WithFields(logrus.Fields{"action": "translate-loader", "old_loader": eff.From, "loader": eff.To}).
			Warn("loader does not exist on this host; replaced by the local firmware that fits the domain")
	case plan.Skip:
		if eff.Warn {
			log.WithField("action", "skip").Warn(eff.Reason)
		} else {
			log.WithField("action", "none").Debug(eff.Reason)
		}
	case plan.Warn:
		log.WithField("action", "none").Warn(eff.Msg)
	case plan.CreateVarstore:
		return create(log, eff)
	case plan.AddNVRAM:
		if err := edit(d, eff); err != nil {
			return err
		}
		log.WithFields(tmplFields(eff.Template)).WithField("action", "add-nvram").Info("added <nvram> to the domain XML")
	case plan.SetTemplate:
		if err := edit(d, eff); err != nil {
			return err
		}
		log.WithFields(tmplFields(eff.Template)).WithField("action", "add-template").Info("added template= to <nvram>")
	case plan.SetVarstorePath:
		if err := edit(d, eff); err != nil {
			return err
		}
		log.WithFields(tmplFields(eff.Template)).WithField("action", "add-varstore-path").Info("set path= on <varstore>")
	case plan.SetVarstoreTemplate:
		if err := edit(d, eff); err != nil {
			return err
		}
		log.WithFields(tmplFields(eff.Template)).WithField("action", "add-template").Info("added template= to <varstore>")
	default:
		return fmt.Errorf("internal error: no way to apply %T", eff)
	}
	return nil
}

// edit makes the change to the domain XML that an effect asks for; the
// hook's filters and pin share it.
func edit(d *domain.Domain, eff plan.Effect) error {
	switch eff := eff.(type) {
	case plan.SetLoader:
		return d.SetLoader(eff.To)
	case plan.AddNVRAM:
		if err := d.AddNVRAM(eff.Path, eff.Template.Template); err != nil || eff.TemplateFormat == "" {
			return err
		}
		return d.SetTemplateFormat(eff.TemplateFormat)
	case plan.SetTemplate:
		if err := d.SetTemplate(eff.Template.Template); err != nil || eff.TemplateFormat == "" {
			return err
		}
		return d.SetTemplateFormat(eff.TemplateFormat)
	case plan.SetVarstorePath:
		if err := d.SetVarstorePath(eff.Path); err != nil || eff.Template.Template == "" {
			return err
		}
		return d.SetVarstoreTemplate(eff.Template.Template)
	case plan.SetVarstoreTemplate:
		return d.SetVarstoreTemplate(eff.Template.Template)
	}
	return fmt.Errorf("internal error: %T is no edit of the domain XML", eff)
}

// host loads the config, the one place it is read, and says who owns new
// varstores: as root, the qemu user; a session daemon (not root) runs QEMU
// as itself and chowns nothing unless the config names a user or group.
func (e Env) host() *plan.Host {
	return plan.NewHost(config.Base(e.ConfigPath, e.ConfigHome), e.ConfigRequired, func(cfg *config.Config) (*plan.Owner, error) {
		if e.Euid != 0 && cfg.User == "" && cfg.Group == "" {
			return nil, nil
		}
		o, err := resolveOwner(cfg)
		if err != nil {
			return nil, fmt.Errorf("varstore owner: %w", err)
		}
		po := plan.Owner(o)
		return &po, nil
	})
}

func tmplFields(t firmware.Hit) logrus.Fields {
	return logrus.Fields{"template": t.Template, "template_source": string(t.Source), "template_origin": t.Origin}
}

// hookRun carries one hook call's state: the host (the config, loaded
// once) and the logger, built only when needed.
type hookRun struct {
	env   Env
	call  hookcall.Call
	host  *plan.Host
	log   *logrus.Logger
	toErr bool // the log goes to stderr already
}

func create(log *logrus.Entry, c plan.CreateVarstore) error {
	opt := varstore.Options{UID: -1, GID: -1, Format: c.Format, TemplateFormat: c.TemplateFormat}
	opt.QemuImg = func() string {
		p, _ := exec.LookPath("qemu-img") // only when the formats differ
		return p
	}
	if c.Owner != nil {
		opt.UID, opt.GID = c.Owner.UID, c.Owner.GID
		log = log.WithField("owner", c.Owner.Name)
	}
	log = log.WithFields(tmplFields(c.Template))
	t0 := time.Now()
	dir, name, err := varstore.Place(c.Allowed, c.Path)
	if err != nil {
		return fmt.Errorf("cannot create varstore %s: %w", c.Path, err)
	}
	defer dir.Close()
	log = log.WithField("dir", dir.Path)
	res, err := dir.Create(name, c.Template.Template, opt)
	if err != nil {
		return fmt.Errorf("cannot create varstore %s from template %s (%s): %w", c.Path, c.Template.Template, c.Template.Source, err)
	}
	log = log.WithField("duration", time.Since(t0).Round(time.Microsecond).String())
	if !res.Created {
		log.WithField("action", "none").Info("varstore appeared meanwhile; left as it is")
		return nil
	}
	if res.LockErr != nil {
		log = log.WithField("temp_lock", res.LockErr.Error()) // NFS without locks
	}
	log.WithFields(logrus.Fields{"action": "created", "bytes": res.Size, "method": res.Method}).Info("created varstore")
	return nil
}

// logger builds the log from the config on first use; with a broken config
// it still logs, to the default target.
func (h *hookRun) logger() *logrus.Logger { return h.openLog(false) }

// openLog builds the log. A log target that cannot be used (a log file
// that is a FIFO, a device, a symlink, in a missing directory) never fails
// or holds up the call: the log goes to the default target (syslog when
// /dev/log exists, else stderr) with one warning saying why. When that
// fallback is stderr and the log is built for a failure, the warning is
// left out: libvirt shows stderr as the error, and that is one line.
func (h *hookRun) openLog(failing bool) *logrus.Logger {
	if h.log != nil {
		return h.log
	}
	target, level := "", "info"
	if h.host.ConfigErr == nil && h.host.Config != nil {
		target, level = h.host.Config.LogTarget, h.host.Config.LogLevel
	}
	l, _, err := logging.New(target, level, h.env.Stderr, h.env.DevLog)
	if err != nil {
		if l, _, _ = logging.New("", level, h.env.Stderr, h.env.DevLog); l == nil {
			l, _, _ = logging.New("", "info", h.env.Stderr, h.env.DevLog)
		}
	}
	// The process ends right after; the log's file or socket closes with
	// it. When the log is stderr (chosen, or the fallback without syslog),
	// an error is printed once, as the line libvirt shows.
	h.toErr = l.Out == h.env.Stderr
	h.log = l
	if err != nil && !(failing && h.toErr) {
		where := "syslog"
		if h.toErr {
			where = "stderr"
		}
		l.WithField("action", "log fallback").Warnf("%s; logging to %s instead", err, where)
	}
	return l
}

// fail logs err and prints it as the one line libvirt shows the user.
func (h *hookRun) fail(err error) int {
	l := h.openLog(true)
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
