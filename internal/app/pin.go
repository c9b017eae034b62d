package app

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/domain"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/firmware"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/plan"
)

// runPin writes the template the hook would use into the inactive
// definitions of persistent domains, through libvirt (virsh dumpxml
// --inactive --security-info, virsh define), so that libvirt itself can
// create the varstore and reset it (virsh start --reset-nvram, which a
// prepare hook cannot serve). Only <nvram> changes. With no DOMAIN it
// pins every persistent domain; a transient one is refused: it has no
// inactive definition, and libvirt forgets it when it stops.
func runPin(e Env, args []string) int {
	dryRun := false
	var names []string
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			names = append(names, args[i+1:]...)
			i = len(args)
		case a == "--dry-run" && len(names) == 0:
			dryRun = true
		case strings.HasPrefix(a, "-") && len(names) == 0:
			return usageError(e, fmt.Sprintf("pin: unknown option %q (a domain named so goes after --)", a))
		default:
			names = append(names, a)
		}
	}
	host := e.host()
	if host.ConfigErr != nil {
		fmt.Fprintf(e.Stderr, "%s: %s\n", Prog, host.ConfigErr)
		return ExitFailure
	}
	v := virsh{path: firstNonEmpty(e.Virsh, "virsh")}
	if len(names) == 0 {
		out, err := v.run("list", "--all", "--persistent", "--name")
		if err != nil {
			fmt.Fprintf(e.Stderr, "%s: %s\n", Prog, err)
			return ExitFailure
		}
		for _, n := range strings.Split(string(out), "\n") {
			if n = strings.TrimSpace(n); n != "" {
				names = append(names, n)
			}
		}
	}
	templateFormat := v.daemonAtLeast(10, 10) // libvirt reads templateFormat=
	code := ExitOK
	for _, name := range names {
		status, msg, err := pinOne(host, v, name, templateFormat, dryRun)
		if err != nil {
			status, msg, code = "FAILED", err.Error(), ExitFailure
		}
		if status == "REFUSED" {
			code = ExitFailure
		}
		fmt.Fprintf(e.Stdout, "%-8s %s: %s\n", status, name, msg)
	}
	return code
}

func pinOne(host *plan.Host, v virsh, name string, templateFormat, dryRun bool) (status, msg string, err error) {
	info, err := v.run("dominfo", "--domain", name)
	if err != nil {
		return "", "", err
	}
	if m := regexp.MustCompile(`(?m)^Persistent:\s*(\S+)`).FindSubmatch(info); m == nil || string(m[1]) != "yes" {
		return "REFUSED", "a transient domain has no inactive definition to pin (libvirt forgets it when it stops); define it first (virsh define)", nil
	}
	before, err := v.run("dumpxml", "--inactive", "--security-info", "--domain", name)
	if err != nil {
		return "", "", err
	}
	d, err := domain.Parse(before)
	if err != nil {
		return "", "", err
	}
	set, reason, err := host.Pin(d, templateFormat)
	if err != nil {
		return "", "", err
	}
	if set == nil {
		return "ok", "nothing to pin: " + reason, nil
	}
	var hit firmware.Hit
	switch set := set.(type) {
	case plan.SetTemplate:
		hit = set.Template
	case plan.SetVarstoreTemplate:
		hit = set.Template
	}
	what := fmt.Sprintf("%s (%s %s)", strings.TrimPrefix(set.String(), "XML: "), hit.Source, hit.Origin)
	if dryRun {
		return "dry-run", "would " + what, nil
	}
	if err := edit(d, set); err != nil {
		return "", "", err
	}
	after, err := d.Bytes()
	if err != nil {
		return "", "", err
	}
	f, err := os.CreateTemp("", "nvram-hook-pin-*.xml")
	if err != nil {
		return "", "", err
	}
	defer os.Remove(f.Name())
	if _, err := f.Write(after); err != nil {
		f.Close()
		return "", "", err
	}
	if err := f.Close(); err != nil {
		return "", "", err
	}
	// Someone may have edited the definition meanwhile: define only
	// over the version that was read.
	if again, err := v.run("dumpxml", "--inactive", "--security-info", "--domain", name); err != nil {
		return "", "", err
	} else if !bytes.Equal(again, before) {
		return "", "", errors.New("the definition changed while it was being pinned; nothing defined, run pin again")
	}
	if _, err := v.run("define", "--file", f.Name()); err != nil {
		return "", "", err
	}
	return "pinned", strings.Replace(what, "add ", "added ", 1), nil
}

// virsh runs libvirt's own client.
type virsh struct{ path string }

func (v virsh) run(args ...string) ([]byte, error) {
	cmd := exec.Command(v.path, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		msg := strings.TrimSpace(stderr.String())
		if msg == "" {
			msg = err.Error()
		}
		return nil, fmt.Errorf("virsh %s: %s", strings.Join(args, " "), oneLine(msg))
	}
	return stdout.Bytes(), nil
}

// daemonAtLeast reports whether the daemon virsh talks to is libvirt
// major.minor or later; false when it cannot tell.
func (v virsh) daemonAtLeast(major, minor int) bool {
	out, err := v.run("version", "--daemon")
	if err != nil {
		return false
	}
	m := regexp.MustCompile(`(?m)^Running against daemon: (\d+)\.(\d+)`).FindSubmatch(out)
	if m == nil {
		return false
	}
	ma, _ := strconv.Atoi(string(m[1]))
	mi, _ := strconv.Atoi(string(m[2]))
	return ma > major || ma == major && mi >= minor
}
