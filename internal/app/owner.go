package app

import (
	"errors"
	"fmt"
	"os"
	"os/user"
	"strconv"
	"strings"

	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/config"
	"github.com/libvirt-nvram-hook/libvirt-nvram-hook/internal/qemuconf"
)

// Owner is who a new varstore belongs to: the user QEMU runs as, so that
// the guest can write its variables even before libvirt's security driver
// relabels the file.
type Owner struct {
	UID, GID int
	Name     string // for logs: "libvirt-qemu:libvirt-qemu"
}

// fallbackUsers are the qemu users of common distributions, tried in order
// when neither the hook's config nor qemu.conf names one.
var fallbackUsers = []string{"libvirt-qemu", "qemu"}

// resolveOwner follows libvirt's rules: the config's user/group, else
// qemu.conf's, else the distribution's qemu user, else root. Values may
// be names or numeric ids; "+N" is always an id, as in qemu.conf. A user or
// group that is named but cannot be resolved, and a qemu.conf that exists
// but cannot be read, are errors: the owner is never guessed past them.
func resolveOwner(cfg *config.Config) (Owner, error) {
	userSpec, groupSpec := cfg.User, cfg.Group
	if (userSpec == "" || groupSpec == "") && cfg.QemuConf != "" {
		q, err := qemuconf.Load(cfg.QemuConf)
		switch {
		case err == nil:
			userSpec = firstNonEmpty(userSpec, q.User)
			groupSpec = firstNonEmpty(groupSpec, q.Group)
		case !errors.Is(err, os.ErrNotExist):
			// It may name the qemu user: guessing one would give the
			// guest's variables to the wrong user (or to root).
			return Owner{}, fmt.Errorf("cannot tell the qemu user from %s: %w (or set user and group in [nvram] of the hook's config)", cfg.QemuConf, err)
		}
	}
	var u *user.User
	var err error
	if userSpec != "" {
		if u, err = lookupUser(userSpec); err != nil {
			return Owner{}, err
		}
	} else {
		for _, name := range fallbackUsers {
			if u, err = user.Lookup(name); err == nil {
				break
			}
		}
		if u == nil {
			u = &user.User{Uid: "0", Gid: "0", Username: "root"}
		}
	}
	uid, _ := strconv.Atoi(u.Uid)
	gid, _ := strconv.Atoi(u.Gid)
	gname := u.Gid
	switch {
	case groupSpec != "":
		g, err := lookupGroup(groupSpec)
		if err != nil {
			return Owner{}, err
		}
		gid, _ = strconv.Atoi(g.Gid)
		gname = g.Name
	case u.Gid == "":
		return Owner{}, fmt.Errorf("qemu user %s has no passwd entry, so its group is unknown: set group in [nvram] of the hook's config", userSpec)
	default:
		// libvirt's packaged default group is named like the user.
		if g, err := user.LookupGroup(u.Username); err == nil {
			gid, _ = strconv.Atoi(g.Gid)
			gname = g.Name
		} else if g, err := user.LookupGroupId(u.Gid); err == nil {
			gname = g.Name
		}
	}
	return Owner{UID: uid, GID: gid, Name: firstNonEmpty(u.Username, u.Uid) + ":" + gname}, nil
}

func lookupUser(spec string) (*user.User, error) {
	if id, ok := strings.CutPrefix(spec, "+"); ok {
		if _, err := strconv.ParseUint(id, 10, 32); err != nil {
			return nil, fmt.Errorf("qemu user %q is not a number", spec)
		}
		if u, err := user.LookupId(id); err == nil {
			return u, nil
		}
		return &user.User{Uid: id}, nil // an id without a passwd entry
	}
	u, err := user.Lookup(spec)
	var unknown user.UnknownUserError
	if errors.As(err, &unknown) {
		if _, perr := strconv.ParseUint(spec, 10, 32); perr == nil {
			return lookupUser("+" + spec)
		}
		return nil, fmt.Errorf("qemu user %q does not exist", spec)
	}
	return u, err
}

func lookupGroup(spec string) (*user.Group, error) {
	if id, ok := strings.CutPrefix(spec, "+"); ok {
		if _, err := strconv.ParseUint(id, 10, 32); err != nil {
			return nil, fmt.Errorf("qemu group %q is not a number", spec)
		}
		if g, err := user.LookupGroupId(id); err == nil {
			return g, nil
		}
		return &user.Group{Gid: id, Name: id}, nil
	}
	g, err := user.LookupGroup(spec)
	var unknown user.UnknownGroupError
	if errors.As(err, &unknown) {
		if _, perr := strconv.ParseUint(spec, 10, 32); perr == nil {
			return lookupGroup("+" + spec)
		}
		return nil, fmt.Errorf("qemu group %q does not exist", spec)
	}
	return g, err
}

func firstNonEmpty(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
