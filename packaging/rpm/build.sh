#!/usr/bin/env bash
# Builds the RPMs from this checkout with rpmbuild: a source tarball of the files git
# tracks (as they are in the work tree), a tarball of the vendored crates (cargo vendor,
# from Cargo.lock), then rpmbuild with no network at all (a new network namespace, when
# run as root). Prints the path of each package built.
#   RPM_TOPDIR=DIR            rpmbuild's top folder (default: a new temporary one)
#   KOJI_RPM_TARGET_DIR=DIR   cargo's target folder, kept between builds
#   KOJI_RPM_BUILDDIR=DIR     rpmbuild's build folder; a fixed one lets cargo reuse the
#                             dependencies it built last time (their paths must not move)
#   KOJI_RPM_SRPM=1           make the source package only (for mock --rebuild)
set -euo pipefail
cd "$(dirname "$0")/../.."
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
name="koji-runbook-$version"
top="${RPM_TOPDIR:-$(mktemp -d)}"
mkdir -p "$top"/{SOURCES,SPECS,BUILD,BUILDROOT,RPMS,SRPMS}
stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT

git ls-files -z --cached --others --exclude-standard |
    while IFS= read -r -d '' file; do [ -e "$file" ] && printf '%s\0' "$file"; done |
    tar --null -T - --transform "s,^,$name/," -czf "$top/SOURCES/$name.tar.gz"
cargo vendor --locked --versioned-dirs "$stage/vendor" >/dev/null 2>"$stage/vendor.log" ||
    { cat "$stage/vendor.log" >&2; exit 1; }
tar -C "$stage" -I 'gzip -1' -cf "$top/SOURCES/$name-vendor.tar.gz" vendor
cp packaging/rpm/koji-runbook.spec "$top/SPECS/"

defines=(--define "_topdir $top")
if [ -n "${KOJI_RPM_TARGET_DIR:-}" ]; then
    defines+=(--define "koji_target_dir $KOJI_RPM_TARGET_DIR")
fi
if [ -n "${KOJI_RPM_BUILDDIR:-}" ]; then
    mkdir -p "$KOJI_RPM_BUILDDIR"
    defines+=(--define "_builddir $KOJI_RPM_BUILDDIR")
fi
if [ -n "${KOJI_RPM_SRPM:-}" ]; then
    rpmbuild -bs --nodeps "${defines[@]}" "$top/SPECS/koji-runbook.spec" >"$top/rpmbuild.log" 2>&1 ||
        { tail -50 "$top/rpmbuild.log" >&2; exit 1; }
    find "$top/SRPMS" -name '*.src.rpm'
    exit 0
fi
offline=()
if [ "$(id -u)" = 0 ] && unshare --net true 2>/dev/null; then
    offline=(unshare --net)
    echo "rpmbuild runs in a network namespace of its own: no network" >&2
fi
# --nodeps: BuildRequires name Fedora's packages, which a Debian rpm database does not list.
"${offline[@]}" rpmbuild -bb --nodeps "${defines[@]}" "$top/SPECS/koji-runbook.spec" >"$top/rpmbuild.log" 2>&1 ||
    { tail -50 "$top/rpmbuild.log" >&2; exit 1; }
find "$top/RPMS" -name '*.rpm' | sort
