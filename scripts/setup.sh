#!/bin/sh
# setup.sh: what the make targets need on a Debian host, installed so that
# the host stays as it was apart from the files of the new packages.
#
#   setup.sh apt PKG...  install the missing Debian packages (as root; as
#                        another user, say which are missing) without
#                        starting any service they ship or enabling it at boot
#   setup.sh go          print the path of a Go toolchain at least as new as
#                        go.mod's go line, fetching one where none is
#
# Services: apt-get runs with a policy-rc.d that forbids every start (one is
# created only where the host has none, and removed afterwards), without
# recommended packages; then every service, socket, timer or path unit that
# the newly installed packages ship is stopped and disabled, and the script
# fails if one is still enabled or running. The tests start their own
# servers inside network namespaces.
#
# Go: Debian 12 ships Go 1.19, which cannot switch toolchains (GOTOOLCHAIN
# came with 1.21), but it can fetch the module golang.org/toolchain, which
# holds a whole Go release: its bin/go in the module cache is the toolchain.
set -eu

APT_LOCK_TIMEOUT=${APT_LOCK_TIMEOUT:-600} # seconds to wait for another apt or dpkg (first boot)
GO_TOOLCHAIN=${GO_TOOLCHAIN:-go1.26.8}    # the release fetched where Go is missing or too old
POLICY=/usr/sbin/policy-rc.d
POLICY_TEXT='#!/bin/sh
# created by reach scripts/setup.sh for the duration of one apt-get run:
# packages start no service (exit 101: action forbidden)
exit 101'

say() { echo "setup: $*" >&2; }
die() {
	say "$*"
	exit 1
}

apt_get() {
	DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout="$APT_LOCK_TIMEOUT" -qq -y "$@" >&2
}

# apt_update is apt-get update, waiting for the lock of the package lists
# too: DPkg::Lock::Timeout covers only dpkg's lock (apt 2.6), while a first
# boot's apt-daily holds the lists' lock.
apt_update() {
	end=$(($(date +%s) + APT_LOCK_TIMEOUT))
	while :; do
		rc=0
		out=$(apt_get update 2>&1) || rc=$?
		case $rc:$out in
		0:*) return 0 ;;
		*"Could not get lock"*) [ "$(date +%s)" -lt "$end" ] || die "apt lock still held after $APT_LOCK_TIMEOUT s: $out" ;;
		*)
			printf '%s\n' "$out" >&2
			return "$rc"
			;;
		esac
		say "waiting for the apt lock (another apt is running)"
		sleep 5
	done
}

# installed prints the names of the installed packages, sorted.
installed() {
	dpkg-query -W -f '${db:Status-Abbrev} ${Package}\n' | awk '$1 == "ii" { print $2 }' | sort -u
}

is_installed() {
	[ "$(dpkg-query -W -f '${db:Status-Abbrev}' "$1" 2>/dev/null)" = "ii " ]
}

# units prints the units that the packages named on stdin ship, templates
# (name@.service) left out: those start only as instances of another unit.
units() {
	while read -r p; do dpkg-query -L "$p" 2>/dev/null || true; done |
		sed -n 's#^/\(usr/\)\{0,1\}lib/systemd/system/\([^/@]*\.\(service\|socket\|timer\|path\)\)$#\2#p' | sort -u
}

# quiesce stops and disables the given units and fails if one stays
# enabled or running.
quiesce() {
	command -v systemctl >/dev/null 2>&1 || return 0
	booted=false
	[ -d /run/systemd/system ] && booted=true
	bad=""
	for u; do
		if $booted && systemctl is-active --quiet "$u"; then
			say "stopping $u"
			systemctl stop "$u"
		fi
		case $(systemctl is-enabled "$u" 2>/dev/null || true) in
		enabled | enabled-runtime)
			say "disabling $u at boot"
			systemctl disable --quiet "$u" 2>/dev/null || systemctl disable "$u" >&2
			;;
		esac
		state=$(systemctl is-enabled "$u" 2>/dev/null || true)
		case $state in enabled | enabled-runtime) bad="$bad $u($state)" ;; esac
		if $booted && systemctl is-active --quiet "$u"; then bad="$bad $u(running)"; fi
	done
	[ -z "$bad" ] || die "still enabled or running after the install:$bad"
}

apt_install() {
	missing=""
	for p; do is_installed "$p" || missing="$missing $p"; done
	[ -n "$missing" ] || return 0
	if [ "$(id -u)" != 0 ]; then
		say "missing Debian packages:$missing (install them as root; tests that need them skip)"
		return 0
	fi
	before=$(mktemp)
	ours=false
	# finish: remove what this install created, as soon as apt is through (a
	# policy-rc.d left behind would stop every later service start)
	finish() {
		rm -f "$before"
		if $ours && [ "$(cat "$POLICY" 2>/dev/null)" = "$POLICY_TEXT" ]; then rm -f "$POLICY"; fi
		ours=false
	}
	trap finish EXIT
	trap 'exit 130' INT TERM
	# noclobber: create policy-rc.d only where none exists, never replace one
	if (set -C && printf '%s\n' "$POLICY_TEXT" >"$POLICY") 2>/dev/null; then
		ours=true
		chmod 755 "$POLICY"
	else
		rc=0
		"$POLICY" x start >/dev/null 2>&1 || rc=$?
		[ "$rc" = 101 ] || say "$POLICY exists and lets services start: they are stopped after the install"
	fi
	installed >"$before"
	say "installing$missing (no service started or enabled)"
	apt_update
	# shellcheck disable=SC2086 # word splitting wanted
	apt_get install --no-install-recommends $missing
	new=$(installed | comm -13 "$before" -)
	finish
	# shellcheck disable=SC2046
	quiesce $(echo "$new" | units)
}

# go_version prints the version of the Go at $1 (1.26.8), without letting
# it switch to another toolchain.
go_version() {
	v=$(GOTOOLCHAIN=local "$1" env GOVERSION 2>/dev/null) || return 1
	v=${v#go}
	echo "${v%% *}"
}

# at_least is true when version $1 ≥ $2.
at_least() {
	[ "$(printf '%s\n%s\n' "$2" "$1" | sort -V | head -n 1)" = "$2" ]
}

go_bin() {
	[ -f go.mod ] || die "run from the repository root (no go.mod here)"
	need=$(sed -n 's/^go \([0-9][0-9.]*\)$/\1/p' go.mod)
	[ -n "$need" ] || die "go.mod has no go line"
	if command -v go >/dev/null 2>&1; then
		v=$(go_version go) || die "$(command -v go) does not run"
		if at_least "$v" "$need"; then
			command -v go
			return
		fi
		say "$(command -v go) is Go $v; go.mod needs $need: using $GO_TOOLCHAIN from the module cache"
	elif [ "$(id -u)" = 0 ]; then
		say "no go in PATH: installing Debian's golang-go to fetch $GO_TOOLCHAIN"
		apt_install golang-go
		command -v go >/dev/null 2>&1 || die "golang-go installed, but no go in PATH"
	else
		die "no go in PATH: install Debian's golang-go (or Go $need) first, or run make as root"
	fi
	mod=golang.org/toolchain@v0.0.1-$GO_TOOLCHAIN.linux-$(go env GOARCH)
	dir=$(go env GOMODCACHE)/$mod
	if [ ! -f "$dir/bin/go" ]; then
		say "go mod download $mod"
		# outside this module: an old go cannot read a newer go.mod
		tmp=$(mktemp -d)
		(cd "$tmp" && GO111MODULE=on GOFLAGS=-mod=mod go mod download "$mod") >&2 || {
			rmdir "$tmp"
			die "go mod download $mod failed"
		}
		rmdir "$tmp"
	fi
	# module zips keep no mode bits: make the programs executable, as the go
	# command does when it switches toolchains itself
	if [ ! -x "$dir/bin/go" ]; then
		find "$dir/bin" "$dir/pkg/tool" -type f -exec chmod a+x {} +
	fi
	v=$(go_version "$dir/bin/go") || die "$dir/bin/go does not run"
	at_least "$v" "$need" || die "$dir/bin/go is Go $v; go.mod needs $need (set GO_TOOLCHAIN)"
	echo "$dir/bin/go"
}

case ${1:-} in
apt)
	shift
	apt_install "$@"
	;;
go) go_bin ;;
*) die "usage: setup.sh apt PKG... | setup.sh go" ;;
esac
