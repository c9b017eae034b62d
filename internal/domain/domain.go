// Package domain reads the parts of a libvirt domain XML that decide whether
// a UEFI varstore is needed, and rewrites only the <nvram> element, keeping
// everything else in the document (unknown elements, namespaces, comments,
// <metadata>) as it came.
package domain

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// MaxSize caps the domain XML we accept on stdin. libvirt's own XML for a
// guest with thousands of disks stays well below a few MiB.
const MaxSize = 64 << 20

// ErrInvalid marks every reason a document is not a domain we can act on.
var ErrInvalid = errors.New("invalid domain XML")

// NVRAMKind is the storage behind <nvram>.
type NVRAMKind int

// The kinds libvirt knows. Only File can be created from a template.
const (
	NVRAMFile NVRAMKind = iota
	NVRAMBlock
	NVRAMNetwork
	NVRAMOther
)

func (k NVRAMKind) String() string {
	switch k {
	case NVRAMFile:
		return "file"
	case NVRAMBlock:
		return "block"
	case NVRAMNetwork:
		return "network"
	}
	return "other"
}

// Loader is /domain/os/loader.
type Loader struct {
	Path      string
	Type      string // "pflash", "rom" or "" (libvirt treats "" as rom)
	ReadOnly  bool
	Stateless bool
	Format    string
	Secure    string // "yes", "no" or "" (unset)
}

// NVRAM is /domain/os/nvram. Path is empty when the element names no file
// (libvirt then generates one itself).
type NVRAM struct {
	Kind           NVRAMKind
	Type           string // the raw type= attribute
	Path           string
	Template       string
	Format         string
	TemplateFormat string
}

// Domain is a parsed domain XML. The etree document is kept so that a
// filter can print the same document with only <nvram> changed.
type Domain struct {
	Name         string
	Arch         string
	Machine      string
	FirmwareAuto string // <os firmware='...'>
	// FirmwareFeatures are <os><firmware><feature name='N' enabled='yes|no'/>:
	// what the user asked of the firmware (secure-boot, enrolled-keys).
	FirmwareFeatures map[string]bool
	SMMOff           bool // <features><smm state='off'/>
	Loader           *Loader
	NVRAM            *NVRAM

	data    []byte          // the document as read
	osSpan  span            // where <os> is in data
	osDoc   *etree.Document // <os>, parsed; re-serialized only when changed
	os      *etree.Element
	loader  *etree.Element
	nvram   *etree.Element
	changed bool
}

// Read reads a whole domain XML, at most MaxSize bytes.
func Read(r io.Reader) (*Domain, error) {
	data, err := readAll(r, MaxSize+1)
	if err != nil {
		return nil, fmt.Errorf("%w: reading: %v", ErrInvalid, err)
	}
	if len(data) > MaxSize {
		return nil, fmt.Errorf("%w: larger than %d MiB", ErrInvalid, MaxSize>>20)
	}
	return Parse(data)
}

// Parse parses a domain XML. It rejects what libvirt never sends: a DOCTYPE
// (and with it entity definitions), a root other than <domain>, duplicated
// <os>, <loader> or <nvram>, bytes that are not UTF-8, anything not
// well-formed. One fast scan checks the whole document and finds the
// elements the hook reads; etree parses only those.
func Parse(data []byte) (*Domain, error) {
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, fmt.Errorf("%w: empty input", ErrInvalid)
	}
	if !utf8.Valid(data) {
		return nil, fmt.Errorf("%w: not UTF-8", ErrInvalid)
	}
	if err := checkChars(data); err != nil {
		return nil, err
	}
	l, err := scan(data)
	if err != nil {
		return nil, err
	}
	if l.root != "domain" {
		return nil, fmt.Errorf("%w: root element is not <domain>", ErrInvalid)
	}
	d := &Domain{data: data}
	if l.name != nil {
		_, n, err := fragment(data, *l.name)
		if err != nil {
			return nil, err
		}
		d.Name = n.Text()
	}
	if l.features != nil {
		_, feats, err := fragment(data, *l.features)
		if err != nil {
			return nil, err
		}
		if smm := feats.SelectElement("smm"); smm != nil && smm.SelectAttrValue("state", "") == "off" {
			d.SMMOff = true
		}
	}
	if l.os == nil {
		return d, nil
	}
	d.osSpan = *l.os
	var os *etree.Element
	if d.osDoc, os, err = fragment(data, *l.os); err != nil {
		return nil, err
	}
	d.os = os
	d.FirmwareAuto = os.SelectAttrValue("firmware", "")
	if t, err := only(os, "type"); err != nil {
		return nil, err
	} else if t != nil {
		d.Arch = t.SelectAttrValue("arch", "")
		d.Machine = t.SelectAttrValue("machine", "")
	}
	if fw, err := only(os, "firmware"); err != nil {
		return nil, err
	} else if fw != nil {
		for _, f := range fw.SelectElements("feature") {
			if d.FirmwareFeatures == nil {
				d.FirmwareFeatures = map[string]bool{}
			}
			d.FirmwareFeatures[f.SelectAttrValue("name", "")] = f.SelectAttrValue("enabled", "") == "yes"
		}
	}
	if d.loader, err = only(os, "loader"); err != nil {
		return nil, err
	}
	if d.loader != nil {
		d.Loader = &Loader{
			Path:      strings.TrimSpace(d.loader.Text()),
			Type:      d.loader.SelectAttrValue("type", ""),
			ReadOnly:  d.loader.SelectAttrValue("readonly", "") == "yes",
			Stateless: d.loader.SelectAttrValue("stateless", "") == "yes",
			Format:    d.loader.SelectAttrValue("format", ""),
			Secure:    d.loader.SelectAttrValue("secure", ""),
		}
	}
	if d.nvram, err = only(os, "nvram"); err != nil {
		return nil, err
	}
	if d.nvram != nil {
		d.NVRAM = parseNVRAM(d.nvram)
	}
	return d, nil
}

// checkChars rejects the characters XML 1.0 forbids everywhere: control
// characters other than tab, newline and carriage return, U+FFFE, U+FFFF.
func checkChars(data []byte) error {
	for i, c := range data {
		if c < 0x20 && c != '\t' && c != '\n' && c != '\r' {
			return fmt.Errorf("%w: control character %#x at byte %d", ErrInvalid, c, i)
		}
	}
	if bytes.Contains(data, []byte("\xef\xbf\xbe")) || bytes.Contains(data, []byte("\xef\xbf\xbf")) {
		return fmt.Errorf("%w: character U+FFFE or U+FFFF", ErrInvalid)
	}
	return nil
}

// fragment parses one element of data (already checked by scan) with
// etree, as a document of its own.
func fragment(data []byte, s span) (*etree.Document, *etree.Element, error) {
	doc := etree.NewDocument()
	doc.ReadSettings.PreserveCData = true
	doc.WriteSettings.AttrSingleQuote = true
	doc.WriteSettings.CanonicalText = true
	if err := doc.ReadFromBytes(data[s.start:s.end]); err != nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "etree: "))
	}
	if doc.Root() == nil {
		return nil, nil, fmt.Errorf("%w: empty element", ErrInvalid)
	}
	return doc, doc.Root(), nil
}

// only returns the single child of e named tag (without a namespace
// prefix: libvirt's own elements never have one), nil if absent, and an
// error if there are several, since libvirt would not know which to use.
func only(e *etree.Element, tag string) (*etree.Element, error) {
	var found *etree.Element
	for _, c := range e.ChildElements() {
		if c.Tag != tag || c.Space != "" {
			continue
		}
		if found != nil {
			return nil, fmt.Errorf("%w: more than one <%s> in <%s>", ErrInvalid, tag, e.Tag)
		}
		found = c
	}
	return found, nil
}

func parseNVRAM(e *etree.Element) *NVRAM {
	n := &NVRAM{
		Type:           e.SelectAttrValue("type", ""),
		Template:       e.SelectAttrValue("template", ""),
		Format:         e.SelectAttrValue("format", ""),
		TemplateFormat: e.SelectAttrValue("templateFormat", ""),
	}
	switch n.Type {
	case "", "file":
		n.Kind = NVRAMFile
		n.Path = strings.TrimSpace(e.Text())
		if src := e.SelectElement("source"); src != nil {
			if f := src.SelectAttrValue("file", ""); f != "" {
				n.Path = f
			}
		}
	case "block":
		n.Kind = NVRAMBlock
	case "network":
		n.Kind = NVRAMNetwork
	default:
		n.Kind = NVRAMOther
	}
	return n
}

// NeedsVarstore reports whether libvirt gives this domain a per-VM varstore:
// a read-only pflash loader that is not stateless (libvirt's
// qemuPrepareNVRAM condition). A read-write (solid) image carries its own
// variables; a ROM loader has none.
func (d *Domain) NeedsVarstore() bool {
	l := d.Loader
	return l != nil && l.Type == "pflash" && l.ReadOnly && !l.Stateless
}

// AddNVRAM inserts <nvram template='T'>PATH</nvram> right after <loader>,
// indented like the loader. It is only valid when the domain has a loader
// and no <nvram>.
func (d *Domain) AddNVRAM(path, template string) error {
	if d.loader == nil || d.nvram != nil {
		return errors.New("domain: AddNVRAM needs a <loader> and no <nvram>")
	}
	n := etree.NewElement("nvram")
	if template != "" {
		n.CreateAttr("template", template)
	}
	n.SetText(path)
	i := d.loader.Index()
	indent := "\n"
	if i > 0 {
		if cd, ok := d.os.Child[i-1].(*etree.CharData); ok && strings.TrimSpace(cd.Data) == "" {
			indent = cd.Data
		}
	}
	d.os.InsertChildAt(i+1, n)
	d.os.InsertChildAt(i+1, etree.NewText(indent))
	d.nvram = n
	d.NVRAM = &NVRAM{Kind: NVRAMFile, Path: path, Template: template}
	d.changed = true
	return nil
}

// SetTemplate adds template= to an existing <nvram> that has none.
func (d *Domain) SetTemplate(template string) error {
	if d.nvram == nil || d.NVRAM.Template != "" {
		return errors.New("domain: SetTemplate needs an <nvram> without template")
	}
	d.nvram.CreateAttr("template", template)
	d.NVRAM.Template = template
	d.changed = true
	return nil
}

// SetLoader replaces the loader path.
func (d *Domain) SetLoader(path string) error {
	if d.loader == nil {
		return errors.New("domain: SetLoader needs a <loader>")
	}
	d.loader.SetText(path)
	d.Loader.Path = path
	d.changed = true
	return nil
}

// Changed reports whether AddNVRAM or SetTemplate modified the document.
func (d *Domain) Changed() bool { return d.changed }

// WriteTo writes the document: the bytes as read, with <os> re-serialized
// when AddNVRAM, SetTemplate or SetLoader changed it. The parts are written
// as they are, never joined into a copy of a document that may be large.
func (d *Domain) WriteTo(w io.Writer) (int64, error) {
	if !d.changed {
		n, err := w.Write(d.data)
		return int64(n), err
	}
	os, err := d.osDoc.WriteToBytes()
	if err != nil {
		return 0, err
	}
	var total int64
	for _, part := range [][]byte{d.data[:d.osSpan.start], os, d.data[d.osSpan.end:]} {
		n, err := w.Write(part)
		total += int64(n)
		if err != nil {
			return total, err
		}
	}
	return total, nil
}

// Bytes returns the document as XML.
func (d *Domain) Bytes() ([]byte, error) {
	if !d.changed {
		return d.data, nil
	}
	os, err := d.osDoc.WriteToBytes()
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(d.data)+len(os)-(d.osSpan.end-d.osSpan.start))
	out = append(out, d.data[:d.osSpan.start]...)
	out = append(out, os...)
	return append(out, d.data[d.osSpan.end:]...), nil
}
