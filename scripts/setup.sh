#!/bin/sh
# setup.sh: what the make targets need on a Debian host, installed so that
# the host stays as it was apart from the files of the new packages.
#
#   setup.sh apt PKG...  install the missing Debian packages (as root; as
#                        another user, say which are missing) without
#                        starting any service they ship or enabling it at boot
#
# Services: apt-get runs with a policy-rc.d that forbids every start (one is
# created only where the host has none, and removed afterwards), without
# recommended packages; then every service, socket, timer or path unit that
# the newly installed packages ship is stopped and disabled, and the script
# fails if one is still enabled or running. The tests start their own
# servers inside network namespaces.
set -eu

APT_LOCK_TIMEOUT=${APT_LOCK_TIMEOUT:-600} # seconds to wait for another apt or dpkg (first boot)
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
	trap 'rm -f "$before"; if $ours && [ "$(cat "$POLICY" 2>/dev/null)" = "$POLICY_TEXT" ]; then rm -f "$POLICY"; fi' EXIT
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
	# shellcheck disable=SC2046
	quiesce $(echo "$new" | units)
}

case ${1:-} in
apt)
	shift
	apt_install "$@"
	;;
*) die "usage: setup.sh apt PKG..." ;;
esac
