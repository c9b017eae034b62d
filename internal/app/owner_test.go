package app

import (
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/config"
)

// TestResolveOwner: a user or group that is named (in the hook's config or
// in qemu.conf) is used or is an error; a qemu.conf that exists but cannot
// be read is an error, since it may name the user. Only where nothing
// names one does the distribution's qemu user (else root) stand in.
func TestResolveOwner(t *testing.T) {
	dir := t.TempDir()
	qemuConf := func(name, content string) string {
		p := filepath.Join(dir, name)
		os.WriteFile(p, []byte(content), 0o644)
		return p
	}
	fallback := "root:root"
	for _, n := range fallbackUsers {
		if u, err := user.Lookup(n); err == nil {
			g, err := user.LookupGroup(u.Username)
			if err != nil {
				g, _ = user.LookupGroupId(u.Gid)
			}
			fallback = u.Username + ":" + g.Name
			break
		}
	}
	for _, tt := range []struct {
		name                  string
		cfgUser, cfgGroup, qc string
		want, err             string
	}{
		{"ids", "+0", "+5", "", "root:" + groupName(5), ""},
		{"an id without a passwd entry, with a group", "+64999", "+64998", "", "64999:" + groupName(64998), ""},
		{"an id without a passwd entry, no group", "+64999", "", "", "", "has no passwd entry, so its group is unknown"},
		{"a user that does not exist", "no-such-user-nvram-hook", "", "", "", `qemu user "no-such-user-nvram-hook" does not exist`},
		{"a group that does not exist", "root", "no-such-group-nvram-hook", "", "", `qemu group "no-such-group-nvram-hook" does not exist`},
		{"not a number", "+12a", "", "", "", "is not a number"},
		{"qemu.conf names the user", "", "", qemuConf("named.conf", "user = \"+0\"\ngroup = \"+0\"\n"), "root:root", ""},
		{"qemu.conf names a user that does not exist", "", "", qemuConf("unknown.conf", "user = \"no-such-user-nvram-hook\"\n"), "", "does not exist"},
		{"qemu.conf unreadable", "", "", qemuConf("broken.conf", "user = \n"), "", "cannot tell the qemu user from " + dir + "/broken.conf"},
		{"qemu.conf a directory", "", "", dir, "", "cannot tell the qemu user from " + dir + ": open " + dir + ": not a regular file (a directory)"},
		{"the config wins over qemu.conf", "+0", "+0", qemuConf("other.conf", "user = \"no-such-user-nvram-hook\"\n"), "root:root", ""},
		{"nothing names one", "", "", filepath.Join(dir, "absent.conf"), fallback, ""},
	} {
		t.Run(tt.name, func(t *testing.T) {
			o, err := resolveOwner(&config.Config{User: tt.cfgUser, Group: tt.cfgGroup, QemuConf: tt.qc})
			if tt.err != "" {
				if err == nil || !strings.Contains(err.Error(), tt.err) {
					t.Fatalf("resolveOwner = %+v, %v; want an error with %q", o, err, tt.err)
				}
				return
			}
			if err != nil || o.Name != tt.want {
				t.Fatalf("resolveOwner = %+v, %v; want %s", o, err, tt.want)
			}
			if u, err := user.Lookup(strings.Split(o.Name, ":")[0]); err == nil && strconv.Itoa(o.UID) != u.Uid {
				t.Errorf("uid %d, but %s is %s", o.UID, u.Username, u.Uid)
			}
		})
	}
}

func groupName(gid int) string {
	if g, err := user.LookupGroupId(strconv.Itoa(gid)); err == nil {
		return g.Name
	}
	return strconv.Itoa(gid)
}
