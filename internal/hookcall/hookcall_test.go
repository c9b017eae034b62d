package hookcall

import "testing"

func TestParseAndPhase(t *testing.T) {
	tests := []struct {
		name   string
		argv   []string
		ok     bool
		phase  Phase
		domain string
	}{
		{"prepare", []string{"/etc/libvirt/hooks/qemu", "vm1", "prepare", "begin", "-"}, true, Create, "vm1"},
		{"migrate", []string{"/etc/libvirt/hooks/qemu", "vm1", "migrate", "begin", "-"}, true, Filter, "vm1"},
		{"restore", []string{"/etc/libvirt/hooks/qemu.d/50-nvram", "vm1", "restore", "begin", "-"}, true, Filter, "vm1"},
		{"start", []string{"/etc/libvirt/hooks/qemu", "vm1", "start", "begin", "-"}, true, None, "vm1"},
		{"started", []string{"/etc/libvirt/hooks/qemu", "vm1", "started", "begin", "-"}, true, None, "vm1"},
		{"stopped", []string{"/etc/libvirt/hooks/qemu", "vm1", "stopped", "end", "-"}, true, None, "vm1"},
		{"release with reason", []string{"/etc/libvirt/hooks/qemu", "vm1", "release", "end", "shutdown"}, true, None, "vm1"},
		{"reconnect", []string{"/etc/libvirt/hooks/qemu", "vm1", "reconnect", "begin", "-"}, true, None, "vm1"},
		{"attach", []string{"/etc/libvirt/hooks/qemu", "vm1", "attach", "begin", "-"}, true, None, "vm1"},
		{"prepare with odd sub-op", []string{"/etc/libvirt/hooks/qemu", "vm1", "prepare", "end", "-"}, true, None, "vm1"},
		{"leading dash domain", []string{"/etc/libvirt/hooks/qemu", "-vm", "prepare", "begin", "-"}, true, Create, "-vm"},
		{"unicode domain with space", []string{"/etc/libvirt/hooks/qemu", "vm é 1", "prepare", "begin", "-"}, true, Create, "vm é 1"},
		{"libvirt built with another sysconfdir", []string{"/var/lib/libvirt/hooks/qemu.d/nvram", "vm1", "prepare", "begin", "-"}, true, Create, "vm1"},
		{"relative hook path", []string{"./qemu", "vm1", "prepare", "begin", "-"}, true, Create, "vm1"},
		// A newer libvirt may add operations and sub-ops: from a hook path
		// they are libvirt's calls, silent successes.
		{"unknown future op from qemu", []string{"/etc/libvirt/hooks/qemu", "vm1", "teleport", "begin", "-"}, true, None, "vm1"},
		{"unknown future op from qemu.d", []string{"/etc/libvirt/hooks/qemu.d/50-nvram", "vm1", "teleport", "midway", "x"}, true, None, "vm1"},
		// Under its own name the binary is a hook only for what libvirt
		// passes: one of its operations and sub-ops.
		{"own name, prepare", []string{"/usr/libexec/libvirt-nvram-hook", "vm1", "prepare", "begin", "-"}, true, Create, "vm1"},
		{"own name, release", []string{"libvirt-nvram-hook", "vm1", "release", "end", "-"}, true, None, "vm1"},
		{"own name, a typo", []string{"libvirt-nvram-hook", "explain", "-f", "x.xml", "extra"}, false, None, ""},
		{"own name, check with an extra word", []string{"libvirt-nvram-hook", "check", "--audit", "/d", "extra"}, false, None, ""},
		{"own name, unknown op", []string{"libvirt-nvram-hook", "vm1", "teleport", "begin", "-"}, false, None, ""},
		{"own name, unknown sub-op", []string{"libvirt-nvram-hook", "vm1", "prepare", "midway", "-"}, false, None, ""},
		{"a directory named like the hook", []string{"/etc/libvirt/hooks/qemu/x", "vm1", "teleport", "begin", "-"}, false, None, ""},
		{"three args", []string{"/etc/libvirt/hooks/qemu", "vm1", "prepare", "begin"}, false, None, ""},
		{"five args", []string{"/etc/libvirt/hooks/qemu", "vm1", "prepare", "begin", "-", "x"}, false, None, ""},
		{"no args", nil, false, None, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := Parse(tt.argv)
			if ok != tt.ok {
				t.Fatalf("Parse(%q) ok = %v, want %v", tt.argv, ok, tt.ok)
			}
			if !ok {
				return
			}
			if c.Domain != tt.domain {
				t.Errorf("domain = %q, want %q", c.Domain, tt.domain)
			}
			if got := c.Phase(); got != tt.phase {
				t.Errorf("Phase() = %v, want %v", got, tt.phase)
			}
		})
	}
}
