package hookcall

import "testing"

func TestParseAndPhase(t *testing.T) {
	tests := []struct {
		name   string
		args   []string
		ok     bool
		phase  Phase
		domain string
	}{
		{"prepare", []string{"vm1", "prepare", "begin", "-"}, true, Provision, "vm1"},
		{"migrate", []string{"vm1", "migrate", "begin", "-"}, true, Filter, "vm1"},
		{"restore", []string{"vm1", "restore", "begin", "-"}, true, Filter, "vm1"},
		{"start", []string{"vm1", "start", "begin", "-"}, true, None, "vm1"},
		{"started", []string{"vm1", "started", "begin", "-"}, true, None, "vm1"},
		{"stopped", []string{"vm1", "stopped", "end", "-"}, true, None, "vm1"},
		{"release with reason", []string{"vm1", "release", "end", "shutdown"}, true, None, "vm1"},
		{"reconnect", []string{"vm1", "reconnect", "begin", "-"}, true, None, "vm1"},
		{"attach", []string{"vm1", "attach", "begin", "-"}, true, None, "vm1"},
		{"unknown future op", []string{"vm1", "teleport", "begin", "-"}, true, None, "vm1"},
		{"prepare with odd sub-op", []string{"vm1", "prepare", "end", "-"}, true, None, "vm1"},
		{"leading dash domain", []string{"-vm", "prepare", "begin", "-"}, true, Provision, "-vm"},
		{"unicode domain with space", []string{"vm é 1", "prepare", "begin", "-"}, true, Provision, "vm é 1"},
		{"three args", []string{"vm1", "prepare", "begin"}, false, None, ""},
		{"five args", []string{"vm1", "prepare", "begin", "-", "x"}, false, None, ""},
		{"no args", nil, false, None, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, ok := Parse(tt.args)
			if ok != tt.ok {
				t.Fatalf("Parse(%q) ok = %v, want %v", tt.args, ok, tt.ok)
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
