#!/usr/bin/env bash
# Installs what the tests and the demo need and the machine lacks: OpenLDAP's slapd and
# client tools, and memcached (Debian packages, with apt-get when run as root).
set -euo pipefail

missing=()
command -v cargo >/dev/null || { echo "cargo is missing: install the Rust toolchain (rustup)" >&2; exit 1; }
[ -x /usr/sbin/slapd ] && [ -x /usr/sbin/slapadd ] && [ -e /usr/lib/ldap/accesslog.so ] || missing+=(slapd)
command -v ldapsearch >/dev/null && command -v ldapmodify >/dev/null || missing+=(ldap-utils)
command -v memcached >/dev/null || missing+=(memcached)
[ ${#missing[@]} -eq 0 ] && exit 0

if [ "$(id -u)" -ne 0 ]; then
    echo "missing Debian packages: ${missing[*]}" >&2
    echo "install them with: sudo apt-get install ${missing[*]}" >&2
    exit 1
fi
echo "installing ${missing[*]} ..." >&2
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
# The packages' own services are not used (tests start their own on random ports).
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
