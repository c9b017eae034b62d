package app

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/domain"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/firmware"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/plan"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/varstore"
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
	p := e.planner()
	cat, err := p.Catalog()
	if err != nil {
		fmt.Fprintf(e.Stderr, "%s: %s\n", Prog, err)
		return ExitFailure
	}
	problems, uefi := 0, 0
	for _, f := range files {
		data, err := os.ReadFile(f)
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
		if !d.NeedsVarstore() || d.NVRAM == nil || d.NVRAM.Kind != domain.NVRAMFile || d.NVRAM.Path == "" || d.Loader.Path == "" {
			continue
		}
		uefi++
		status, bad := auditOne(p, cat, d)
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

func auditOne(p *plan.Planner, cat *firmware.Catalog, d *domain.Domain) (string, bool) {
	path := d.NVRAM.Path
	q := plan.Query(d)
	q.Template = d.NVRAM.Template
	hit, findErr := cat.Find(q)
	exists, err := varstore.Exists(path)
	if err != nil {
		return err.Error(), true
	}
	if !exists {
		if findErr != nil {
			return fmt.Sprintf("%s is missing and the next start will fail: %v", path, findErr), true
		}
		return fmt.Sprintf("%s is missing; the next start creates it from %s (%s)", path, hit.Template, hit.Source), false
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err.Error(), true
	}
	if m, bad := plan.LayoutMismatch(cat, q, path); bad {
		return fmt.Sprintf("%s is %d bytes, but loader %s takes %d-byte varstores (%s %s): variables may be lost",
			path, m.Got, d.Loader.Path, m.Want, m.Layout.Source, m.Layout.Origin), true
	}
	if findErr != nil {
		return fmt.Sprintf("%s exists (%d bytes), but no template is known for %s: it could not be recreated or reset", path, fi.Size(), d.Loader.Path), true
	}
	return fmt.Sprintf("%s exists (%d bytes), template %s (%s)", path, fi.Size(), hit.Template, hit.Source), false
}
