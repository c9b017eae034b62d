// Package hookcall decodes how libvirtd invokes a QEMU hook: the argv shape
// `HOOK DOMAIN OPERATION SUBOP EXTRA` and what each operation asks of us.
package hookcall

import "path/filepath"

// Operation is the second hook argument. Only prepare, migrate and restore
// do any work; every other value, including ones a newer libvirt may add,
// is a silent success.
type Operation string

// The operations libvirtd passes to the qemu hook (src/util/virhook.c).
const (
	Prepare   Operation = "prepare"
	Start     Operation = "start"
	Started   Operation = "started"
	Stopped   Operation = "stopped"
	Release   Operation = "release"
	Migrate   Operation = "migrate"
	Restore   Operation = "restore"
	Reconnect Operation = "reconnect"
	Attach    Operation = "attach"
)

// known reports whether libvirt defines the operation
// (virHookQemuOpType).
func (o Operation) known() bool {
	switch o {
	case Prepare, Start, Started, Stopped, Release, Migrate, Restore, Reconnect, Attach:
		return true
	}
	return false
}

// Phase says what the hook has to do for a call.
type Phase int

const (
	// None: exit 0 at once, print nothing, read no config.
	None Phase = iota
	// Create: create a missing varstore; stdout is ignored by libvirt.
	Create
	// Filter: create a missing varstore, and stdout (when non-empty)
	// replaces the domain XML.
	Filter
)

func (p Phase) String() string {
	switch p {
	case Create:
		return "create"
	case Filter:
		return "filter"
	}
	return "none"
}

// Call is one invocation by libvirtd.
type Call struct {
	Domain string
	Op     Operation
	SubOp  string
	Extra  string
}

// Parse recognises libvirtd's call in the whole argv: four arguments after
// the hook's path, and either the path libvirt runs hooks by (a file named
// qemu, /etc/libvirt/hooks/qemu, or a file in a qemu.d directory,
// /etc/libvirt/hooks/qemu.d/NAME; the directory is SYSCONFDIR/libvirt/hooks
// of libvirt's build), where every operation and sub-op counts, those
// a newer libvirt may add included; or, under any other name (the binary's
// own), one of libvirt's operations with one of its sub-ops (begin, end,
// -). Anything else is a person at the command line. Domain names may
// start with a dash, so no flag parsing happens here.
func Parse(argv []string) (Call, bool) {
	if len(argv) != 5 {
		return Call{}, false
	}
	c := Call{Domain: argv[1], Op: Operation(argv[2]), SubOp: argv[3], Extra: argv[4]}
	hookPath := filepath.Base(argv[0]) == "qemu" || filepath.Base(filepath.Dir(argv[0])) == "qemu.d"
	libvirtShape := c.Op.known() && (c.SubOp == "begin" || c.SubOp == "end" || c.SubOp == "-")
	if !hookPath && !libvirtShape {
		return Call{}, false
	}
	return c, true
}

// Phase maps the call to the work it needs. libvirt passes sub-op "begin"
// to prepare, migrate and restore; anything else is not ours to handle.
func (c Call) Phase() Phase {
	if c.SubOp != "begin" {
		return None
	}
	switch c.Op {
	case Prepare:
		return Create
	case Migrate, Restore:
		return Filter
	}
	return None
}
