// Package domain reads the parts of a libvirt domain XML that decide whether
// a UEFI varstore is needed, and edits the few elements the filters change
// (<loader>'s path, <nvram>, <varstore>'s attributes). The output is the
// input's bytes with only the changed element's bytes replaced: every other
// element, attribute quote, character reference, comment and namespace comes
// out as it went in.
package domain

import (
	"bytes"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"unicode/utf8"

	"github.com/beevik/etree"
)

// MaxSize caps the domain XML we accept on stdin. libvirt's own XML for a
// guest with thousands of disks stays well below a few MiB.
const MaxSize = 64 << 20

// ErrInvalid marks every reason a document is not a domain we can act on.
var ErrInvalid = errors.New("invalid domain XML")

func invalid(format string, args ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, args...))
}

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

// Varstore is /domain/os/varstore (libvirt 12.1 and later): the JSON
// variable store of QEMU's uefi-vars device, beside a rom loader. Path is
// empty when the element names no file (libvirt's define fills in
// /var/lib/libvirt/qemu/varstore/NAME.json).
type Varstore struct {
	Path     string
	Template string
}

// Domain is a parsed domain XML, with the edits asked of it so far.
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
	Varstore         *Varstore

	data []byte // the document as read
	// The elements the edits change, as they are in data.
	loader, nvram, varstore *node
	// The edits: loader's new path, an added <nvram>, and attributes set
	// on the existing <nvram> and <varstore>.
	newLoader     *string
	added         *NVRAM
	nvramAttrs    []attr
	varstoreAttrs []attr
}

type attr struct{ name, value string }

// Read reads a whole domain XML, at most MaxSize bytes, and parses it.
func Read(r io.Reader) (*Domain, error) {
	data, err := io.ReadAll(io.LimitReader(r, MaxSize+1))
	if err != nil {
		return nil, invalid("reading: %v", err)
	}
	if len(data) > MaxSize {
		return nil, invalid("larger than %d MiB", MaxSize>>20)
	}
	return Parse(data)
}

// Parse checks data as a whole domain document and reads what the hook
// needs from it. encoding/xml checks the whole document and says where
// <name>, <os> and <features> and the children of <os> are; etree reads
// those few elements. Parse rejects what libvirt never sends or what is
// dangerous: a DOCTYPE (and with it entity definitions), bytes that are not
// UTF-8, characters XML forbids (also inside comments), anything
// encoding/xml finds not well-formed, a repeated attribute, a root other
// than <domain>, two <os>. For a domain with a <loader> it also rejects two
// <loader>, <nvram>, <varstore>, <type> or <firmware> in <os>, since
// libvirt would not know which to use; without a loader there is no
// varstore and nothing else in <os> matters.
func Parse(data []byte) (*Domain, error) {
	if len(data) > MaxSize {
		return nil, invalid("larger than %d MiB", MaxSize>>20)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return nil, invalid("empty input")
	}
	if err := checkChars(data); err != nil {
		return nil, err
	}
	root, err := parseTree(data)
	if err != nil {
		return nil, err
	}
	d := &Domain{data: data}
	if n := root.first("name"); n != nil {
		el, err := fragment(data, n)
		if err != nil {
			return nil, err
		}
		d.Name = el.Text()
	}
	if f := root.first("features"); f != nil {
		el, err := fragment(data, f)
		if err != nil {
			return nil, err
		}
		if smm := el.SelectElement("smm"); smm != nil && attrOf(smm, "state") == "off" {
			d.SMMOff = true
		}
	}
	oss := root.all("os")
	if len(oss) > 1 {
		return nil, invalid("more than one <os> in <domain>")
	}
	if len(oss) == 0 {
		return d, nil
	}
	os := oss[0]
	osEl, err := fragment(data, os)
	if err != nil {
		return nil, err
	}
	children := osEl.ChildElements()
	if len(children) != len(os.kids) {
		return nil, fmt.Errorf("domain: etree read %d elements in <os>, encoding/xml %d", len(children), len(os.kids))
	}
	for i, k := range os.kids {
		k.el = children[i]
	}
	d.FirmwareAuto = attrOf(osEl, "firmware")
	strict := os.first("loader") != nil
	only := func(name string) (*node, error) {
		all := os.all(name)
		if len(all) > 1 && strict {
			return nil, invalid("more than one <%s> in <os>", name)
		}
		if len(all) == 0 {
			return nil, nil
		}
		return all[0], nil
	}
	if t, err := only("type"); err != nil {
		return nil, err
	} else if t != nil {
		d.Arch, d.Machine = attrOf(t.el, "arch"), attrOf(t.el, "machine")
	}
	if fw, err := only("firmware"); err != nil {
		return nil, err
	} else if fw != nil {
		for _, f := range fw.el.ChildElements() {
			if f.Space != "" || f.Tag != "feature" {
				continue
			}
			if d.FirmwareFeatures == nil {
				d.FirmwareFeatures = map[string]bool{}
			}
			d.FirmwareFeatures[attrOf(f, "name")] = attrOf(f, "enabled") == "yes"
		}
	}
	if d.loader, err = only("loader"); err != nil {
		return nil, err
	}
	if l := d.loader; l != nil {
		d.Loader = &Loader{
			Path:      strings.TrimSpace(l.el.Text()),
			Type:      attrOf(l.el, "type"),
			ReadOnly:  attrOf(l.el, "readonly") == "yes",
			Stateless: attrOf(l.el, "stateless") == "yes",
			Format:    attrOf(l.el, "format"),
			Secure:    attrOf(l.el, "secure"),
		}
	}
	if d.nvram, err = only("nvram"); err != nil {
		return nil, err
	}
	if d.nvram != nil {
		d.NVRAM = readNVRAM(d.nvram.el)
	}
	if d.varstore, err = only("varstore"); err != nil {
		return nil, err
	}
	if v := d.varstore; v != nil {
		d.Varstore = &Varstore{Path: attrOf(v.el, "path"), Template: attrOf(v.el, "template")}
	}
	return d, nil
}

// fragment reads element n of data, which encoding/xml checked, with etree.
func fragment(data []byte, n *node) (*etree.Element, error) {
	doc := etree.NewDocument()
	doc.ReadSettings.PreserveCData = true
	if err := doc.ReadFromBytes(data[n.start:n.end]); err != nil {
		return nil, invalid("%s", strings.TrimPrefix(err.Error(), "etree: "))
	}
	if doc.Root() == nil {
		return nil, invalid("empty element")
	}
	return doc.Root(), nil
}

// attrOf is e's attribute name without a namespace prefix, or "".
func attrOf(e *etree.Element, name string) string {
	for _, a := range e.Attr {
		if a.Space == "" && a.Key == name {
			return a.Value
		}
	}
	return ""
}

func readNVRAM(e *etree.Element) *NVRAM {
	n := &NVRAM{
		Type:           attrOf(e, "type"),
		Template:       attrOf(e, "template"),
		Format:         attrOf(e, "format"),
		TemplateFormat: attrOf(e, "templateFormat"),
	}
	switch n.Type {
	case "", "file":
		n.Kind = NVRAMFile
		n.Path = strings.TrimSpace(e.Text())
		for _, src := range e.ChildElements() {
			if src.Space == "" && src.Tag == "source" {
				if f := attrOf(src, "file"); f != "" {
					n.Path = f
				}
				break
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

// checkChars checks that data is UTF-8 and holds none of the characters
// XML 1.0 forbids anywhere, comments and processing instructions included
// (encoding/xml checks only text and attributes): control characters other
// than tab, newline and carriage return, U+FFFE, U+FFFF.
func checkChars(data []byte) error {
	for i := 0; i < len(data); {
		r, n := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			return invalid("not UTF-8 at byte %d", i)
		case r < 0x20 && r != '\t' && r != '\n' && r != '\r':
			return invalid("control character 0x%x at byte %d", r, i)
		case r == 0xFFFE || r == 0xFFFF:
			return invalid("character U+%04X at byte %d", r, i)
		}
		i += n
	}
	return nil
}

// node is an element the hook may read or edit, with where it is in the
// document: start tag [start, tagEnd), content [tagEnd, contentEnd), end
// tag [contentEnd, end). An empty element (<x/>) has tagEnd == contentEnd
// == end.
type node struct {
	name                      xml.Name // Space is the prefix as written
	start, tagEnd, contentEnd int
	end                       int
	depth                     int     // the root is 1
	kids                      []*node // kept for the root and <os> only
	keepKids                  bool
	el                        *etree.Element // for <os>'s children: what etree read
}

// all returns the children named name, without a namespace prefix
// (libvirt's own elements never have one).
func (n *node) all(name string) []*node {
	var out []*node
	for _, k := range n.kids {
		if k.name.Space == "" && k.name.Local == name {
			out = append(out, k)
		}
	}
	return out
}

func (n *node) first(name string) *node {
	for _, k := range n.kids {
		if k.name.Space == "" && k.name.Local == name {
			return k
		}
	}
	return nil
}

// open is an element whose end tag is still to come.
type open struct {
	name xml.Name
	n    *node // nil: an element the hook does not read
}

// parseTree checks the whole document with encoding/xml and returns the
// root with its children and the children of <os>, each with where it is
// written. Everything else is checked and skipped.
func parseTree(data []byte) (*node, error) {
	dec := xml.NewDecoder(bytes.NewReader(data))
	dec.Strict = true
	var root *node
	var stack []open
	for {
		off := int(dec.InputOffset())
		tok, err := dec.RawToken()
		if err == io.EOF {
			break
		}
		if err != nil {
			var serr *xml.SyntaxError
			if errors.As(err, &serr) {
				return nil, invalid("line %d: %s", serr.Line, serr.Msg)
			}
			return nil, invalid("%v", err)
		}
		end := int(dec.InputOffset())
		switch t := tok.(type) {
		case xml.StartElement:
			if err := uniqueAttrs(t); err != nil {
				return nil, err
			}
			var parent *node
			if len(stack) == 0 {
				if root != nil {
					return nil, invalid("2 root elements")
				}
				if t.Name.Space != "" || t.Name.Local != "domain" {
					return nil, invalid("root element is not <domain>")
				}
			} else {
				parent = stack[len(stack)-1].n
			}
			o := open{name: t.Name}
			if len(stack) == 0 || parent != nil && parent.keepKids {
				n := &node{name: t.Name, start: off, tagEnd: end, depth: len(stack) + 1}
				if parent != nil {
					parent.kids = append(parent.kids, n)
				} else {
					root = n
				}
				n.keepKids = n.depth == 1 || n.depth == 2 && n.is("os")
				o.n = n
			}
			stack = append(stack, o)
		case xml.EndElement:
			if len(stack) == 0 {
				return nil, invalid("unexpected </%s> at byte %d", qname(t.Name), off)
			}
			o := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			if o.name != t.Name {
				return nil, invalid("<%s> closed by </%s> at byte %d", qname(o.name), qname(t.Name), off)
			}
			n := o.n
			if n == nil {
				continue
			}
			n.contentEnd, n.end = off, end
			if end == off { // <x/>: the decoder reports an end tag it did not read
				n.contentEnd, n.end = n.tagEnd, n.tagEnd
			}
		case xml.CharData:
			if len(stack) == 0 {
				if len(bytes.TrimSpace(t)) != 0 {
					return nil, invalid("text outside the root element at byte %d", off)
				}
			}
		case xml.Directive:
			return nil, invalid("DOCTYPE and other declarations are not accepted (byte %d)", off)
		}
	}
	if len(stack) > 0 {
		return nil, invalid("<%s> not closed at the end of the input", qname(stack[len(stack)-1].name))
	}
	if root == nil {
		return nil, invalid("no root element")
	}
	return root, nil
}

func (n *node) is(local string) bool { return n.name.Space == "" && n.name.Local == local }

func qname(n xml.Name) string {
	if n.Space == "" {
		return n.Local
	}
	return n.Space + ":" + n.Local
}

// uniqueAttrs rejects a start tag that repeats an attribute, which XML
// forbids and encoding/xml lets through.
func uniqueAttrs(t xml.StartElement) error {
	for i, a := range t.Attr {
		for _, b := range t.Attr[:i] {
			if a.Name == b.Name {
				return invalid("attribute %s repeated in <%s>", qname(a.Name), qname(t.Name))
			}
		}
	}
	return nil
}

// NeedsVarstore reports whether libvirt gives this domain a per-VM varstore:
// a read-only pflash loader that is not stateless (libvirt's
// qemuPrepareNVRAM condition). A read-write (solid) image carries its own
// variables; a ROM loader has none.
func (d *Domain) NeedsVarstore() bool {
	l := d.Loader
	return l != nil && l.Type == "pflash" && l.ReadOnly && !l.Stateless
}

// AddNVRAM adds <nvram template='T'>PATH</nvram> right after <loader>,
// indented like the loader (template= only when T is not empty). It is
// only valid when the domain has a loader and no <nvram>.
func (d *Domain) AddNVRAM(path, template string) error {
	if d.loader == nil || d.NVRAM != nil {
		return errors.New("domain: AddNVRAM needs a <loader> and no <nvram>")
	}
	d.added = &NVRAM{Kind: NVRAMFile, Path: path, Template: template}
	d.NVRAM = &NVRAM{Kind: NVRAMFile, Path: path, Template: template}
	return nil
}

// SetTemplate sets template= on an <nvram> that has none (or an empty one).
func (d *Domain) SetTemplate(template string) error {
	if d.NVRAM == nil || d.NVRAM.Template != "" {
		return errors.New("domain: SetTemplate needs an <nvram> without template")
	}
	d.setNVRAMAttr("template", template, func(n *NVRAM) *string { return &n.Template })
	return nil
}

// SetTemplateFormat sets templateFormat= (libvirt 10.10 and later) on
// <nvram>, beside a template= it has.
func (d *Domain) SetTemplateFormat(format string) error {
	if d.NVRAM == nil || d.NVRAM.Template == "" {
		return errors.New("domain: SetTemplateFormat needs an <nvram> with a template")
	}
	d.setNVRAMAttr("templateFormat", format, func(n *NVRAM) *string { return &n.TemplateFormat })
	return nil
}

// setNVRAMAttr sets the <nvram> attribute name to value: in the element
// the hook adds, else as a splice of the original one; and in d.NVRAM
// (field picks the member the attribute is read into).
func (d *Domain) setNVRAMAttr(name, value string, field func(*NVRAM) *string) {
	if d.added != nil {
		*field(d.added) = value
	} else {
		d.nvramAttrs = setAttr(d.nvramAttrs, name, value)
	}
	*field(d.NVRAM) = value
}

// SetLoader replaces the loader path, the text of <loader>.
func (d *Domain) SetLoader(path string) error {
	if d.loader == nil {
		return errors.New("domain: SetLoader needs a <loader>")
	}
	d.newLoader = &path
	d.Loader.Path = path
	return nil
}

// SetVarstorePath sets path= on a <varstore> that names no file.
func (d *Domain) SetVarstorePath(path string) error { return d.setVarstore("path", path) }

// SetVarstoreTemplate sets template= on a <varstore> that has none.
func (d *Domain) SetVarstoreTemplate(template string) error {
	return d.setVarstore("template", template)
}

// setVarstore sets the attribute name (path or template) of <varstore>,
// which must not have a value for it yet.
func (d *Domain) setVarstore(name, value string) error {
	if d.varstore == nil {
		return fmt.Errorf("domain: setting %s= needs a <varstore>", name)
	}
	cur := &d.Varstore.Path
	if name == "template" {
		cur = &d.Varstore.Template
	}
	if *cur != "" {
		return fmt.Errorf("domain: <varstore> has a %s= already", name)
	}
	d.varstoreAttrs = setAttr(d.varstoreAttrs, name, value)
	*cur = value
	return nil
}

func setAttr(attrs []attr, name, value string) []attr {
	for i := range attrs {
		if attrs[i].name == name {
			attrs[i].value = value
			return attrs
		}
	}
	return append(attrs, attr{name, value})
}

// Changed reports whether an edit changed the document.
func (d *Domain) Changed() bool {
	return d.newLoader != nil || d.added != nil || len(d.nvramAttrs) > 0 || len(d.varstoreAttrs) > 0
}

// splice replaces data[start:end] by text.
type splice struct {
	start, end int
	text       string
}

// splices are the edits as byte replacements, in document order; they
// never overlap, since each touches one element of <os>.
func (d *Domain) splices() []splice {
	var out []splice
	if d.newLoader != nil {
		l := d.loader
		if l.tagEnd == l.end { // <loader .../>: open it
			out = append(out, splice{l.tagEnd - len("/>"), l.tagEnd, ">" + escapeText(*d.newLoader) + "</" + qname(l.name) + ">"})
		} else {
			out = append(out, splice{l.tagEnd, l.contentEnd, escapeText(*d.newLoader)})
		}
	}
	if n := d.added; n != nil {
		el := "<nvram"
		if n.Template != "" {
			el += " template='" + escapeAttr(n.Template) + "'"
		}
		if n.TemplateFormat != "" {
			el += " templateFormat='" + escapeAttr(n.TemplateFormat) + "'"
		}
		el += ">" + escapeText(n.Path) + "</nvram>"
		out = append(out, splice{d.loader.end, d.loader.end, d.indent(d.loader) + el})
	}
	out = append(out, d.attrSplices(d.nvram, d.nvramAttrs)...)
	out = append(out, d.attrSplices(d.varstore, d.varstoreAttrs)...)
	slices.SortFunc(out, func(a, b splice) int { return a.start - b.start })
	return out
}

// indent is the white space before n since the previous markup, the line
// break and indentation an element beside it gets; "\n" when there is none.
func (d *Domain) indent(n *node) string {
	i := n.start
	for i > 0 && strings.IndexByte(" \t\r\n", d.data[i-1]) >= 0 {
		i--
	}
	if i == n.start || i > 0 && d.data[i-1] != '>' {
		return "\n"
	}
	return string(d.data[i:n.start])
}

// attrSplices sets attributes in n's start tag: an attribute the tag has
// gets its value replaced, quotes included; a new one is added after the
// last attribute (or the name).
func (d *Domain) attrSplices(n *node, attrs []attr) []splice {
	if len(attrs) == 0 {
		return nil
	}
	spans, after := attrSpans(d.data[n.start:n.tagEnd])
	var out []splice
	var added strings.Builder
	for _, a := range attrs {
		text := a.name + "='" + escapeAttr(a.value) + "'"
		if s, ok := spans[a.name]; ok {
			out = append(out, splice{n.start + s[0], n.start + s[1], text})
		} else {
			added.WriteString(" " + text)
		}
	}
	if added.Len() > 0 {
		out = append(out, splice{n.start + after, n.start + after, added.String()})
	}
	return out
}

// attrSpans finds, in a start tag encoding/xml accepted, where each
// attribute is written (name to closing quote) and where the last
// attribute, or the element name, ends.
func attrSpans(tag []byte) (spans map[string][2]int, after int) {
	spans = map[string][2]int{}
	isSpace := func(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }
	i := 1
	for i < len(tag) && !isSpace(tag[i]) && tag[i] != '/' && tag[i] != '>' {
		i++
	}
	after = i
	for {
		for i < len(tag) && isSpace(tag[i]) {
			i++
		}
		if i >= len(tag) || tag[i] == '/' || tag[i] == '>' {
			return spans, after
		}
		start := i
		for i < len(tag) && !isSpace(tag[i]) && tag[i] != '=' {
			i++
		}
		name := string(tag[start:i])
		for i < len(tag) && tag[i] != '\'' && tag[i] != '"' {
			i++ // white space and '='
		}
		if i >= len(tag) {
			return spans, after
		}
		q := tag[i]
		i++
		for i < len(tag) && tag[i] != q {
			i++
		}
		i++
		spans[name] = [2]int{start, i}
		after = i
	}
}

// escapeText escapes s as element text.
func escapeText(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;", "\r", "&#13;").Replace(s)
}

// escapeAttr escapes s as a value in single quotes, white space other than
// spaces included (XML would turn it into spaces).
func escapeAttr(s string) string {
	return strings.NewReplacer("&", "&amp;", "<", "&lt;", "'", "&apos;", "\t", "&#9;", "\n", "&#10;", "\r", "&#13;").Replace(s)
}

// WriteTo writes the document: the bytes as read, with the edited parts
// replaced. The parts are written as they are, never joined into a copy of
// a document that may be large.
func (d *Domain) WriteTo(w io.Writer) (int64, error) {
	var total int64
	write := func(b []byte) error {
		n, err := w.Write(b)
		total += int64(n)
		return err
	}
	pos := 0
	for _, s := range d.splices() {
		if err := write(d.data[pos:s.start]); err != nil {
			return total, err
		}
		if err := write([]byte(s.text)); err != nil {
			return total, err
		}
		pos = s.end
	}
	return total, write(d.data[pos:])
}

// Bytes returns the document as XML.
func (d *Domain) Bytes() ([]byte, error) {
	var b bytes.Buffer
	_, err := d.WriteTo(&b)
	return b.Bytes(), err
}
