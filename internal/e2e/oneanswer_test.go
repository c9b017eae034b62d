//go:build e2e

package e2e

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"
)

// 29 (issue #12 item 5, "one answer"). Debian 13's and sid's
// OVMF_CODE_4M.snakeoil.fd is a symlink to OVMF_CODE_4M.secboot.fd, and so
// is OVMF_CODE_4M.ms.fd, which a firmware descriptor pairs with the
// Microsoft-keys template. No descriptor names the snakeoil path; the
// built-in table pairs it with OVMF_VARS_4M.snakeoil.fd (test keys). A
// guest that asked for test keys must get them: the varstore is
// OVMF_VARS_4M.snakeoil.fd byte for byte, and explain, check and check
// --audit name the template that was used. What libvirt itself writes at
// define is recorded and asserted per version: 11.3 keeps the path; 12.8
// canonicalises it (libvirt's choice, not the hook's).

const (
	snakeoilCode = "/usr/share/OVMF/OVMF_CODE_4M.snakeoil.fd"
	snakeoilVars = "/usr/share/OVMF/OVMF_VARS_4M.snakeoil.fd"
	msCode       = "/usr/share/OVMF/OVMF_CODE_4M.ms.fd"
	msVars       = "/usr/share/OVMF/OVMF_VARS_4M.ms.fd"
)

func testOneAnswerSnakeoil(t *testing.T, h *host) {
	snakeoilPremise(t, h)

	name := h.guest("s29-snakeoil")
	defineGuest(t, h, guest{name: name, loader: snakeoilCode, secure: true})
	loader, lvs, tmpl := definedFirmware(t, h, name)
	finding := fmt.Sprintf("29 on libvirt %s: define of <loader secure='yes'>%s</loader>, no <nvram>: libvirt stores <loader>%s</loader> <nvram template=%q>%s</nvram>",
		h.gen, snakeoilCode, loader, tmpl, lvs)
	t.Log(finding)
	recordTiming(finding, 0)
	// What each libvirt does with the symlink at define.
	want := map[string][2]string{
		"9.0":  {snakeoilCode, ""}, // keeps the path, writes no template at define
		"11.3": {snakeoilCode, ""}, // keeps the path, knows no template for it
		"12.8": {msCode, msVars},   // canonicalises to the descriptor's executable, Microsoft keys
	}[h.gen]
	if loader != want[0] || tmpl != want[1] {
		t.Errorf("libvirt %s stored loader %s with template %q, expected loader %s with template %q", h.gen, loader, tmpl, want[0], want[1])
	}
	if lvs != h.varstorePath(name) {
		t.Fatalf("libvirt %s filled <nvram>%s</nvram>, expected %s", h.gen, lvs, h.varstorePath(name))
	}

	if loader == snakeoilCode {
		// The definition as libvirt stored it: the hook chooses.
		oneAnswerStart(t, h, name, loader, lvs, tmpl, snakeoilVars)
		return
	}

	// libvirt moved the guest to another loader and template: that is
	// its definition now; the hook follows the domain's template.
	t.Run("libvirt_canonical_definition", func(t *testing.T) {
		oneAnswerStart(t, h, name, loader, lvs, tmpl, tmpl)
	})

	// The hook's own lookup on this root, fed the definition as 11.3
	// stores it (the snakeoil path, no template; what a guest defined on
	// 11.3 carries), which 12.8 never stores itself: explain and prepare
	// begin, run as libvirt runs the hook, give the snakeoil template.
	t.Run("hook_on_the_11.3_form", func(t *testing.T) {
		form := h.guest("s29-form113")
		flvs := h.varstorePath(form)
		removeGuest(t, form)
		t.Cleanup(func() { removeGuest(t, form) })
		x := virsh(t, h, "dumpxml", "--inactive", name)
		x = strings.Replace(x, "<name>"+name+"</name>", "<name>"+form+"</name>", 1)
		x = regexp.MustCompile(`\s*<uuid>[^<]*</uuid>`).ReplaceAllString(x, "")
		x = strings.Replace(x, ">"+msCode+"</loader>", ">"+snakeoilCode+"</loader>", 1)
		x = strings.Replace(x, nvramElem(x), "<nvram format='raw'>"+flvs+"</nvram>", 1)
		if l := loaderElemRe.FindString(x); !strings.Contains(l, snakeoilCode) || strings.Contains(x, "template=") {
			t.Fatalf("could not make the 11.3 form of the definition:\n%s", x)
		}
		stdout, stderr, code := hookCLIIn(t, h, x, "explain")
		t.Logf("explain of the 11.3 form on libvirt %s's root: exit %d\n%s%s", h.gen, code, stdout, stderr)
		m := explainCreateRe.FindStringSubmatch(stdout)
		if code != 0 || m == nil || m[1] != flvs || m[2] != snakeoilVars {
			t.Fatalf("explain: exit %d, want 0 and \"prepare: create %s from %s ...\"", code, flvs, snakeoilVars)
		}
		if star := explainStar(stdout); !strings.HasPrefix(star, snakeoilCode+" -> "+snakeoilVars+" ") || strings.Contains(star, "resolving symlinks") {
			t.Errorf("explain's entry marked used is %q, want the literal %s -> %s", star, snakeoilCode, snakeoilVars)
		}
		checkOut, _, _ := hookCLI(t, h, "check")
		if used, entries := checkUsed(checkOut, snakeoilCode); used != snakeoilVars {
			t.Errorf("check marks %q as used for %s, want %s:\n%s", used, snakeoilCode, snakeoilVars, strings.Join(entries, "\n"))
		}
		mark := h.logMark()
		stdout, stderr, code = hookCLIIn(t, h, x, form, "prepare", "begin", "-")
		if code != 0 || stdout != "" {
			t.Fatalf("hook %s prepare begin -: exit %d, stdout %q, stderr %q", form, code, stdout, stderr)
		}
		requireSameFile(t, h.local(flvs), h.local(snakeoilVars), "the varstore the hook created from the 11.3 form")
		requireModeOwner(t, h.local(flvs), 0o600, h.qemuUID)
		line := requireLogMentions(t, h, mark, flvs, "action=created", "template="+snakeoilVars+" ", `template_source="built-in table"`)
		t.Logf("hook log: %s", line)
		recordTiming(fmt.Sprintf("29 on libvirt %s: the hook fed the 11.3 form (snakeoil path, no template): prepare begin made %s from %s (built-in table), as explain and check said", h.gen, flvs, snakeoilVars), 0)
	})

	// A definition that keeps the snakeoil path, if libvirt keeps one: an
	// explicit varstore path first, then an explicit template.
	t.Run("snakeoil_path_kept", func(t *testing.T) {
		for _, v := range []struct{ what, nvram string }{
			{"explicit <nvram> path", "<nvram>%s</nvram>"},
			{"explicit <nvram template=snakeoil>", "<nvram template='" + snakeoilVars + "'>%s</nvram>"},
		} {
			name := h.guest("s29-kept")
			removeGuest(t, name)
			lvs := h.varstorePath(name)
			defineGuest(t, h, guest{name: name, loader: snakeoilCode, secure: true, nvramXML: fmt.Sprintf(v.nvram, lvs)})
			loader, lvs2, tmpl := definedFirmware(t, h, name)
			finding := fmt.Sprintf("29 on libvirt %s: define with %s: libvirt stores <loader>%s</loader> <nvram template=%q>%s</nvram>", h.gen, v.what, loader, tmpl, lvs2)
			t.Log(finding)
			recordTiming(finding, 0)
			if loader == snakeoilCode {
				oneAnswerStart(t, h, name, loader, lvs2, tmpl, snakeoilVars)
				return
			}
		}
		t.Errorf("libvirt %s keeps no definition naming %s", h.gen, snakeoilCode)
	})
}

// snakeoilPremise checks that the root's firmware is what makes the
// scenario mean something: both names symlinks to one file, different
// templates, no descriptor naming the snakeoil path, one pairing the .ms
// path with the Microsoft-keys template.
func snakeoilPremise(t *testing.T, h *host) {
	t.Helper()
	target := func(p string) string {
		l, err := os.Readlink(h.local(p))
		if err != nil {
			t.Fatalf("%s is not a symlink in this root: %v", p, err)
		}
		return filepath.Join(filepath.Dir(p), l)
	}
	so, ms := target(snakeoilCode), target(msCode)
	t.Logf("in the root: %s -> %s, %s -> %s", snakeoilCode, so, msCode, ms)
	if so != ms {
		t.Fatalf("%s and %s point at different files (%s, %s): nothing to confuse", snakeoilCode, msCode, so, ms)
	}
	if bytes.Equal(readBytes(t, h.local(snakeoilVars)), readBytes(t, h.local(msVars))) {
		t.Fatalf("%s and %s are the same bytes: the varstore could not tell which was used", snakeoilVars, msVars)
	}
	if got := descriptorTemplate(t, h, msCode); got != msVars {
		t.Fatalf("the descriptor for %s names %s, expected %s", msCode, got, msVars)
	}
	if got := descriptorTemplateIn(h, snakeoilCode); got != "" {
		t.Fatalf("a descriptor names %s literally (template %s): the scenario needs it named by none", snakeoilCode, got)
	}
}

// definedFirmware is the loader, varstore path and template of name's
// inactive definition.
func definedFirmware(t *testing.T, h *host, name string) (loader, lvs, tmpl string) {
	t.Helper()
	x := virsh(t, h, "dumpxml", "--inactive", name)
	d := parseDom(t, x)
	t.Logf("libvirt %s's definition: %s %s", h.gen, loaderElemRe.FindString(x), nvramElem(x))
	lvs, tmpl = nvramOf(t, h, name, "--inactive")
	return strings.TrimSpace(d.Loader.Path), lvs, tmpl
}

var loaderElemRe = regexp.MustCompile(`<loader\b[^>]*>[^<]*</loader>`)

// oneAnswerStart: before the start, explain, check and check --audit name
// one template for the guest; `virsh start --paused` makes a varstore that
// is that template byte for byte (want); whoever made it (the hook's log
// says when it did) used the same one; afterwards explain and audit say
// the file exists, with that template.
func oneAnswerStart(t *testing.T, h *host, name, loader, lvs, defTmpl, want string) {
	t.Helper()
	vs := h.local(lvs)
	requireNoFile(t, vs)

	if defTmpl == "" {
		// libvirt alone: the start fails, so whatever template the guest
		// gets is the hook's choice.
		hookOff(t, h)
		out := virshFails(t, h, "start", "--paused", name)
		named := map[bool]string{true: lvs, false: loader}[h.gen == "12.8"]
		if !strings.Contains(out, "unable to find any master var store for loader: "+named) {
			t.Fatalf("without the hook, start failed but not with libvirt %s's missing-template error naming %s:\n%s", h.gen, named, out)
		}
		t.Logf("without the hook: %s", strings.TrimSpace(out))
		requireState(t, h, name, "shut off")
		requireNoFile(t, vs)
		hookOn(t, h)
	}

	domXML := virsh(t, h, "dumpxml", "--inactive", name)
	stdout, stderr, code := hookCLIIn(t, h, domXML, "explain")
	t.Logf("explain (no varstore yet): exit %d\n%s%s", code, stdout, stderr)
	m := explainCreateRe.FindStringSubmatch(stdout)
	if code != 0 || m == nil || m[1] != lvs {
		t.Fatalf("explain: exit %d, want 0 and \"prepare: create %s from ...\"", code, lvs)
	}
	explainTmpl, explainSrc := m[2], m[3]
	star := explainStar(stdout)
	t.Logf("explain: prepare creates from %s (%s); the entry marked used for %s: %s", explainTmpl, explainSrc, loader, star)

	checkOut, checkErr, checkCode := hookCLI(t, h, "check")
	checkTmpl, entries := checkUsed(checkOut, loader)
	t.Logf("check (exit %d): entries for %s:\n%s%s", checkCode, loader, strings.Join(entries, "\n"), checkErr)
	if checkTmpl == "" {
		t.Errorf("check marks no entry for %s as used:\n%s", loader, checkOut)
	}

	auditOut, _, _ := hookCLI(t, h, "check", "--audit", "/etc/libvirt/qemu")
	audit, ok := auditLines(auditOut)[name]
	if !ok {
		t.Fatalf("check --audit does not list %s:\n%s", name, auditOut)
	}
	t.Logf("check --audit (no varstore yet): %-8s %s: %s", audit.status, name, audit.text)

	mark := h.logMark()
	t0 := time.Now()
	virsh(t, h, "start", "--paused", name)
	took := time.Since(t0)
	requireState(t, h, name, "paused")
	log := strings.TrimSpace(h.logSince(mark))
	t.Logf("hook log of the start:\n%s", log)
	used, by := hookCreated(log, lvs)
	if used == "" {
		by = "libvirt " + h.gen + " (the hook's log says it created nothing)"
		used = defTmpl
		if used == "" {
			t.Fatalf("the varstore exists after the start, the hook logged no creation and the definition names no template:\n%s", log)
		}
	}
	requireSameFile(t, vs, h.local(want), "varstore made at start")
	requireModeOwner(t, vs, 0o600, h.qemuUID)
	msg := fmt.Sprintf("29 on libvirt %s: %s: varstore %s made by %s from %s (byte for byte; virsh start --paused took %s); explain %s (%s), check *%s, audit %s",
		h.gen, filepath.Base(loader), lvs, by, used, took.Round(time.Millisecond), explainTmpl, explainSrc, checkTmpl, audit.status)
	t.Log(msg)
	recordTiming(msg, 0)

	if used != want {
		t.Errorf("the varstore was made from %s, want %s", used, want)
	}
	if explainTmpl != used {
		t.Errorf("explain said prepare creates it from %s; %s was used", explainTmpl, used)
	}
	if defTmpl == "" {
		// The hook chose: check's entry for the loader and explain's
		// marked entry are that choice, the literal one.
		if checkTmpl != used {
			t.Errorf("check marks %s as used for %s; %s was used", checkTmpl, loader, used)
		}
		if !strings.HasPrefix(star, loader+" -> "+used+" ") || strings.Contains(star, "resolving symlinks") {
			t.Errorf("explain's entry marked used is %q, want the literal %s -> %s", star, loader, used)
		}
	} else if !strings.Contains(explainSrc, "domain XML") {
		t.Errorf("the definition names template %s, yet explain gives the source %q", defTmpl, explainSrc)
	}
	if !strings.Contains(audit.text, "creates it from "+used+" ") {
		t.Errorf("check --audit's line does not say the start creates it from %s: %s", used, audit.text)
	}
	if audit.status != "ok" && !strings.Contains(audit.text, "--reset-nvram") {
		t.Errorf("check --audit says %s for %s, and not for --reset-nvram: %s", audit.status, name, audit.text)
	}
	for _, out := range []string{stdout, audit.text} {
		if want != msVars && strings.Contains(out, "from "+msVars) {
			t.Errorf("the Microsoft-keys template is named for the guest that asked for test keys:\n%s", out)
		}
	}

	// With the file there: nothing to do, and the same template named.
	stdout, stderr, code = hookCLIIn(t, h, domXML, "explain")
	t.Logf("explain (varstore exists): exit %d\n%s%s", code, stdout, stderr)
	if code != 0 || !strings.Contains(stdout, "prepare: nothing: "+lvs+" exists and is used as it is") {
		t.Errorf("explain with the varstore there: exit %d, want 0 and \"prepare: nothing: %s exists ...\"", code, lvs)
	}
	if s := explainStar(stdout); s != star {
		t.Errorf("explain's entry used for %s changed once the file exists: %q, before %q", loader, s, star)
	}
	requireAudit(t, h, name, audit.status, lvs, "exists", "template "+used+" ")

	virsh(t, h, "resume", name)
	requireState(t, h, name, "running")
	virsh(t, h, "destroy", name)
	requireState(t, h, name, "shut off")
}

var (
	explainCreateRe = regexp.MustCompile(`(?m)^prepare: create (\S+) from (\S+) \(([^)]*)\)`)
	explainEntryRe  = regexp.MustCompile(`(?m)^\* (\S+ -> .*)$`)
	checkEntryRe    = regexp.MustCompile(`(?m)^([* ]) (\S+)\n\s+-> (\S+)  (.*)$`)
	logTemplateRe   = regexp.MustCompile(`\btemplate="?([^" ]+)"?`)
	logSourceRe     = regexp.MustCompile(`\btemplate_source=(?:"([^"]*)"|(\S+))`)
)

// explainStar is the entry explain marks as used (after "* ").
func explainStar(out string) string {
	if m := explainEntryRe.FindStringSubmatch(out); m != nil {
		return m[1]
	}
	return ""
}

// checkUsed finds check's entries for loader (every entry as printed) and
// the template of the one marked used.
func checkUsed(out, loader string) (used string, entries []string) {
	for _, m := range checkEntryRe.FindAllStringSubmatch(out, -1) {
		if m[2] != loader {
			continue
		}
		entries = append(entries, fmt.Sprintf("%s %s -> %s  %s", m[1], m[2], m[3], m[4]))
		if m[1] == "*" && used == "" {
			used = m[3]
		}
	}
	return used, entries
}

// hookCreated reads the hook's "created" line for lvs: the template and
// who chose it.
func hookCreated(log, lvs string) (tmpl, by string) {
	for _, line := range strings.Split(log, "\n") {
		if !strings.Contains(line, lvs) || !strings.Contains(line, "action=created") {
			continue
		}
		m := logTemplateRe.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		src := "?"
		if s := logSourceRe.FindStringSubmatch(line); s != nil {
			src = s[1] + s[2]
		}
		return m[1], "the hook (template_source=" + src + ")"
	}
	return "", ""
}
