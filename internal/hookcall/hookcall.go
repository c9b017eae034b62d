// Package hookcall decodes how libvirtd invokes a QEMU hook: the argv shape
// `DOMAIN OPERATION SUBOP EXTRA` and what each operation asks of us.
package hookcall

// Operation is the second hook argument. Only the operations listed in
// phases do any work; every other value, including ones a newer libvirt may
// add, is a silent success.
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

// Phase says what the hook has to do for a call.
type Phase int

const (
	// None: exit 0 at once, print nothing, read no config.
	None Phase = iota
	// Provision: create a missing varstore; stdout is ignored by libvirt.
	Provision
	// Filter: provision, and stdout (when non-empty) replaces the domain XML.
	Filter
)

func (p Phase) String() string {
	switch p {
	case Provision:
		return "provision"
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

// Parse recognises hook mode: exactly four arguments after argv[0],
// whatever argv[0] is (qemu, qemu.d/50-nvram, the binary's own name).
// Domain names may start with a dash, so no flag parsing happens here.
func Parse(args []string) (Call, bool) {
	if len(args) != 4 {
		return Call{}, false
	}
	return Call{Domain: args[0], Op: Operation(args[1]), SubOp: args[2], Extra: args[3]}, true
}

// Phase maps the call to the work it needs. libvirt passes sub-op "begin"
// to prepare, migrate and restore; anything else is not ours to handle.
func (c Call) Phase() Phase {
	if c.SubOp != "begin" {
		return None
	}
	switch c.Op {
	case Prepare:
		return Provision
	case Migrate, Restore:
		return Filter
	}
	return None
}
