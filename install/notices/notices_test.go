package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

const top = "../.."

// linked is what the hook binary links, as the go command says today.
func linked(t *testing.T) []Component {
	t.Helper()
	if _, err := exec.LookPath(goCmd()); err != nil {
		t.Skip("no go command")
	}
	cs, err := Linked(top, "./hook")
	if err != nil {
		t.Fatal(err)
	}
	return cs
}

func committed(t *testing.T, rel string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(top, rel))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Every module linked into the binary (and the standard library) has its
// section in the committed notices with its LICENSE text as it is in the
// module cache; then the whole file and the Debian copyright are exactly
// what the generator writes, so nothing stale or extra is left either.
func TestCommittedNoticesMatchWhatIsLinked(t *testing.T) {
	cs := linked(t)
	notices := committed(t, "install/THIRD-PARTY-NOTICES")
	for _, c := range cs {
		head := rule + c.Name() + "\nLicense: " + c.License + "\n"
		i := strings.Index(notices, head)
		if i < 0 {
			t.Errorf("install/THIRD-PARTY-NOTICES has no section for %s (%s) linked into the hook: run make notices", c.Name(), c.License)
			continue
		}
		section := notices[i+len(head):]
		if j := strings.Index(section, rule); j >= 0 {
			section = section[:j]
		}
		if !strings.Contains(section, strings.TrimRight(c.Text, "\n")+"\n") {
			t.Errorf("install/THIRD-PARTY-NOTICES: the license text of %s differs from %s/LICENSE: run make notices", c.Name(), c.Dir)
		}
		if c.Patents != "" && !strings.Contains(section, strings.TrimRight(c.Patents, "\n")) {
			t.Errorf("install/THIRD-PARTY-NOTICES: %s lacks its PATENTS text", c.Name())
		}
	}
	if want := Notices(cs); notices != want {
		t.Errorf("install/THIRD-PARTY-NOTICES is not what install/notices writes now (run make notices); first difference at byte %d", firstDiff(notices, want))
	}
	want, err := Copyright(cs)
	if err != nil {
		t.Fatal(err)
	}
	if got := committed(t, "install/debian/copyright.in"); got != want {
		t.Errorf("install/debian/copyright.in is not what install/notices writes now (run make notices); first difference at byte %d", firstDiff(got, want))
	}
}

func firstDiff(a, b string) int {
	for i := 0; i < len(a) && i < len(b); i++ {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// The licenses the project decided on for its dependencies are what their
// own LICENSE files say, and every linked module is one of them.
func TestLinkedLicenses(t *testing.T) {
	want := map[string]string{
		"github.com/beevik/etree":    "BSD-2-Clause",
		"github.com/sirupsen/logrus": "MIT",
		"gopkg.in/ini.v1":            "Apache-2.0",
		"golang.org/x/sys":           "BSD-3-Clause",
		"":                           "BSD-3-Clause", // the standard library
	}
	got := map[string]string{}
	for _, c := range linked(t) {
		got[c.Path] = c.License
	}
	for path, lic := range want {
		if got[path] != lic {
			t.Errorf("%q: LICENSE identified as %q, want %q", path, got[path], lic)
		}
	}
	for path, lic := range got {
		if _, ok := want[path]; !ok {
			t.Errorf("new module %s (%s) linked into the hook: check its license, then add it here", path, lic)
		}
	}
}

func TestIdentify(t *testing.T) {
	bsd := "Copyright (c) 2020 X.\n\nRedistribution and use in source and binary forms, with or without\nmodification, are permitted provided that the following conditions are met:\n" +
		"1. Redistributions of source code must retain the above copyright notice, this list of conditions and the following disclaimer.\n" +
		"2. Redistributions in binary form must reproduce the above copyright notice, this list of conditions and the following disclaimer in the documentation.\n"
	for _, tc := range []struct {
		name, text, want string
	}{
		{"BSD-2-Clause", bsd, "BSD-2-Clause"},
		{"BSD-3-Clause", bsd + "3. Neither the name of X nor the names of its contributors may be used to endorse products.\n", "BSD-3-Clause"},
		{"BSD-4-Clause (advertising)", bsd + "3. All advertising materials mentioning features must display an acknowledgement.\n", ""},
		{"MIT", "Permission is hereby granted, free of charge, to any person obtaining a copy\nof this software ... The above copyright notice and this permission notice shall be included in\nall copies or substantial portions of the Software.", "MIT"},
		{"only a title", "Apache License\nVersion 2.0, January 2004\n", ""},
		{"empty", "", ""},
	} {
		got, err := Identify(tc.text)
		if got != tc.want || (err == nil) != (tc.want != "") {
			t.Errorf("%s: Identify = %q, %v; want %q", tc.name, got, err, tc.want)
		}
	}
	for path, want := range map[string]string{
		"/usr/share/common-licenses/Apache-2.0": "Apache-2.0",
		"/usr/share/common-licenses/GPL-3":      "",
		"/usr/share/common-licenses/BSD":        "BSD-3-Clause",
		"/usr/share/common-licenses/MPL-2.0":    "",
	} {
		b, err := os.ReadFile(path)
		if err != nil {
			continue // not a Debian system
		}
		if got, _ := Identify(string(b)); got != want {
			t.Errorf("%s: Identify = %q, want %q", path, got, want)
		}
	}
}

func TestSPDX(t *testing.T) {
	cs := []Component{{License: "MIT"}, {License: "BSD-3-Clause"}, {License: "MIT"}, {License: "Apache-2.0"}}
	if got, want := SPDX(cs), "Apache-2.0 AND BSD-3-Clause AND MIT"; got != want {
		t.Errorf("SPDX = %q, want %q", got, want)
	}
	if got := SPDX(nil); got != OwnLicense {
		t.Errorf("SPDX(nothing linked) = %q, want %q", got, OwnLicense)
	}
}
