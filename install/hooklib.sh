# shellcheck shell=sh
# hooklib.sh: shell functions shared by install.sh, the Debian maintainer
# scripts and the RPM scriptlets (build-deb.sh pastes this file into them, the
# RPM spec includes it). It is POSIX sh because dpkg and rpm run their scripts
# with /bin/sh, and it must never contain a percent sign: rpm expands those as
# macros when the spec includes this file (install_test.go checks both).

# Where the package scripts remember, from preinst (RPM: pre) to postinst
# (RPM: post), that the host had no qemu hook before the package was unpacked.
NVH_FIRST_HOOK_FLAG=/run/libvirt-nvram-hook.first-hook

# nvh_resolve ROOT PATH: print PATH with the symlinks at its end followed as
# if ROOT were /, so that a staged tree (DESTDIR) is judged on its own and
# never through absolute links into the live system.
nvh_resolve() {
    nvh_p=$2
    nvh_n=0
    while [ -L "$nvh_p" ] && [ "$nvh_n" -lt 40 ]; do
        nvh_t=$(readlink "$nvh_p") || return 1
        case $nvh_t in
        /*) nvh_p="$1$nvh_t" ;;
        *) nvh_p="$(dirname "$nvh_p")/$nvh_t" ;;
        esac
        nvh_n=$((nvh_n + 1))
    done
    echo "$nvh_p"
}

# nvh_is_hook ROOT PATH: true if libvirtd would run PATH as a hook, which is
# what virFileIsExecutable checks in virHookCheck (src/util/virhook.c):
# symlinks followed, a regular file, any execute bit. A dangling symlink is
# no hook.
nvh_is_hook() {
    nvh_f=$(nvh_resolve "$1" "$2") || return 1
    [ -n "$(find "$nvh_f" -maxdepth 0 -type f -perm /111 -print 2>/dev/null)" ]
}

# nvh_had_qemu_hook ROOT: true if libvirtd, scanning ROOT/etc/libvirt/hooks
# at start or on SIGHUP, would find a qemu hook: an executable
# hooks/qemu, or any executable entry in hooks/qemu.d/ (libvirt >= 6.5).
# Only when it would not must the daemon be told about a new hook.
nvh_had_qemu_hook() {
    nvh_hooks="$1/etc/libvirt/hooks"
    nvh_is_hook "$1" "$nvh_hooks/qemu" && return 0
    [ -d "$nvh_hooks/qemu.d" ] || return 1
    for nvh_e in "$nvh_hooks/qemu.d"/* "$nvh_hooks/qemu.d"/.[!.]* "$nvh_hooks/qemu.d"/..?*; do
        if [ -e "$nvh_e" ] || [ -L "$nvh_e" ]; then
            nvh_is_hook "$1" "$nvh_e" && return 0
        fi
    done
    return 1
}

# nvh_version_ge A B: true if the dotted version A is at least B.
nvh_version_ge() {
    echo "$1 $2" | awk '{
        n = split($1, a, "."); m = split($2, b, ".")
        for (i = 1; i <= 3; i++) {
            x = (i <= n) ? a[i] + 0 : 0; y = (i <= m) ? b[i] + 0 : 0
            if (x > y) exit 0
            if (x < y) exit 1
        }
        exit 0
    }'
}

# nvh_libvirt_version: print the version of the installed libvirt daemon
# (libvirtd, else virqemud) and succeed, or print nothing and fail.
nvh_libvirt_version() {
    for nvh_d in libvirtd virtqemud; do
        nvh_p=$(command -v "$nvh_d" 2>/dev/null) || nvh_p=
        if [ -z "$nvh_p" ]; then
            for nvh_dir in /usr/sbin /usr/local/sbin /sbin; do
                if [ -x "$nvh_dir/$nvh_d" ]; then
                    nvh_p="$nvh_dir/$nvh_d"
                    break
                fi
            done
        fi
        [ -n "$nvh_p" ] || continue
        # "libvirtd (libvirt) 9.0.0"
        nvh_v=$("$nvh_p" --version 2>/dev/null | sed -n 's/^.*[^0-9.]\([0-9][0-9]*\.[0-9][0-9]*\(\.[0-9][0-9]*\)*\).*$/\1/p' | head -n 1)
        if [ -n "$nvh_v" ]; then
            echo "$nvh_v"
            return 0
        fi
    done
    return 1
}

# nvh_reload_libvirt ROOT [policy]: make a running libvirtd and/or virtqemud
# rescan its hooks. Under systemd, reload an active unit (through
# deb-systemd-invoke where it exists); otherwise SIGHUP to the pid in
# ROOT/run/NAME.pid if that process is alive and really is NAME (a stale pid
# file may name an unrelated process by now). With "policy" (package
# scripts), a policy-rc.d that forbids service actions, as in chroots and
# container images, is obeyed. ROOT is for tests only: with it set, neither
# systemd nor policy-rc.d is asked. Prints what it did.
nvh_reload_libvirt() {
    nvh_root="${1:-}"
    nvh_policy="${2:-}"
    nvh_did=
    for nvh_d in libvirtd virtqemud; do
        nvh_how=
        if [ -z "$nvh_root" ] && [ -d /run/systemd/system ] &&
            command -v systemctl >/dev/null 2>&1 &&
            systemctl is-active --quiet "$nvh_d.service" 2>/dev/null; then
            nvh_how="systemctl reload $nvh_d.service"
            if command -v deb-systemd-invoke >/dev/null 2>&1; then
                nvh_how="deb-systemd-invoke reload $nvh_d.service"
            fi
        else
            nvh_pidfile="$nvh_root/run/$nvh_d.pid"
            [ -r "$nvh_pidfile" ] || continue
            nvh_pid=$(head -n 1 "$nvh_pidfile" 2>/dev/null | tr -cd '0-9')
            [ -n "$nvh_pid" ] || continue
            kill -0 "$nvh_pid" 2>/dev/null || continue
            if [ "$(cat "/proc/$nvh_pid/comm" 2>/dev/null)" != "$nvh_d" ]; then
                echo "not signalled: $nvh_pidfile names pid $nvh_pid, which is not $nvh_d (stale pid file)"
                continue
            fi
            nvh_how="kill -HUP $nvh_pid"
        fi
        nvh_did=1
        # policy-rc.d (in /usr/sbin, on root's PATH) exists only where
        # service actions are to be restricted.
        if [ -z "$nvh_root" ] && [ -n "$nvh_policy" ] && command -v policy-rc.d >/dev/null 2>&1; then
            nvh_rc=0
            policy-rc.d "$nvh_d" reload >/dev/null 2>&1 || nvh_rc=$?
            if [ "$nvh_rc" = 101 ]; then
                echo "not reloaded: $nvh_d runs, but policy-rc.d forbids service actions here; reload it yourself ($nvh_how)"
                continue
            fi
        fi
        if $nvh_how; then
            echo "reloaded $nvh_d: $nvh_how"
        else
            echo "warning: '$nvh_how' failed; reload $nvh_d yourself so that it finds the hook" >&2
        fi
    done
    if [ -z "$nvh_did" ]; then
        echo "no running libvirtd or virtqemud: nothing to reload (the daemon finds the hook when it starts)"
    fi
}

# nvh_pkg_pre: for preinst and the RPM pre scriptlet. Remember whether this
# package brings the host's first qemu hook.
nvh_pkg_pre() {
    if nvh_had_qemu_hook ""; then
        rm -f "$NVH_FIRST_HOOK_FLAG"
    else
        : >"$NVH_FIRST_HOOK_FLAG" 2>/dev/null || true
    fi
}

# nvh_pkg_post: for postinst and the RPM post scriptlet. Reload libvirt only
# if preinst found no qemu hook: libvirtd caches "no qemu hook" until it
# restarts or gets SIGHUP, while with a hook present it lists qemu.d/ afresh
# on every call.
nvh_pkg_post() {
    if nvh_v=$(nvh_libvirt_version) && ! nvh_version_ge "$nvh_v" 6.5; then
        echo "libvirt-nvram-hook: warning: libvirt $nvh_v does not run /etc/libvirt/hooks/qemu.d/ (needs 6.5 or later); the hook stays inactive" >&2
    fi
    if [ -e "$NVH_FIRST_HOOK_FLAG" ]; then
        rm -f "$NVH_FIRST_HOOK_FLAG"
        echo "libvirt-nvram-hook: this is the first qemu hook on this host, so libvirt must rescan its hooks:"
        nvh_reload_libvirt "" policy
    else
        echo "libvirt-nvram-hook: libvirt already had a qemu hook; it lists qemu.d/ on every call, no reload needed"
    fi
}
