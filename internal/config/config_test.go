package config

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

func TestLoadMissingFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "nvram-hook.conf")
	c, err := Load(p, false)
	if err != nil {
		t.Fatal(err)
	}
	want := Default(p)
	if !reflect.DeepEqual(c, want) || c.Present {
		t.Errorf("got %+v, want the defaults", c)
	}
	if _, err := Load(p, true); err == nil {
		t.Error("a required config that is missing loaded without error")
	}
}

func TestParseValid(t *testing.T) {
	in := `# comment
[nvram]
dir = /srv/nvram
allowed_dirs = /srv/nvram:/data/nvram
allowed_dirs = /mnt/shared nvram
user = qemu
group = +107
add_template = yes

[templates]
nvram = /srv/fw/A_CODE.fd:/srv/fw/A_VARS.fd
; another
nvram = /srv/fw/B_CODE.fd:/srv/fw/B_VARS.fd ; inline comment
descriptors = false
descriptor_dirs = /etc/qemu/firmware:/opt/fw/descriptors
qemu_conf =

[log]
target = file:/var/log/nvram-hook.log
level = debug
`
	c, err := Parse("/x.conf", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := &Config{
		Path: "/x.conf", Present: true,
		NVRAMDir:    "/srv/nvram",
		VarstoreDir: DefaultVarstoreDir,
		AllowedDirs: []string{"/srv/nvram", "/data/nvram", "/mnt/shared nvram"},
		User:        "qemu", Group: "+107", AddTemplate: true,
		Pairs: []Pair{
			{"/srv/fw/A_CODE.fd", "/srv/fw/A_VARS.fd", 11},
			{"/srv/fw/B_CODE.fd", "/srv/fw/B_VARS.fd", 13},
		},
		Builtin:        true,
		DescriptorDirs: []string{"/etc/qemu/firmware", "/opt/fw/descriptors"},
		LogTarget:      "file:/var/log/nvram-hook.log", LogLevel: "debug",
	}
	if !reflect.DeepEqual(c, want) {
		t.Errorf("got  %+v\nwant %+v", c, want)
	}
}

func TestDirAloneSetsAllowedDirs(t *testing.T) {
	c, err := Parse("/x.conf", []byte("[nvram]\ndir = /srv/nv/\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.NVRAMDir != "/srv/nv" || !reflect.DeepEqual(c.AllowedDirs, []string{"/srv/nv"}) {
		t.Errorf("dir %q allowed %q", c.NVRAMDir, c.AllowedDirs)
	}
}

// TestParseReportsEveryProblem: one pass lists all problems with lines.
func TestParseReportsEveryProblem(t *testing.T) {
	in := `stray = 1
[nvram]
dir = relative/path
add_template = maybe
colour = blue
[templates]
nvram = /only/code
nvram = rel/CODE.fd:/abs/VARS.fd
[bogus]
x = 1
[log]
target = papyrus
level = loud
this line is nonsense
[nvram]
user = a
user = b
`
	_, err := Parse("/x.conf", []byte(in))
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("err = %v, want *Error", err)
	}
	want := map[int]string{
		1:  `key "stray" is outside any section`,
		3:  `dir "relative/path" is not an absolute path`,
		4:  `add_template = "maybe": use true or false`,
		5:  `unknown key "colour" in [nvram]`,
		7:  `nvram = "/only/code" is not CODE:VARS`,
		8:  `both paths must be absolute`,
		9:  `unknown section [bogus]`,
		12: `target "papyrus"`,
		13: `level "loud"`,
		14: `"this line is nonsense" is not 'key = value'`,
		17: `user is set twice (first on line 16)`,
	}
	got := map[int]string{}
	for _, p := range cerr.Problems {
		got[p.Line] += p.Msg
	}
	for line, msg := range want {
		if !strings.Contains(got[line], msg) {
			t.Errorf("line %d: got %q, want it to mention %q", line, got[line], msg)
		}
	}
	if len(cerr.Problems) < len(want) {
		t.Errorf("%d problems, want at least %d: %v", len(cerr.Problems), len(want), cerr.Problems)
	}
	if !strings.Contains(cerr.Error(), "more problems") {
		t.Errorf("summary %q does not say there are more", cerr.Error())
	}
}

func TestDirOutsideAllowedDirs(t *testing.T) {
	_, err := Parse("/x.conf", []byte("[nvram]\ndir = /a\nallowed_dirs = /b\n"))
	if err == nil || !strings.Contains(err.Error(), "not inside allowed_dirs") {
		t.Errorf("err = %v", err)
	}
}

func TestLoadUnreadable(t *testing.T) {
	dir := t.TempDir()
	_, err := Load(dir, false) // a directory
	if err == nil {
		t.Fatal("loading a directory succeeded")
	}
	if err := os.WriteFile(filepath.Join(dir, "c"), []byte("[nvram"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(filepath.Join(dir, "c"), false); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Errorf("err = %v, want a line-1 problem", err)
	}
}

func TestWithin(t *testing.T) {
	dirs := []string{"/var/lib/libvirt/qemu/nvram", "/srv/"}
	tests := []struct {
		path string
		want bool
	}{
		{"/var/lib/libvirt/qemu/nvram/a_VARS.fd", true},
		{"/var/lib/libvirt/qemu/nvram", true},
		{"/var/lib/libvirt/qemu/nvram2/a", false},
		{"/var/lib/libvirt/qemu/nvram/../a", false},
		{"/srv/x/y", true},
		{"/etc/passwd", false},
	}
	for _, tt := range tests {
		if got := Within(tt.path, dirs); got != tt.want {
			t.Errorf("Within(%q) = %v, want %v", tt.path, got, tt.want)
		}
	}
}

// TestKeysListsEveryKey keeps the documented list and the parser in step:
// every listed key is known in exactly one section.
func TestKeysListsEveryKey(t *testing.T) {
	for _, k := range Keys {
		n := 0
		for _, sec := range sections {
			if _, ok := lookupKey(sec, k); ok {
				n++
			}
		}
		if n != 1 {
			t.Errorf("key %q is known in %d sections", k, n)
		}
	}
	if len(Keys) != 14 {
		t.Errorf("Keys lists %d keys; the parser knows 14 (update both)", len(Keys))
	}
}

// TestLinesAfterRepeatedValues: ini.v1 keeps one copy of a value given
// twice, so every line after a repeat must still name its own line: the
// pairs' origins and the problems.
func TestLinesAfterRepeatedValues(t *testing.T) {
	in := `[nvram]
allowed_dirs = /srv/a
allowed_dirs = /srv/a
allowed_dirs = rel
[templates]
nvram = /fw/A_CODE.fd:/fw/A_VARS.fd
nvram = /fw/A_CODE.fd:/fw/A_VARS.fd
nvram = /fw/B_CODE.fd:/fw/B_VARS.fd
nvram = bad
`
	_, err := Parse("/x.conf", []byte(in))
	var cerr *Error
	if !errors.As(err, &cerr) {
		t.Fatalf("err = %v, want *Error", err)
	}
	got := map[int]string{}
	for _, p := range cerr.Problems {
		got[p.Line] += p.Msg
	}
	if !strings.Contains(got[4], `"rel" is not an absolute path`) || !strings.Contains(got[9], `"bad" is not CODE:VARS`) || len(cerr.Problems) != 2 {
		t.Errorf("problems %v, want line 4 (rel) and line 9 (bad)", cerr.Problems)
	}
	valid := strings.Replace(strings.Replace(in, "= rel", "= /srv/b", 1), "nvram = bad\n", "", 1)
	c, err := Parse("/x.conf", []byte(valid+"[nvram]\ndir = /srv/a\n"))
	if err != nil {
		t.Fatal(err)
	}
	want := []Pair{{"/fw/A_CODE.fd", "/fw/A_VARS.fd", 6}, {"/fw/A_CODE.fd", "/fw/A_VARS.fd", 7}, {"/fw/B_CODE.fd", "/fw/B_VARS.fd", 8}}
	if !reflect.DeepEqual(c.Pairs, want) {
		t.Errorf("pairs %+v, want %+v", c.Pairs, want)
	}
	if want := []string{"/srv/a", "/srv/a", "/srv/b"}; !reflect.DeepEqual(c.AllowedDirs, want) {
		t.Errorf("allowed_dirs %q, want %q", c.AllowedDirs, want)
	}
}

// TestVarstorePairs: [templates] varstore = ROM:TEMPLATE pairs, for the
// JSON variable store of a rom loader (libvirt 12.1+ <varstore>), are
// kept apart from the nvram pairs, each with its own line.
func TestVarstorePairs(t *testing.T) {
	in := `[templates]
varstore = /srv/fw/ROM.fd:/srv/fw/VARS.json
nvram = /srv/fw/CODE.fd:/srv/fw/VARS.fd
varstore = /srv/fw/ROM.fd:/srv/fw/VARS.json
varstore = /srv/fw/ROM2.fd:/srv/fw/VARS2.json ; second firmware
`
	c, err := Parse("/x.conf", []byte(in))
	if err != nil {
		t.Fatal(err)
	}
	want := []Pair{{"/srv/fw/ROM.fd", "/srv/fw/VARS.json", 2}, {"/srv/fw/ROM.fd", "/srv/fw/VARS.json", 4}, {"/srv/fw/ROM2.fd", "/srv/fw/VARS2.json", 5}}
	if !reflect.DeepEqual(c.VarstorePairs, want) {
		t.Errorf("varstore pairs %+v, want %+v", c.VarstorePairs, want)
	}
	if want := []Pair{{"/srv/fw/CODE.fd", "/srv/fw/VARS.fd", 3}}; !reflect.DeepEqual(c.Pairs, want) {
		t.Errorf("nvram pairs %+v, want %+v", c.Pairs, want)
	}
	_, err = Parse("/x.conf", []byte("[templates]\nvarstore = /srv/fw/ROM.fd\nvarstore = rom.fd:/srv/VARS.json\n"))
	var cerr *Error
	if !errors.As(err, &cerr) || len(cerr.Problems) != 2 ||
		cerr.Problems[0].String() != `line 2: varstore = "/srv/fw/ROM.fd" is not ROM:TEMPLATE` ||
		cerr.Problems[1].String() != `line 3: varstore = "rom.fd:/srv/VARS.json": both paths must be absolute` {
		t.Errorf("err = %v, want the two lines' problems", err)
	}
}
