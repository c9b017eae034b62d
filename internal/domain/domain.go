// Package domain reads the parts of a libvirt domain XML that decide whether
// a UEFI varstore is needed, and rewrites only the <nvram> element, keeping
// everything else in the document (unknown elements, namespaces, comments,
// <metadata>) as it came.
package domain

import (
	"errors"
	"fmt"
	"io"
	"strings"

	"github.com/beevik/etree"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/xmlscan"
)

// MaxSize caps the domain XML we accept on stdin.
const MaxSize = xmlscan.MaxSize

// ErrInvalid marks every reason a document is not a domain we can act on.
var ErrInvalid = xmlscan.ErrInvalid

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
	osSpan  xmlscan.Span    // where <os> is in data
	osDoc   *etree.Document // <os>, parsed; re-serialized only when changed
	os      *etree.Element
	loader  *etree.Element
	nvram   *etree.Element
	changed bool
}

// Read reads a whole domain XML, at most MaxSize bytes.
func Read(r io.Reader) (*Domain, error) {
	data, err := xmlscan.Read(r)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}

// Parse parses a domain XML. One fast scan (xmlscan.Check) checks the
// whole document and finds the elements the hook reads; etree parses only
// those.
func Parse(data []byte) (*Domain, error) {
	l, err := xmlscan.Check(data)
	if err != nil {
		return nil, err
	}
	// For a domain with a <loader>, two <loader>, <nvram>, <type> or
	// <firmware> in <os> are errors, since libvirt would not know which to
	// use; without a loader there is no varstore and nothing in <os>
	// matters.
	d := &Domain{data: data}
	if l.Name != nil {
		_, n, err := fragment(data, *l.Name)
		if err != nil {
			return nil, err
		}
		d.Name = n.Text()
	}
	if l.Features != nil {
		_, feats, err := fragment(data, *l.Features)
		if err != nil {
			return nil, err
		}
		if smm := feats.SelectElement("smm"); smm != nil && smm.SelectAttrValue("state", "") == "off" {
			d.SMMOff = true
		}
	}
	if l.OS == nil {
		return d, nil
	}
	d.osSpan = *l.OS
	var os *etree.Element
	if d.osDoc, os, err = fragment(data, *l.OS); err != nil {
		return nil, err
	}
	d.os = os
	d.FirmwareAuto = os.SelectAttrValue("firmware", "")
	strict := l.HasLoader()
	if t, err := only(os, "type", strict); err != nil {
		return nil, err
	} else if t != nil {
		d.Arch = t.SelectAttrValue("arch", "")
		d.Machine = t.SelectAttrValue("machine", "")
	}
	if fw, err := only(os, "firmware", strict); err != nil {
		return nil, err
	} else if fw != nil {
		for _, f := range fw.SelectElements("feature") {
			if d.FirmwareFeatures == nil {
				d.FirmwareFeatures = map[string]bool{}
			}
			d.FirmwareFeatures[f.SelectAttrValue("name", "")] = f.SelectAttrValue("enabled", "") == "yes"
		}
	}
	if d.loader, err = only(os, "loader", strict); err != nil {
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
	if d.nvram, err = only(os, "nvram", strict); err != nil {
		return nil, err
	}
	if d.nvram != nil {
		d.NVRAM = parseNVRAM(d.nvram)
	}
	return d, nil
}

// fragment parses one element of data (already checked by scan) with
// etree, as a document of its own.
func fragment(data []byte, s xmlscan.Span) (*etree.Document, *etree.Element, error) {
	doc := etree.NewDocument()
	doc.ReadSettings.PreserveCData = true
	doc.WriteSettings.AttrSingleQuote = true
	doc.WriteSettings.CanonicalText = true
	if err := doc.ReadFromBytes(data[s.Start:s.End]); err != nil {
		return nil, nil, fmt.Errorf("%w: %s", ErrInvalid, strings.TrimPrefix(err.Error(), "etree: "))
	}
	if doc.Root() == nil {
		return nil, nil, fmt.Errorf("%w: empty element", ErrInvalid)
	}
	return doc, doc.Root(), nil
}

// only returns the single child of e named tag (without a namespace
// prefix: libvirt's own elements never have one), nil if absent, and, when
// strict, an error if there are several, since libvirt would not know
// which to use; otherwise the first.
func only(e *etree.Element, tag string, strict bool) (*etree.Element, error) {
	var found *etree.Element
	for _, c := range e.ChildElements() {
		if c.Tag != tag || c.Space != "" {
			continue
		}
		if found != nil {
			if !strict {
				return found, nil
			}
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

// SetTemplateFormat sets templateFormat= (libvirt 10.10 and later) on
// <nvram>, beside a template= it has.
func (d *Domain) SetTemplateFormat(format string) error {
	if d.nvram == nil || d.NVRAM.Template == "" {
		return errors.New("domain: SetTemplateFormat needs an <nvram> with a template")
	}
	d.nvram.CreateAttr("templateFormat", format)
	d.NVRAM.TemplateFormat = format
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
	for _, part := range [][]byte{d.data[:d.osSpan.Start], os, d.data[d.osSpan.End:]} {
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
	out := make([]byte, 0, len(d.data)+len(os)-(d.osSpan.End-d.osSpan.Start))
	out = append(out, d.data[:d.osSpan.Start]...)
	out = append(out, os...)
	return append(out, d.data[d.osSpan.End:]...), nil
}
