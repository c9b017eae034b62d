// Package early answers the hook calls that need no work before the rest
// of the program initialises. Go runs package initialisers in dependency
// order and otherwise by import path (Go 1.21 and later); this package
// depends only on hookcall, xmlscan and standard packages that os, bytes
// and strconv need (no fmt, no reflect, no strings: encoding/xml waits for
// those too and its import path sorts first), so its init runs before
// encoding/xml, etree, logrus, ini.v1 (and its regexps) and encoding/json
// initialise. hook's TestEarlyExit checks that order. For start, started, stopped,
// release, reconnect and every other phase without work, for a work phase
// whose domain has no varstore (BIOS), and for prepare of a domain whose
// varstore exists (every start but the first), it drains or reads stdin
// and exits 0 right here; the process then costs little more than an
// empty Go program.
//
// It only ever short-cuts to the answer the whole program would give:
// anything else (a document that fails the check, an I/O error, a missing
// varstore, a filter that may change the XML, an unusual <os>) falls
// through to main with the document already read and checked, so errors
// are reported and logged by internal/app as always.
package early

import (
	"io"
	"os"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/hookcall"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/xmlscan"
)

// Doc is the domain XML init read from stdin for a work phase.
type Doc struct {
	Data   []byte
	Layout *xmlscan.Layout // nil when Err is set
	Err    error           // reading or checking failed
}

var doc *Doc

// Document returns the domain XML init already read from stdin, or nil
// when it read nothing (not a hook call, or a phase without work).
func Document() *Doc { return doc }

func init() {
	var done bool
	if done, doc = run(os.Args, os.Stdin); done {
		os.Exit(0)
	}
}

// run decides for argv and stdin: done means the call is answered (exit
// 0, no output); otherwise d is what was read, if anything.
func run(args []string, stdin io.Reader) (done bool, d *Doc) {
	if len(args) < 1 {
		return false, nil
	}
	for _, a := range args[1:] {
		if len(a) > 6 && a[:6] == "-test." {
			return false, nil // a test binary that links this package
		}
	}
	call, ok := hookcall.Parse(args[1:])
	if !ok {
		return false, nil // the command line: internal/app
	}
	if call.Phase() == hookcall.None {
		// Drain stdin so libvirt's write never meets a closed pipe.
		io.Copy(io.Discard, stdin)
		return true, nil
	}
	data, err := xmlscan.Read(stdin)
	if err != nil {
		return false, &Doc{Err: err}
	}
	l, err := xmlscan.Check(data)
	if err != nil {
		return false, &Doc{Data: data, Err: err}
	}
	if nothingToDo(call.Phase(), data, l) {
		return true, nil
	}
	return false, &Doc{Data: data, Layout: l}
}

// nothingToDo reports the cases in which plan.Plan decides that there is
// nothing to do and internal/app neither logs nor prints anything: no
// varstore (no <loader>, or one that is not a read-only, stateful pflash
// with a path), and, in prepare, no <nvram>, an <nvram> naming no file, or
// a varstore file that exists. It says false whenever it cannot tell
// (xmlscan.PlainFirmware declines) or the answer may need the config: a
// filter with a varstore, a block or network <nvram> (a debug line), a
// missing varstore.
func nothingToDo(phase hookcall.Phase, data []byte, l *xmlscan.Layout) bool {
	if !l.HasLoader() {
		return true // BIOS, or <os firmware=...> that libvirt fills in later
	}
	fw, ok := xmlscan.PlainFirmware(data, l)
	if !ok || fw.Loader == nil {
		return false
	}
	ld := fw.Loader.Attrs
	if ld["type"] != "pflash" || ld["readonly"] != "yes" || ld["stateless"] == "yes" || fw.Loader.Text == "" {
		return true // no varstore (plan's noVarstore)
	}
	if phase != hookcall.Provision {
		return false // migrate, restore: may add <nvram> or template=
	}
	nv := fw.NVRAM
	if nv == nil {
		return true // libvirt generates the path and copies after prepare
	}
	if t := nv.Attrs["type"]; t != "" && t != "file" {
		return false
	}
	path := nv.Text
	if nv.Source != "" {
		path = nv.Source
	}
	if path == "" {
		return true // libvirt generates the path itself
	}
	fi, err := os.Lstat(path)
	return err == nil && fi.Mode().IsRegular() // used as it is, never touched
}
