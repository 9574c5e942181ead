#!/usr/bin/env bash
# Makes sure every binary in test/system-packages.txt is on PATH.
#
#   nothing missing                 -> silent, exit 0 (one PATH lookup per binary)
#   missing, root, apt-get present  -> one `apt-get update`, then one
#                                      `apt-get install` of every missing package
#   missing, and it cannot install  -> prints the packages and the exact command
#   (not root, no apt-get, failure)    to run, exit 1
#
# --sudo: when not root, install through `sudo -n` if that works without a
# password (.ci/run uses it; `npm test` does not).
#
# Only bash builtins, `id`, `apt-get` and `sudo` are used, so the tests can run
# it with a PATH of fake binaries (test/unit/support/system-packages.test.ts).
set -uo pipefail

use_sudo=false
[ "${1:-}" = "--sudo" ] && use_sudo=true

here=${BASH_SOURCE[0]%/*}
[ "$here" = "${BASH_SOURCE[0]}" ] && here=.
list="$here/../system-packages.txt"

declare -A bins_of=()   # package -> the missing binaries it provides
packages=()             # missing packages, in list order, each once

find_missing() {
  bins_of=(); packages=()
  local bin pkg
  while read -r bin pkg _; do
    case "$bin" in '' | '#'*) continue ;; esac
    pkg=${pkg:-$bin}
    type -P "$bin" >/dev/null && continue
    [ -n "${bins_of[$pkg]:-}" ] || packages+=("$pkg")
    bins_of[$pkg]="${bins_of[$pkg]:+${bins_of[$pkg]}, }$bin"
  done < "$list"
}

install_args=(install -y -q --no-install-recommends)

# Prints the missing packages and the command that installs them; exits 1.
stop() {
  local sudo="" pkg
  [ "$uid" = 0 ] || sudo="sudo "
  {
    echo
    echo "The tests need these Debian packages, which are missing:"
    for pkg in "${packages[@]}"; do echo "  $pkg (provides ${bins_of[$pkg]})"; done
    echo "Not installed: $1."
    echo "Install them with:"
    echo "  ${sudo}apt-get update && ${sudo}DEBIAN_FRONTEND=noninteractive apt-get ${install_args[*]} ${packages[*]}"
    echo
  } >&2
  exit 1
}

if [ ! -r "$list" ]; then
  echo "cannot read the list of system packages: $list" >&2
  exit 1
fi

find_missing
[ ${#packages[@]} -eq 0 ] && exit 0

uid=$(id -u 2>/dev/null) || uid=$EUID
type -P apt-get >/dev/null || stop "apt-get is not available on this machine"

export DEBIAN_FRONTEND=noninteractive
as_root=()
if [ "$uid" != 0 ]; then
  if $use_sudo && type -P sudo >/dev/null && sudo -n true 2>/dev/null; then
    as_root=(sudo -n DEBIAN_FRONTEND=noninteractive)
  else
    stop "not running as root"
  fi
fi

echo "Installing the Debian packages the tests need: ${packages[*]}" >&2
"${as_root[@]}" apt-get update -q >&2 \
  || stop "apt-get update failed (its output is above)"
"${as_root[@]}" apt-get "${install_args[@]}" "${packages[@]}" >&2 \
  || stop "apt-get install failed (its output is above)"

find_missing
[ ${#packages[@]} -eq 0 ] || stop "apt-get install ran, yet these binaries are still not on PATH ($PATH)"
exit 0
