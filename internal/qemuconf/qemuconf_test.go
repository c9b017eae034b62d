package qemuconf

import (
	"reflect"
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	tests := []struct {
		name  string
		in    string
		want  Conf
		error string
	}{
		{"debian default: everything commented", "#user = \"libvirt-qemu\"\n#nvram = [\n#   \"/a:/b\"\n#]\n", Conf{}, ""},
		{"list across lines with comments", `
# Location of master nvram file
user = "qemu"   # trailing comment
group = '+107'
nvram = [
   "/usr/share/OVMF/OVMF_CODE.fd:/usr/share/OVMF/OVMF_VARS.fd",   # 2M
   "/srv/fw/X_CODE.fd:/srv/fw/X_VARS.fd",
]
max_files = 32768
security_driver = [ "selinux", "dac" ]
`, Conf{User: "qemu", Group: "+107", NVRAMSet: true, NVRAM: []Pair{
			{"/usr/share/OVMF/OVMF_CODE.fd", "/usr/share/OVMF/OVMF_VARS.fd", 6},
			{"/srv/fw/X_CODE.fd", "/srv/fw/X_VARS.fd", 7},
		}}, ""},
		{"one-line list, later nvram wins", `nvram = ["/a:/b"]
nvram = ["/c:/d"]`, Conf{NVRAMSet: true, NVRAM: []Pair{{"/c", "/d", 2}}}, ""},
		// Set, though empty: libvirt drops its compiled-in list for it.
		{"empty list", "nvram = [ ]\n", Conf{NVRAMSet: true}, ""},
		{"bad pair", `nvram = [ "/only-one-path" ]`, Conf{}, `line 1: nvram entry "/only-one-path" is not CODE:VARS`},
		{"nvram not a list", `nvram = "/a:/b"`, Conf{}, "line 1: nvram must be a list"},
		{"unclosed list", "nvram = [\n \"/a:/b\",\n", Conf{}, "list not closed"},
		{"unclosed string", `user = "qemu`, Conf{}, "string not closed"},
		{"missing equals", "user \"qemu\"", Conf{}, `line 1: expected '=' after "user"`},
		{"junk after value", `user = "qemu" "root"`, Conf{}, "unexpected text"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Parse([]byte(tt.in))
			if tt.error != "" {
				if err == nil || !strings.Contains(err.Error(), tt.error) {
					t.Fatalf("err = %v, want %q", err, tt.error)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(c.NVRAM) == 0 {
				c.NVRAM = nil
			}
			if !reflect.DeepEqual(*c, tt.want) {
				t.Errorf("got %+v, want %+v", *c, tt.want)
			}
		})
	}
}

func TestSplitPair(t *testing.T) {
	tests := []struct {
		in         string
		code, vars string
		ok         bool
	}{
		{"/a:/b", "/a", "/b", true},
		{"/a", "", "", false},
		{":/b", "", "", false},
		{"/a:", "", "", false},
		{"/a:/b:/c", "", "", false},
	}
	for _, tt := range tests {
		code, vars, ok := SplitPair(tt.in)
		if code != tt.code || vars != tt.vars || ok != tt.ok {
			t.Errorf("SplitPair(%q) = %q, %q, %v", tt.in, code, vars, ok)
		}
	}
}
