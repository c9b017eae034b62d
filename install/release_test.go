package install

import (
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"testing"
)

// release is one "## vX.Y.Z (...)" entry of the CHANGELOG.
type release struct {
	v          [3]int
	unreleased bool
	line       int
}

func (r release) String() string {
	return "v" + strconv.Itoa(r.v[0]) + "." + strconv.Itoa(r.v[1]) + "." + strconv.Itoa(r.v[2])
}

func less(a, b [3]int) bool {
	for i := range a {
		if a[i] != b[i] {
			return a[i] < b[i]
		}
	}
	return false
}

var releaseHeading = regexp.MustCompile(`^## v(\d+)\.(\d+)\.(\d+) \((unreleased|\d{4}-\d{2}-\d{2})\)$`)

func changelog(t *testing.T) []release {
	t.Helper()
	var rs []release
	for i, l := range strings.Split(string(readFile(t, here(t, "../CHANGELOG"))), "\n") {
		if !strings.HasPrefix(l, "## ") {
			continue
		}
		m := releaseHeading.FindStringSubmatch(l)
		if m == nil {
			t.Errorf("CHANGELOG:%d: %q is not \"## vMAJOR.MINOR.PATCH (unreleased|YYYY-MM-DD)\"", i+1, l)
			continue
		}
		r := release{unreleased: m[4] == "unreleased", line: i + 1}
		for j := range r.v {
			r.v[j], _ = strconv.Atoi(m[j+1])
		}
		rs = append(rs, r)
	}
	if len(rs) == 0 {
		t.Fatal("CHANGELOG has no release entry")
	}
	return rs
}

// The CHANGELOG's entries follow the documented scheme, newest first, only
// the top one unreleased; untagged builds are versioned as preceding it.
func TestChangelogVersions(t *testing.T) {
	needLinux(t)
	needTool(t, "bash")
	rs := changelog(t)
	for i, r := range rs {
		if i > 0 && !less(r.v, rs[i-1].v) {
			t.Errorf("CHANGELOG:%d: %s is not older than %s above it", r.line, r, rs[i-1])
		}
		if i > 0 && r.unreleased {
			t.Errorf("CHANGELOG:%d: %s is unreleased but not the top entry", r.line, r)
		}
	}
	if top := rs[0]; top.unreleased {
		// An untagged build must sort before the release being prepared.
		got := strings.TrimSpace(run(t, nil, "bash", here(t, "version.sh"), "a1b2c3d").stdout)
		if want := strings.TrimPrefix(top.String(), "v") + "~gita1b2c3d"; got != want {
			t.Errorf("version.sh of an untagged build = %q, want %q (BASE_VERSION must be the CHANGELOG's unreleased %s)", got, want, top)
		}
	}
}

// Every release tag follows the scheme and has its dated CHANGELOG entry.
func TestTagsHaveChangelogEntries(t *testing.T) {
	git, err := exec.LookPath("git")
	if err != nil {
		t.Skip("no git")
	}
	out, err := exec.Command(git, "-C", "..", "tag", "--list", "v*").Output()
	if err != nil {
		t.Skipf("not a git checkout: %v", err)
	}
	entries := map[string]bool{}
	for _, r := range changelog(t) {
		entries[r.String()] = !r.unreleased
	}
	tag := regexp.MustCompile(`^v\d+\.\d+\.\d+$`)
	for _, tg := range strings.Fields(string(out)) {
		if !tag.MatchString(tg) {
			t.Errorf("tag %s does not follow vMAJOR.MINOR.PATCH", tg)
		} else if !entries[tg] {
			t.Errorf("tag %s has no dated entry in CHANGELOG", tg)
		}
	}
}
