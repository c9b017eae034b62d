package firmware

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestTranslateNeverChangesTrust: on a host shaped like Debian 13, a guest
// whose loader is not there keeps what its firmware promised, or keeps
// its loader. The 2 MiB builds of Debian 12 have no 4 MiB replacement
// (they used to be moved to OVMF_CODE_4M.ms.fd with Microsoft keys), and
// a Secure Boot guest with Microsoft keys is not moved to a build or
// template without them.
func TestTranslateNeverChangesTrust(t *testing.T) {
	root, s := debianTree(t, "13")
	ovmf := root + "/usr/share/OVMF/"
	for _, gone := range []string{"OVMF_CODE_4M.ms.fd", "OVMF_CODE_4M.snakeoil.fd"} {
		if err := os.Remove(ovmf + gone); err != nil {
			t.Fatal(err)
		}
	}
	c := Load(s)
	q := Query{Arch: "x86_64", Machine: "pc-q35-10.0"}
	for _, tt := range []struct {
		old, why string
	}{
		{"OVMF_CODE.fd", "no local firmware promises the same (x86_64, no Secure Boot, keys none, 1966080 B code + 131072 B vars, from built-in table, debian x86_64); differing: "},
		{"OVMF_CODE.fd", "OVMF_CODE_4M.fd (code 3653632 B)"},
		{"OVMF_CODE.secboot.fd", "differing: OVMF_CODE_4M.secboot.fd (code 3653632 B)"},
		{"OVMF_CODE_4M.ms.fd", "(x86_64, Secure Boot, SMM required, keys microsoft, 3653632 B code + 540672 B vars, from 40-edk2-x86_64-secure-enrolled.json)"},
		{"OVMF_CODE_4M.snakeoil.fd", "keys test"},
	} {
		p, err := c.Translate(ovmf+tt.old, q, -1)
		var none *NoTranslationError
		if !errors.As(err, &none) || !strings.Contains(err.Error(), tt.why) {
			t.Errorf("%s: %+v, %v; want a refusal saying %q", tt.old, p, err, tt.why)
		}
	}
}

// TestTranslatePicksTheSamePromise: a loader of one layout moves to the
// local firmware with the same facts (same file name first), never to
// one with other keys, another varstore size or unknown facts.
func TestTranslatePicksTheSamePromise(t *testing.T) {
	root := t.TempDir()
	sb := Facts{Arch: "x86_64", SecureBoot: Yes, SMM: Yes, Keys: KeysMicrosoft, CodeSize: 4096, VarsSize: 2048, Format: "raw"}
	empty := sb
	empty.Keys = KeysNone
	table := []TableEntry{
		{Distro: "a", Code: "/a/SB_CODE.fd", Vars: "/a/SB_VARS.fd", Facts: sb},
		{Distro: "a", Code: "/a/OTHER_CODE.fd", Vars: "/a/SB_VARS.fd", Facts: sb},
		{Distro: "b", Code: "/b/EMPTY_CODE.fd", Vars: "/b/EMPTY_VARS.fd", Facts: empty},
		{Distro: "b", Code: "/b/X_CODE.fd", Vars: "/b/SB_VARS.fd", Facts: sb},
		{Distro: "b", Code: "/b/SB_CODE.fd", Vars: "/b/SB_VARS.fd", Facts: sb},
		{Distro: "c", Code: "/c/UNKNOWN_CODE.fd", Vars: "/c/VARS.fd", Facts: Facts{Arch: "x86_64", Format: "raw"}},
	}
	for name, size := range map[string]int{"b/EMPTY_CODE.fd": 4096, "b/EMPTY_VARS.fd": 2048, "b/X_CODE.fd": 4096, "b/SB_CODE.fd": 4096, "b/SB_VARS.fd": 2048} {
		write(t, filepath.Join(root, name), strings.Repeat("x", size))
	}
	c := Load(Sources{Table: table, TableRoot: root})
	q := Query{Arch: "x86_64", Machine: "pc-q35-10.0"}
	for _, tt := range []struct {
		old      string
		varsSize int64
		want     string // "" = refused
	}{
		{"/a/SB_CODE.fd", -1, "/b/SB_CODE.fd"},   // same name
		{"/a/OTHER_CODE.fd", -1, "/b/X_CODE.fd"}, // first with the same facts
		{"/a/SB_CODE.fd", 2048, "/b/SB_CODE.fd"}, // the guest's varstore fits
		{"/a/SB_CODE.fd", 4096, ""},              // it does not
		{"/c/UNKNOWN_CODE.fd", -1, ""},           // facts unknown
		{"/nowhere/CODE.fd", -1, ""},             // nothing knows it
	} {
		p, err := c.Translate(root+tt.old, q, tt.varsSize)
		switch {
		case tt.want == "" && err == nil:
			t.Errorf("%s (%d): moved to %s", tt.old, tt.varsSize, p.Code)
		case tt.want != "" && (err != nil || p.Code != root+tt.want):
			t.Errorf("%s (%d): %+v, %v; want %s", tt.old, tt.varsSize, p, err, tt.want)
		}
	}
	// A domain refusing Secure Boot has no candidate among Secure Boot
	// builds, whatever the old loader's facts.
	if p, err := c.Translate(root+"/a/SB_CODE.fd", Query{Arch: "x86_64", Features: map[string]bool{"secure-boot": false}}, -1); err == nil {
		t.Errorf("moved to %s", p.Code)
	}
}
