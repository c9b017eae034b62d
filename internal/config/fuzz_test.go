package config

import (
	"path/filepath"
	"strings"
	"testing"
)

// FuzzParse: any bytes give either a valid config or problems with lines
// inside the file; never a panic, never a config that breaks its own
// invariants.
func FuzzParse(f *testing.F) {
	f.Add([]byte("[nvram]\ndir = /srv/nv\nallowed_dirs = /srv\n[templates]\nnvram = /a:/b\n[log]\ntarget = stderr\n"))
	f.Add([]byte("[nvram]\ndir = rel\nwhat = 1\n"))
	f.Add([]byte("[templates]\nnvram = /a:/b\nnvram = /c:/d ; x\ndescriptor_dirs = /x:/y\nqemu_conf =\n"))
	f.Add([]byte("key = value\n[log\n"))
	f.Add([]byte("[templates]\nvarstore = /r.fd:/t.json\nvarstore = /r.fd:/t.json\nvarstore = r:/t\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := Parse("/f.conf", data)
		lines := strings.Count(string(data), "\n") + 1
		if err != nil {
			cerr, ok := err.(*Error)
			if !ok || len(cerr.Problems) == 0 {
				t.Fatalf("error without problems: %v", err)
			}
			for _, p := range cerr.Problems {
				if p.Line < 0 || p.Line > lines {
					t.Fatalf("problem on line %d of a %d-line file: %s", p.Line, lines, p.Msg)
				}
			}
			return
		}
		if !filepath.IsAbs(c.NVRAMDir) || !Within(c.NVRAMDir, c.AllowedDirs) {
			t.Fatalf("accepted dir %q with allowed %q", c.NVRAMDir, c.AllowedDirs)
		}
		for _, p := range append(append([]Pair{}, c.Pairs...), c.VarstorePairs...) {
			if !filepath.IsAbs(p.Code) || !filepath.IsAbs(p.Vars) || p.Line < 1 || p.Line > lines {
				t.Fatalf("accepted pair %+v", p)
			}
		}
		for _, d := range append(append([]string{}, c.AllowedDirs...), c.DescriptorDirs...) {
			if !filepath.IsAbs(d) {
				t.Fatalf("accepted relative dir %q", d)
			}
		}
	})
}
