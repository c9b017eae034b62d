package app

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/config"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/domain"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/firmware"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/logging"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/plan"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/safeopen"
)

const usage = `Usage:
  libvirt-nvram-hook DOMAIN OPERATION SUBOP EXTRA < domain.xml
        what libvirtd runs (as /etc/libvirt/hooks/qemu or a file in qemu.d/):
        prepare creates a missing UEFI varstore; migrate and restore also
        add <nvram> to the XML when it has none
  libvirt-nvram-hook check [--audit [DIR]]
        validate the config and list every loader -> template mapping;
        --audit: report missing, mis-sized and unresettable varstores of
        the domains defined in DIR (/etc/libvirt/qemu), touching nothing
  libvirt-nvram-hook explain [-f FILE]
        say what the hook would do for a domain XML (stdin by default),
        touching nothing
  libvirt-nvram-hook pin [--dry-run] [DOMAIN...]
        write the template the hook would use (and templateFormat where
        libvirt reads it) into the inactive definitions of persistent
        domains (all by default), through virsh; only <nvram> changes.
        Afterwards libvirt itself can create and reset those varstores
        (virsh start --reset-nvram)
  libvirt-nvram-hook --version | --help

Config: /etc/libvirt/nvram-hook.conf, or the file named by
LIBVIRT_NVRAM_HOOK_CONFIG. Exit codes: 0 ok, 1 failure, 2 usage.
`

func runCLI(e Env, args []string) int {
	if len(args) == 0 {
		fmt.Fprint(e.Stderr, usage)
		return ExitUsage
	}
	switch args[0] {
	case "-h", "--help", "help":
		fmt.Fprint(e.Stdout, usage)
		return ExitOK
	case "-V", "--version", "version":
		fmt.Fprintf(e.Stdout, "%s %s\n", Prog, Version)
		return ExitOK
	case "check":
		switch {
		case len(args) == 1:
			return runCheck(e)
		case args[1] == "--audit" && len(args) <= 3:
			dir := DefaultDomainDir
			if e.ConfigHome != "" {
				dir = filepath.Join(e.ConfigHome, "libvirt", "qemu")
			}
			if len(args) == 3 {
				dir = args[2]
			}
			return runAudit(e, dir)
		}
		return usageError(e, "check takes [--audit [DOMAIN_XML_DIR]]")
	case "pin":
		return runPin(e, args[1:])
	case "explain":
		file := ""
		switch {
		case len(args) == 1:
		case len(args) == 3 && args[1] == "-f":
			file = args[2]
		default:
			return usageError(e, "explain takes [-f FILE]")
		}
		return runExplain(e, file)
	}
	return usageError(e, fmt.Sprintf("unknown command %q", args[0]))
}

func usageError(e Env, msg string) int {
	fmt.Fprintf(e.Stderr, "%s: %s\n\n%s", Prog, msg, usage)
	return ExitUsage
}

// runCheck validates the config as a whole and prints the effective
// settings and the template table in lookup order.
func runCheck(e Env) int {
	host := e.host()
	cfg, err := host.Config, host.ConfigErr
	var cerr *config.Error
	if errors.As(err, &cerr) {
		fmt.Fprintf(e.Stdout, "config %s: %d problem(s)\n", cerr.Path, len(cerr.Problems))
		for _, p := range cerr.Problems {
			fmt.Fprintf(e.Stdout, "  %s\n", p)
		}
		return ExitFailure
	}
	if err != nil {
		fmt.Fprintf(e.Stderr, "%s: %s\n", Prog, err)
		return ExitFailure
	}
	problems := 0
	w := tabwriter.NewWriter(e.Stdout, 0, 4, 2, ' ', 0)
	state := "ok"
	if !cfg.Present {
		state = "absent: built-in defaults"
	}
	fmt.Fprintf(w, "config:\t%s (%s)\n", cfg.Path, state)
	fmt.Fprintf(w, "nvram dir:\t%s\n", cfg.NVRAMDir)
	fmt.Fprintf(w, "allowed dirs:\t%s\n", strings.Join(cfg.AllowedDirs, ":"))
	if owner, err := resolveOwner(cfg); err != nil {
		fmt.Fprintf(w, "owner:\tERROR %s\n", err)
		problems++
	} else {
		fmt.Fprintf(w, "owner:\t%s (%d:%d)\n", owner.Name, owner.UID, owner.GID)
	}
	fmt.Fprintf(w, "add_template:\t%v\n", cfg.AddTemplate)
	fmt.Fprintf(w, "log:\t%s (%s)\n", firstNonEmpty(cfg.LogTarget, "syslog if /dev/log exists, else stderr"), cfg.LogLevel)
	if _, c, err := logging.New(cfg.LogTarget, cfg.LogLevel, io.Discard, e.DevLog); err != nil {
		// The hook logs to the default target instead (and says so there).
		fmt.Fprintf(w, "log:\tERROR %s\n", err)
		problems++
	} else {
		c.Close()
	}
	w.Flush()

	if cfg.Descriptors {
		fmt.Fprintf(e.Stdout, "\nfirmware descriptors (%s):\n", strings.Join(cfg.DescriptorDirs, ", "))
		for _, st := range firmware.DescriptorStates(cfg.DescriptorDirs) {
			fmt.Fprintf(e.Stdout, "  %s: %s\n", st.Path, st.Status)
		}
	}
	cat, _ := host.Catalog()
	fmt.Fprintf(e.Stdout, "\nlooked in: %s\n", strings.Join(cat.Consulted, ", "))
	fmt.Fprintf(e.Stdout, "templates in lookup order (* = used for a loader when the domain asks nothing more; a domain's own template= beats all):\n")
	problems += listEntries(e.Stdout, cat.Pairs, cat.Status)
	fmt.Fprintf(e.Stdout, "\nuefi-vars <varstore> templates of rom loaders (looked in: %s):\n", strings.Join(cat.VarsConsulted, ", "))
	problems += listEntries(e.Stdout, cat.VarsPairs, cat.VarsStatus)
	for _, err := range cat.Problems {
		fmt.Fprintf(e.Stdout, "warning: %s\n", err)
	}
	if problems > 0 {
		fmt.Fprintf(e.Stdout, "%d problem(s)\n", problems)
		return ExitFailure
	}
	return ExitOK
}

// runExplain prints what prepare and the migrate/restore filter would do.
func runExplain(e Env, file string) int {
	var in io.Reader = e.Stdin
	if file != "" && file != "-" {
		f, err := safeopen.File(file)
		if err != nil {
			fmt.Fprintf(e.Stderr, "%s: %s\n", Prog, err)
			return ExitFailure
		}
		defer f.Close()
		in = f
	}
	d, err := domain.Read(in)
	if err != nil {
		fmt.Fprintf(e.Stderr, "%s: %s\n", Prog, err)
		return ExitFailure
	}
	host := e.host()
	out := e.Stdout
	fmt.Fprintf(out, "domain:  %s\n", d.Name)
	if l := d.Loader; l != nil {
		fmt.Fprintf(out, "loader:  %s (type=%s readonly=%v stateless=%v)\n", firstNonEmpty(l.Path, "(no path)"), firstNonEmpty(l.Type, "rom"), l.ReadOnly, l.Stateless)
	} else {
		fmt.Fprintf(out, "loader:  (none)\n")
	}
	if n := d.NVRAM; n != nil {
		fmt.Fprintf(out, "nvram:   %s (%s) template=%s\n", firstNonEmpty(n.Path, "(no path)"), n.Kind, firstNonEmpty(n.Template, "(none)"))
	} else {
		fmt.Fprintf(out, "nvram:   (none)\n")
	}
	if v := d.Varstore; v != nil {
		fmt.Fprintf(out, "varstore: %s (uefi-vars JSON) template=%s\n", firstNonEmpty(v.Path, "(no path)"), firstNonEmpty(v.Template, "(none)"))
	}
	code := ExitOK
	for _, m := range []struct {
		name string
		mode plan.Mode
	}{{"prepare", plan.Prepare}, {"migrate/restore filter", plan.Filter}} {
		pl, err := host.Plan(d, m.mode)
		if err != nil {
			fmt.Fprintf(out, "%s: would FAIL (exit 1): %s\n", m.name, pl.Cause(err))
			code = ExitFailure
			continue
		}
		fmt.Fprintf(out, "%s: %s\n", m.name, describe(pl))
		if m.mode == plan.Prepare {
			for _, note := range pl.Libvirt {
				fmt.Fprintf(out, "libvirt: %s\n", note)
			}
			if pl.Path != "" {
				fmt.Fprintf(out, "reset-nvram: %s\n", describeReset(host, d))
			}
		}
	}
	if d.Loader != nil && d.Loader.Path != "" {
		if cat, err := host.Catalog(); err == nil {
			fmt.Fprintf(out, "entries naming loader %s, in lookup order (* = used when the XML has no template=):\n", d.Loader.Path)
			q := plan.Query(d)
			q.Template = ""
			l := cat.Lookup(q)
			if plan.UEFIVars(d) {
				l = cat.LookupVarstore(q) // JSON templates of uefi-vars builds
			}
			for i, c := range l.Candidates {
				mark, note := " ", ""
				if i == l.Winner {
					mark = "*"
				} else {
					note = "  (" + c.Status + ")"
				}
				if c.Resolved {
					note += "  (same file after resolving symlinks)"
				}
				if c.Facts.Arch != "" {
					note += "  {" + c.Facts.Describe() + "}"
				}
				fmt.Fprintf(out, "%s %s -> %s  [%s %s]%s\n", mark, c.Code, c.Vars, c.Source, c.Origin, note)
			}
			if l.Winner < 0 {
				fmt.Fprintf(out, "  (none fits; looked in: %s)\n", strings.Join(l.Consulted, ", "))
			}
		}
	}
	return code
}

// describe says what a plan does, effect by effect, or why it does
// nothing.
func describe(pl *plan.Plan) string {
	if len(pl.Effects) == 0 && pl.Exists {
		return fmt.Sprintf("nothing: %s exists and is used as it is", pl.Path)
	}
	if len(pl.Effects) == 0 {
		return "nothing: " + pl.Reason
	}
	parts := make([]string, len(pl.Effects))
	for i, eff := range pl.Effects {
		parts[i] = eff.String()
	}
	s := strings.Join(parts, "; ")
	if pl.Exists {
		s = fmt.Sprintf("%s exists and is used as it is; %s", pl.Path, s)
	}
	return s
}

// describeReset says what virsh start --reset-nvram does with d.
func describeReset(host *plan.Host, d *domain.Domain) string {
	where, err := host.LibvirtTemplate(d)
	if err != nil {
		return err.Error()
	}
	if where != "" {
		return "libvirt recreates the varstore from the template it knows (" + where + ")"
	}
	hit, err := host.Template(d)
	if err != nil {
		return "fails: libvirt itself knows no template for " + d.Loader.Path + ", and neither does the hook"
	}
	return resetNote(host, d, hit)
}

// listEntries prints catalog entries for check, marking those a domain
// that asks nothing more gets, and returns how many are problems (a
// template of the hook's own config that is missing).
func listEntries(w io.Writer, pairs []firmware.Pair, status func(firmware.Pair) string) int {
	problems := 0
	for _, p := range pairs {
		mark, note := " ", ""
		if st := status(p); st == "used" {
			mark = "*"
		} else {
			note = "  (" + st + ")"
		}
		if p.Facts.Arch != "" {
			note += "  {" + p.Facts.Describe() + "}"
		}
		if _, err := os.Stat(p.Vars); err != nil {
			note += "  (template missing)"
			if p.Source == firmware.FromConfig {
				problems++
			}
		}
		fmt.Fprintf(w, "%s %s\n    -> %s  [%s %s]%s\n", mark, p.Code, p.Vars, p.Source, p.Origin, note)
	}
	if len(pairs) == 0 {
		fmt.Fprintln(w, "  (none)")
	}
	return problems
}
