package app

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/domain"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/firmware"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/plan"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/safeopen"
)

// DefaultDomainDir holds the system daemon's persistent domain XML.
const DefaultDomainDir = "/etc/libvirt/qemu"

// runAudit reads every defined domain in dir and reports, touching
// nothing: varstores missing (and whether a start would create them),
// varstores whose size does not fit their loader's layout, varstores with
// no known template (virsh start --reset-nvram could not recreate them),
// and anything that is not a regular file where a varstore should be.
func runAudit(e Env, dir string) int {
	files, err := filepath.Glob(filepath.Join(dir, "*.xml"))
	if err != nil || len(files) == 0 {
		fmt.Fprintf(e.Stderr, "%s: no domain XML in %s\n", Prog, dir)
		return ExitFailure
	}
	sort.Strings(files)
	host := e.host()
	if host.ConfigErr != nil {
		fmt.Fprintf(e.Stderr, "%s: %s\n", Prog, host.ConfigErr)
		return ExitFailure
	}
	problems, uefi := 0, 0
	for _, f := range files {
		data, err := safeopen.ReadFile(f, domain.MaxSize)
		if err != nil {
			fmt.Fprintf(e.Stdout, "ERROR    %s: %v\n", f, err)
			problems++
			continue
		}
		d, err := domain.Parse(data)
		if err != nil {
			fmt.Fprintf(e.Stdout, "ERROR    %s: %v\n", f, err)
			problems++
			continue
		}
		pl, err := host.Plan(d, plan.Prepare)
		if pl.Path == "" {
			continue // no varstore file: BIOS, a block or network one, a path libvirt generates
		}
		uefi++
		status, bad := auditOne(host, d, pl, err)
		if bad {
			problems++
		}
		fmt.Fprintf(e.Stdout, "%-8s %s: %s\n", map[bool]string{true: "PROBLEM", false: "ok"}[bad], d.Name, status)
	}
	fmt.Fprintf(e.Stdout, "%d domains, %d with a file varstore, %d problem(s)\n", len(files), uefi, problems)
	if problems > 0 {
		return ExitFailure
	}
	return ExitOK
}

// auditOne says what the next start does with d's varstore (the plan of
// prepare, or its error), and for an existing one whether its size fits
// the loader and whether it could be recreated.
func auditOne(host *plan.Host, d *domain.Domain, pl *plan.Plan, planErr error) (string, bool) {
	path := pl.Path
	var notFound *firmware.NotFoundError
	if len(pl.Libvirt) > 0 {
		return strings.Join(pl.Libvirt, "; "), true
	}
	switch {
	case errors.As(planErr, &notFound):
		return fmt.Sprintf("%s is missing and the next start will fail: %v", path, notFound), true
	case planErr != nil:
		return fmt.Sprintf("the next start will fail: %v", planErr), true
	case !pl.Exists:
		for _, eff := range pl.Effects {
			switch eff := eff.(type) {
			case plan.CreateVarstore:
				if note := resetNote(host, d, eff.Template); note != "" {
					return fmt.Sprintf("%s is missing; the next start creates it from %s (%s), but %s", path, eff.Template.Template, eff.Template.Source, note), true
				}
				return fmt.Sprintf("%s is missing; the next start creates it from %s (%s)", path, eff.Template.Template, eff.Template.Source), false
			case plan.Skip:
				return fmt.Sprintf("%s is missing; the hook leaves it to libvirt: %s", path, eff.Reason), false
			}
		}
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err.Error(), true
	}
	cat, err := host.Catalog()
	if err != nil {
		return err.Error(), true
	}
	if m, bad := plan.LayoutMismatch(cat, plan.Query(d), path); bad {
		return fmt.Sprintf("%s is %d bytes, but loader %s takes %d-byte varstores (%s %s): variables may be lost",
			path, m.Got, d.Loader.Path, m.Want, m.Layout.Source, m.Layout.Origin), true
	}
	hit, err := host.Template(d)
	if err == nil {
		if note := resetNote(host, d, hit); note != "" {
			return fmt.Sprintf("%s exists (%d bytes), template %s (%s), but %s", path, fi.Size(), hit.Template, hit.Source, note), true
		}
	}
	if errors.As(err, new(*firmware.NotFoundError)) {
		return fmt.Sprintf("%s exists (%d bytes), but no template is known for %s: it could not be recreated or reset", path, fi.Size(), d.Loader.Path), true
	}
	if err != nil {
		return fmt.Sprintf("%s exists (%d bytes), but its template cannot be used: %v", path, fi.Size(), err), true
	}
	return fmt.Sprintf("%s exists (%d bytes), template %s (%s)", path, fi.Size(), hit.Template, hit.Source), false
}

// resetNote says, when libvirt knows no template for d itself, that
// virsh start --reset-nvram fails (libvirt needs the template; a hook in
// prepare cannot help) and how to pin the hook's template into the
// definition. "" when libvirt knows one. The same holds for a uefi-vars
// <varstore> (libvirt 12.8 fails its reset alike: e2e scenario 28).
func resetNote(host *plan.Host, d *domain.Domain, hit firmware.Hit) string {
	where, err := host.LibvirtTemplate(d)
	if err != nil || where != "" {
		return ""
	}
	return fmt.Sprintf("'virsh start --reset-nvram' fails: libvirt itself knows no template for %s; '%s pin %s' writes template='%s' into the definition", d.Loader.Path, Prog, d.Name, hit.Template)
}
