// Command notices writes the third-party notices of the hook binary and the
// Debian copyright file from what the go command says is linked into it:
// `go list -deps ./hook` names the modules (and the standard library), go.sum
// their hashes, and each module's own LICENSE file (in the module cache, `go
// env GOMODCACHE`) its license, which is identified from the text, never
// from a table. `make notices` runs it; notices_test.go fails when the
// committed files differ from what it writes.
//
//	go run ./install/notices [-notices FILE] [-copyright FILE] [-spdx]
//
// Run from the top of the source tree.
package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
)

// OwnLicense is the project's own license (LICENSE at the top).
const OwnLicense = "Apache-2.0"

// Component is one piece of software linked into the binary that is not the
// project's own code: a module, or the Go standard library and runtime.
type Component struct {
	Path    string // module path; "" for the standard library
	Version string
	Sum     string // go.sum's h1: hash of the module's content
	Dir     string // where its source is
	License string // SPDX identifier, identified from Text
	Text    string // the LICENSE file as it is
	Patents string // a PATENTS file next to it, if any
}

// Name is how the notices name the component.
func (c Component) Name() string {
	if c.Path == "" {
		return "Go standard library and runtime"
	}
	return c.Path + " " + c.Version
}

// listed is what `go list -json=Standard,Module` prints for one package.
type listed struct {
	ImportPath string
	Standard   bool
	Module     *struct {
		Path, Version, Dir string
		Main               bool
		Replace            *struct{ Path, Version, Dir string }
	}
}

// Linked returns what `go list -deps` of pkg (built as make build does:
// CGO_ENABLED=0, for Linux) links in, the standard library last.
func Linked(root, pkg string) ([]Component, error) {
	cmd := exec.Command(goCmd(), "list", "-deps", "-json=ImportPath,Standard,Module", pkg)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux", "GOFLAGS=-mod=readonly")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("go list -deps %s: %v\n%s", pkg, err, stderr.String())
	}
	sums, err := readSums(filepath.Join(root, "go.sum"))
	if err != nil {
		return nil, err
	}
	mods := map[string]Component{}
	std := false
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p listed
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			return nil, fmt.Errorf("go list output: %v", err)
		}
		switch {
		case p.Standard:
			std = true
		case p.Module == nil:
			return nil, fmt.Errorf("%s: a package outside any module", p.ImportPath)
		case p.Module.Main:
		case p.Module.Replace != nil:
			return nil, fmt.Errorf("%s is replaced in go.mod: its notices would come from %s, which this tool does not handle", p.Module.Path, p.Module.Replace.Path)
		default:
			m := p.Module
			key := m.Path + " " + m.Version
			sum, ok := sums[key]
			if !ok {
				return nil, fmt.Errorf("go.sum has no h1: hash for %s (run go mod tidy)", key)
			}
			mods[m.Path] = Component{Path: m.Path, Version: m.Version, Sum: sum, Dir: m.Dir}
		}
	}
	var cs []Component
	for _, c := range mods {
		cs = append(cs, c)
	}
	sort.Slice(cs, func(i, j int) bool { return cs[i].Path < cs[j].Path })
	if std {
		goroot, err := exec.Command(goCmd(), "env", "GOROOT").Output()
		if err != nil {
			return nil, fmt.Errorf("go env GOROOT: %v", err)
		}
		cs = append(cs, Component{Dir: strings.TrimSpace(string(goroot))})
	}
	for i := range cs {
		if err := cs[i].read(); err != nil {
			return nil, err
		}
	}
	return cs, nil
}

func goCmd() string {
	if p, err := exec.LookPath("go"); err == nil {
		return p
	}
	return "/usr/local/go/bin/go"
}

// readSums maps "path version" to the h1: hash of the module's content.
func readSums(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	sums := map[string]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 3 && !strings.HasSuffix(fs[1], "/go.mod") {
			sums[fs[0]+" "+fs[1]] = fs[2]
		}
	}
	return sums, sc.Err()
}

// read reads the component's LICENSE (and PATENTS) and identifies the license.
func (c *Component) read() error {
	if c.Dir == "" {
		return fmt.Errorf("%s: not in the module cache (run go mod download)", c.Name())
	}
	b, err := os.ReadFile(filepath.Join(c.Dir, "LICENSE"))
	if err != nil {
		return fmt.Errorf("%s: %v", c.Name(), err)
	}
	c.Text = string(b)
	if c.License, err = Identify(c.Text); err != nil {
		return fmt.Errorf("%s/LICENSE: %v", c.Dir, err)
	}
	if b, err := os.ReadFile(filepath.Join(c.Dir, "PATENTS")); err == nil {
		c.Patents = string(b)
	} else if !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("%s: %v", c.Name(), err)
	}
	return nil
}

var space = regexp.MustCompile(`\s+`)

// Identify names the license of a LICENSE file's text by its SPDX
// identifier. It knows the four licenses a Go program commonly links and
// fails on anything else, so that a new license is looked at by a person.
func Identify(text string) (string, error) {
	t := space.ReplaceAllString(text, " ")
	has := func(s string) bool { return strings.Contains(t, s) }
	switch {
	case has("Apache License") && has("Version 2.0, January 2004") &&
		has("TERMS AND CONDITIONS FOR USE, REPRODUCTION, AND DISTRIBUTION"):
		return "Apache-2.0", nil
	case has("Permission is hereby granted, free of charge, to any person obtaining a copy") &&
		has("The above copyright notice and this permission notice shall be included in all copies or substantial portions of the Software."):
		return "MIT", nil
	case has("Redistribution and use in source and binary forms, with or without modification, are permitted") &&
		has("Redistributions of source code must retain the above copyright notice") &&
		has("Redistributions in binary form must reproduce the above copyright notice") &&
		!has("advertising"):
		if has("Neither the name of") {
			return "BSD-3-Clause", nil
		}
		return "BSD-2-Clause", nil
	}
	return "", errors.New("license text not recognised as Apache-2.0, MIT, BSD-2-Clause or BSD-3-Clause")
}

// SPDX is the license expression of the whole binary: the project's own
// license and every linked component's, sorted, each once.
func SPDX(cs []Component) string {
	set := map[string]bool{OwnLicense: true}
	for _, c := range cs {
		set[c.License] = true
	}
	var ids []string
	for id := range set {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	return strings.Join(ids, " AND ")
}

const rule = "------------------------------------------------------------------------\n"

// Notices is the THIRD-PARTY-NOTICES file.
func Notices(cs []Component) string {
	var b strings.Builder
	b.WriteString(`Third-party software in libvirt-nvram-hook

The libvirt-nvram-hook binary is a statically linked Go program. Besides
the project's own code (Apache-2.0, see LICENSE) it contains the software
below, each part under its own license, whose text follows.

Generated by install/notices from go.mod, go.sum and each module's own
LICENSE file; do not edit (make notices).

`)
	fmt.Fprintf(&b, "SPDX-License-Identifier of the binary: %s\n\n", SPDX(cs))
	for _, c := range cs {
		fmt.Fprintf(&b, "  %-40s %s\n", c.Name(), c.License)
	}
	for _, c := range cs {
		b.WriteString("\n" + rule)
		fmt.Fprintf(&b, "%s\nLicense: %s\n", c.Name(), c.License)
		if c.Sum != "" {
			fmt.Fprintf(&b, "go.sum: %s\n", c.Sum)
		}
		b.WriteString("\n" + strings.TrimRight(c.Text, "\n") + "\n")
		if c.Patents != "" {
			b.WriteString("\nPATENTS:\n\n" + strings.TrimRight(c.Patents, "\n") + "\n")
		}
	}
	return b.String()
}

// copyrightLine matches the lines of a license text that name holders.
// ("Copyright 2009 The Go Authors.", "Copyright (c) 2014 Simon Eskildsen"),
// not the license's own "above copyright notice" lines.
var copyrightLine = regexp.MustCompile(`^\s*Copyright\s+(\([cC]\)\s*)?([0-9]{4}.*?)\.?(\s+All rights reserved\.?)?\s*$`)

// holders are the Copyright: values of a component's LICENSE text.
func (c Component) holders() []string {
	var hs []string
	for _, l := range strings.Split(c.Text, "\n") {
		if m := copyrightLine.FindStringSubmatch(l); m != nil && m[2] != "" {
			hs = append(hs, m[2])
		}
	}
	return hs
}

// body is a license's text without its title and copyright lines, the form
// a DEP-5 stand-alone License paragraph carries.
func (c Component) body() string {
	var out []string
	for _, l := range strings.Split(c.Text, "\n") {
		if copyrightLine.MatchString(l) || strings.TrimSpace(l) == "The MIT License (MIT)" {
			continue
		}
		out = append(out, strings.TrimRight(l, " \t"))
	}
	return strings.Trim(strings.Join(out, "\n"), "\n")
}

// dep5Text formats text as a DEP-5 field continuation.
func dep5Text(text string) string {
	var b strings.Builder
	for _, l := range strings.Split(text, "\n") {
		if strings.TrimSpace(l) == "" {
			b.WriteString(" .\n")
		} else {
			b.WriteString(" " + l + "\n")
		}
	}
	return b.String()
}

// Copyright is install/debian/copyright.in (machine-readable format,
// DEP-5); build-deb.sh replaces @YEAR@.
func Copyright(cs []Component) (string, error) {
	var b strings.Builder
	b.WriteString(`Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: libvirt-nvram-hook
Upstream-Contact: https://github.com/libvirt-nvram-hook/libvirt-nvram-hook/issues
Source: https://github.com/libvirt-nvram-hook/libvirt-nvram-hook
Comment: /usr/libexec/libvirt-nvram-hook is a statically linked Go program:
 besides the project's own code it contains the Go modules and the Go
 standard library listed below. The paths of their Files: paragraphs are
 those of their source as the go command keeps it (module cache and
 GOROOT). Generated by install/notices from go.mod, go.sum and each
 module's LICENSE file; the same texts are in THIRD-PARTY-NOTICES.gz.

Files: *
Copyright: @YEAR@ The libvirt-nvram-hook authors
License: Apache-2.0
`)
	texts := map[string]string{}
	for _, c := range cs {
		files, comment := c.Path+"@"+c.Version+"/*", "Go module "+c.Path+" "+c.Version+", go.sum "+c.Sum+"."
		if c.Path == "" {
			files, comment = "GOROOT/src/*", "The Go standard library and runtime, linked into every Go program."
		}
		hs := c.holders()
		if len(hs) == 0 {
			return "", fmt.Errorf("%s: no copyright line in its LICENSE", c.Name())
		}
		fmt.Fprintf(&b, "\nFiles: %s\nCopyright: %s\n", files, strings.Join(hs, "\n "))
		fmt.Fprintf(&b, "License: %s\nComment: %s\n", c.License, comment)
		if c.Patents != "" {
			b.WriteString(" Its PATENTS file (an additional patent grant) is in THIRD-PARTY-NOTICES.gz.\n")
		}
		if c.License == "Apache-2.0" {
			continue // the stand-alone paragraph points to common-licenses
		}
		if prev, ok := texts[c.License]; ok && space.ReplaceAllString(prev, " ") != space.ReplaceAllString(c.body(), " ") {
			return "", fmt.Errorf("%s: its %s text differs from another module's: DEP-5 needs one text per license name", c.Name(), c.License)
		}
		texts[c.License] = c.body()
	}
	b.WriteString(`
License: Apache-2.0
 Licensed under the Apache License, Version 2.0 (the "License"); you may
 not use this file except in compliance with the License. You may obtain
 a copy of the License at
 .
 http://www.apache.org/licenses/LICENSE-2.0
 .
 Unless required by applicable law or agreed to in writing, software
 distributed under the License is distributed on an "AS IS" BASIS,
 WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
 See the License for the specific language governing permissions and
 limitations under the License.
 .
 On Debian systems, the complete text of the Apache License, Version 2.0,
 can be found in "/usr/share/common-licenses/Apache-2.0".
`)
	var ids []string
	for id := range texts {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		fmt.Fprintf(&b, "\nLicense: %s\n%s", id, dep5Text(texts[id]))
	}
	return b.String(), nil
}

func main() {
	notices := flag.String("notices", "", "write the third-party notices to `FILE`")
	copyright := flag.String("copyright", "", "write the Debian copyright template to `FILE`")
	spdx := flag.Bool("spdx", false, "print the SPDX license expression of the binary")
	flag.Parse()
	if flag.NArg() != 0 {
		flag.Usage()
		os.Exit(2)
	}
	cs, err := Linked(".", "./hook")
	if err != nil {
		fmt.Fprintln(os.Stderr, "notices:", err)
		os.Exit(1)
	}
	if *spdx {
		fmt.Println(SPDX(cs))
	}
	write := func(path, text string) {
		if path == "" {
			return
		}
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, "notices:", err)
			os.Exit(1)
		}
	}
	write(*notices, Notices(cs))
	if *copyright != "" {
		text, err := Copyright(cs)
		if err != nil {
			fmt.Fprintln(os.Stderr, "notices:", err)
			os.Exit(1)
		}
		write(*copyright, text)
	}
}
