package firmware

import (
	"fmt"
	"path/filepath"
	"strings"
)

// NoTranslationError says why no local firmware can replace a loader this
// host does not have.
type NoTranslationError struct {
	Loader string
	Reason string
}

func (e *NoTranslationError) Error() string {
	return "translate_loader: loader " + e.Loader + " does not exist here and is left as it is: " + e.Reason
}

// Translate picks the local firmware that replaces loader old, absent on
// this host, for the domain q describes: one that promises the guest
// exactly what old promised. Old's facts come from a descriptor naming
// it, else from the built-in table (any distribution's entry for that
// path); the candidate's from its own descriptor or table entry, with
// both its files present. They must agree on architecture, Secure Boot,
// SMM, which keys the template holds, the code flash size and the format,
// the candidate must fit the domain, and, when the guest has a varstore
// (varsSize >= 0), its template must be of that size: QEMU carries the
// variables across only into a flash of the same size. A candidate is
// also what Lookup then picks for its path, so the template that follows
// has the same keys. The same file name is preferred, then lookup order.
// Without old's complete facts, or without a candidate, the error says why.
func (c *Catalog) Translate(old string, q Query, varsSize int64) (Pair, error) {
	want, from, ok := c.factsOf(old, q)
	if !ok {
		return Pair{}, &NoTranslationError{Loader: old, Reason: "no descriptor or built-in table entry tells what it promises the guest (" + firstNonEmpty(from, "unknown firmware") + ")"}
	}
	var best *Pair
	var near []string
	for i := range c.Pairs {
		p := &c.Pairs[i]
		if p.Code == old || (p.Source != FromDescriptor && p.Source != FromTable) || !identity(p.Code).regular || !identity(p.Vars).regular {
			continue
		}
		if diff := differs(want, p.Facts); diff != "" {
			if p.Facts.Arch == want.Arch {
				near = append(near, filepath.Base(p.Code)+" ("+diff+")")
			}
			continue
		}
		cq := q
		cq.Loader, cq.Template = p.Code, ""
		l := c.Lookup(cq)
		if l.Winner < 0 || l.Candidates[l.Winner].Vars != p.Vars {
			continue
		}
		if varsSize >= 0 && p.Facts.VarsSize != varsSize {
			near = append(near, fmt.Sprintf("%s (%d-byte varstore, the guest's is %d)", filepath.Base(p.Code), p.Facts.VarsSize, varsSize))
			continue
		}
		if filepath.Base(p.Code) == filepath.Base(old) {
			return *p, nil
		}
		if best == nil {
			best = p
		}
	}
	if best != nil {
		return *best, nil
	}
	reason := "no local firmware promises the same (" + want.Describe() + ", from " + from + ")"
	if len(near) > 0 {
		reason += "; differing: " + strings.Join(dedupe(near), ", ")
	}
	return Pair{}, &NoTranslationError{Loader: old, Reason: reason}
}

// factsOf returns what loader path old promises: a fitting descriptor
// naming it, else the table's entry for it, and where that came from.
func (c *Catalog) factsOf(old string, q Query) (Facts, string, bool) {
	for _, p := range c.Pairs {
		if p.Code == old && p.Source == FromDescriptor && p.Descriptor.Mismatch(q) == "" {
			return p.Facts, filepath.Base(p.Origin), p.Facts.Complete()
		}
	}
	for _, e := range c.sources.Table {
		if c.sources.TableRoot+e.Code == old {
			return e.Facts, "built-in table, " + e.Distro + " " + e.Arch, e.Complete()
		}
	}
	return Facts{}, "", false
}

// differs names the first fact in which got breaks what want promises.
func differs(want, got Facts) string {
	switch {
	case !got.Complete():
		return "facts unknown"
	case got.Arch != want.Arch:
		return "built for " + got.Arch
	case got.SecureBoot != want.SecureBoot:
		return "Secure Boot " + got.SecureBoot.String()
	case got.SMM != want.SMM:
		return "SMM required " + got.SMM.String()
	case got.Keys != want.Keys:
		return "keys " + string(got.Keys)
	case got.CodeSize != want.CodeSize:
		return "code " + sizeText(got.CodeSize)
	case got.Format != want.Format:
		return "format " + got.Format
	}
	return ""
}

func dedupe(s []string) []string {
	var out []string
	seen := map[string]bool{}
	for _, v := range s {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
