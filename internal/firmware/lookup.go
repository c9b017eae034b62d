package firmware

import (
	"os"
	"path/filepath"
	"syscall"
)

// Candidate is a catalog entry that names the loader, with what the
// lookup made of it.
type Candidate struct {
	Pair
	// Resolved: the entry names the loader only after resolving
	// symlinks (or through a hard link), not by its literal path.
	Resolved bool
	// Why the entry does not fit the domain; "" when it does.
	Why string
	// Status says whether the entry is used and, if not, why: "used",
	// "does not fit: ...", "alternative: ..." (a domain that an
	// earlier entry does not fit gets it), "shadowed by ...", or
	// "not used: the domain's template= wins".
	Status string
}

// Lookup is the one answer for a domain's loader: prepare, the filters,
// explain, check and audit all read it.
type Lookup struct {
	Query Query
	// Candidates lists every entry naming the loader in lookup order:
	// first the entries naming its literal path, in source order, then
	// those naming the same file through a symlink, in source order. So
	// a literal match in any source beats a resolved one in any source:
	// Debian's OVMF_CODE_4M.snakeoil.fd is a symlink to
	// OVMF_CODE_4M.secboot.fd, and must not get the Microsoft-keys
	// template of the descriptor naming OVMF_CODE_4M.ms.fd, another
	// symlink to the same file.
	Candidates []Candidate
	// Winner indexes the entry used, -1 when none fits or the domain's
	// own template= decides.
	Winner    int
	Consulted []string
	// UEFIVars: a lookup of a uefi-vars JSON template (LookupVarstore).
	UEFIVars bool
}

// Lookup finds every entry for q's loader and picks the first that fits
// the domain. Descriptors must fit as libvirt requires (architecture,
// machine type, secure boot, enrolled keys, SMM, formats), built-in table
// entries by the same rules applied to their facts; the user's own
// entries (config, qemu.conf) fit every domain.
func (c *Catalog) Lookup(q Query) Lookup { return lookup(c.Pairs, c.Consulted, q) }

// LookupVarstore is Lookup for a rom loader with a uefi-vars <varstore>
// (libvirt 12.1+): the entries are the JSON templates of VarsPairs, from
// the config's varstore = ROM:TEMPLATE pairs and descriptors with the
// host-uefi-vars feature, matched by the same rules.
func (c *Catalog) LookupVarstore(q Query) Lookup {
	l := lookup(c.VarsPairs, c.VarsConsulted, q)
	l.UEFIVars = true
	return l
}

// FindVarstore returns the JSON template for a rom loader's <varstore>.
func (c *Catalog) FindVarstore(q Query) (Hit, error) { return c.LookupVarstore(q).Hit() }

func lookup(pairs []Pair, consulted []string, q Query) Lookup {
	l := Lookup{Query: q, Winner: -1, Consulted: append([]string{string(FromDomain)}, consulted...)}
	loaderID := identity(q.Loader)
	for _, literal := range []bool{true, false} {
		for _, p := range pairs {
			if literal != (p.Code == q.Loader) {
				continue
			}
			if !literal && (loaderID == (fileID{}) || identity(p.Code) != loaderID) {
				continue
			}
			cand := Candidate{Pair: p, Resolved: !literal}
			switch {
			case p.Descriptor != nil:
				cand.Why = p.Descriptor.Mismatch(q)
			case p.Source == FromTable:
				cand.Why = p.Facts.Mismatch(q)
			}
			l.Candidates = append(l.Candidates, cand)
		}
	}
	shadow := ""
	for i := range l.Candidates {
		cand := &l.Candidates[i]
		switch {
		case cand.Why != "":
			cand.Status = "does not fit: " + cand.Why
		case q.Template != "":
			cand.Status = "not used: the domain's template= wins"
		case l.Winner < 0:
			l.Winner = i
			cand.Status = "used"
		case shadow != "":
			cand.Status = "shadowed by " + shadow
		default:
			cand.Status = "alternative: for a domain that the entries before it do not fit"
		}
		if cand.Why == "" && cand.Source != FromDescriptor && cand.Source != FromTable && shadow == "" {
			shadow = string(cand.Source) + " " + cand.Origin
		}
	}
	return l
}

// Hit returns the template the lookup found: the domain's own template=
// wins over everything, then the winner.
func (l Lookup) Hit() (Hit, error) {
	if l.Query.Template != "" {
		return Hit{Template: l.Query.Template, Source: FromDomain, Origin: "template="}, nil
	}
	if l.Winner >= 0 {
		w := l.Candidates[l.Winner]
		return Hit{Template: w.Vars, Source: w.Source, Origin: w.Origin, Resolved: w.Resolved}, nil
	}
	var rejected []string
	for _, cand := range l.Candidates {
		if cand.Why != "" {
			rejected = append(rejected, filepath.Base(cand.Origin)+": "+cand.Why)
		}
	}
	return Hit{}, &NotFoundError{Loader: l.Query.Loader, Consulted: l.Consulted, Rejected: rejected, UEFIVars: l.UEFIVars}
}

// Status says what a lookup of p's own code path, for a domain that asks
// nothing more, makes of p: "used", "shadowed by ...", "alternative: ...",
// as Lookup's candidates say. check prints it for every entry.
func (c *Catalog) Status(p Pair) string { return status(c.Lookup(Query{Loader: p.Code}), p) }

// VarsStatus is Status for an entry of VarsPairs.
func (c *Catalog) VarsStatus(p Pair) string {
	return status(c.LookupVarstore(Query{Loader: p.Code}), p)
}

func status(l Lookup, p Pair) string {
	for _, cand := range l.Candidates {
		if !cand.Resolved && cand.Source == p.Source && cand.Origin == p.Origin && cand.Vars == p.Vars {
			return cand.Status
		}
	}
	return "not found"
}

// Find returns the template for the query's loader (Lookup's Hit).
func (c *Catalog) Find(q Query) (Hit, error) { return c.Lookup(q).Hit() }

// Layout returns the entry that tells the loader's flash layout: the
// first descriptor fitting the domain, else the first built-in table
// entry, in Lookup's order. Config and qemu.conf entries are what is
// being checked, so they do not count.
func (c *Catalog) Layout(q Query) (Pair, bool) {
	q.Template = ""
	cands := c.Lookup(q).Candidates
	for _, src := range []Source{FromDescriptor, FromTable} {
		for _, cand := range cands {
			if cand.Source == src && cand.Why == "" {
				return cand.Pair, true
			}
		}
	}
	return Pair{}, false
}

// fileID identifies a file whatever path (symlink, hard link) reaches it.
// The zero value means "no such file".
type fileID struct {
	dev, ino uint64
	regular  bool
}

// identity returns the file p names, following symlinks.
func identity(p string) fileID {
	var id fileID
	if fi, err := os.Stat(p); err == nil {
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			id = fileID{dev: uint64(st.Dev), ino: st.Ino, regular: fi.Mode().IsRegular()}
		}
	}
	return id
}
