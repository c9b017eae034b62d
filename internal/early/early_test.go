package early

import (
	"errors"
	"io"
	"strings"
	"testing"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/xmlscan"
)

// drained records whether run read its stdin to the end.
type drained struct {
	r   io.Reader
	eof bool
}

func (d *drained) Read(p []byte) (int, error) {
	n, err := d.r.Read(p)
	if err == io.EOF {
		d.eof = true
	}
	return n, err
}

func TestRun(t *testing.T) {
	const (
		bios    = "<domain><name>vm</name><os><type>hvm</type><boot dev='hd'/></os></domain>"
		auto    = "<domain><name>vm</name><os firmware='efi'><type>hvm</type></os></domain>"
		uefi    = "<domain><name>vm</name><os><loader readonly='yes' type='pflash'>/c</loader></os></domain>"
		missing = "<domain><name>vm</name><os><loader readonly='yes' type='pflash'>/c</loader><nvram>/nonexistent/vm_VARS.fd</nvram></os></domain>"
	)
	for _, tt := range []struct {
		name   string
		args   []string
		stdin  string
		done   bool
		doc    bool   // a document is handed on
		docErr string // ... with this error
	}{
		{"start", []string{"qemu", "vm", "start", "begin", "-"}, uefi, true, false, ""},
		{"stopped end", []string{"qemu", "vm", "stopped", "end", "-"}, uefi, true, false, ""},
		{"unknown future operation", []string{"qemu", "vm", "frobnicate", "begin", "-"}, uefi, true, false, ""},
		{"prepare with another sub-op", []string{"qemu", "vm", "prepare", "end", "-"}, uefi, true, false, ""},
		{"garbage in release", []string{"qemu", "vm", "release", "end", "-"}, "\x00<<<", true, false, ""},
		{"prepare BIOS", []string{"qemu", "vm", "prepare", "begin", "-"}, bios, true, false, ""},
		{"migrate BIOS", []string{"qemu", "vm", "migrate", "begin", "-"}, bios, true, false, ""},
		{"restore firmware autoselection", []string{"qemu", "vm", "restore", "begin", "-"}, auto, true, false, ""},
		{"prepare UEFI without <nvram>", []string{"qemu", "vm", "prepare", "begin", "-"}, uefi, true, false, ""},
		{"prepare UEFI, varstore missing", []string{"qemu", "vm", "prepare", "begin", "-"}, missing, false, true, ""},
		{"migrate UEFI", []string{"qemu", "vm", "migrate", "begin", "-"}, uefi, false, true, ""},
		{"malformed prepare", []string{"qemu", "vm", "prepare", "begin", "-"}, "<domain><os>", false, true, "not closed"},
		{"empty restore", []string{"qemu", "vm", "restore", "begin", "-"}, "", false, true, "empty input"},
		{"command line", []string{"libvirt-nvram-hook", "check"}, "", false, false, ""},
		{"no argv at all", nil, "", false, false, ""},
		{"a go test binary", []string{"x.test", "-test.v", "-test.run=X", "-test.count=1", "-test.timeout=1m"}, uefi, false, false, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			in := &drained{r: strings.NewReader(tt.stdin)}
			done, d := run(tt.args, in)
			if done != tt.done || (d != nil) != tt.doc {
				t.Fatalf("run = %v, %+v; want done %v, document %v", done, d, tt.done, tt.doc)
			}
			if done && !in.eof {
				t.Error("answered without reading stdin to the end")
			}
			if d == nil {
				return
			}
			switch {
			case tt.docErr == "" && (d.Err != nil || d.Layout == nil || string(d.Data) != tt.stdin):
				t.Errorf("document %+v, want the input with its layout", d)
			case tt.docErr != "" && (d.Err == nil || !errors.Is(d.Err, xmlscan.ErrInvalid) || !strings.Contains(d.Err.Error(), tt.docErr)):
				t.Errorf("document error %v, want one containing %q", d.Err, tt.docErr)
			}
		})
	}
}
