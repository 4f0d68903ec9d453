#!/usr/bin/env bash
# Installs the OHIF viewer (npm package @ohif/app, a built web viewer in its dist/ folder) into
# the project-local, git-ignored folder vendor/ohif/ with npm. The version and the tarball's
# integrity are pinned here; nothing is downloaded at run time. Idempotent.
# Used by the viewer tests (tests/viewer) and by the optional built-in viewer
# (SRSERVICE_VIEWER_PORT, docs/viewing.md).
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="3.13.2"
INTEGRITY="sha512-WZdxmpmG7rqFgW9ZJLcbgr3XCtLi1KDNPoMaeY5PPe6j4G4fjEjjkycZM6C6Zk2F87BKxFfpq+jd5xXZB9E8EA=="
dest="vendor/ohif"
if [ -f "$dest/$VERSION/dist/index.html" ]; then
  exit 0
fi
if ! command -v npm >/dev/null 2>&1; then
  bash scripts/install-system-deps.sh
fi
mkdir -p "$dest"
tmp="$(mktemp -d "$dest/.download.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT
echo "installing @ohif/app@$VERSION into $dest/$VERSION"
npm pack "@ohif/app@$VERSION" --pack-destination "$tmp" --json --silent > "$tmp/pack.json"
got="$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["integrity"])' "$tmp/pack.json")"
if [ "$got" != "$INTEGRITY" ]; then
  echo "@ohif/app@$VERSION: integrity $got, expected $INTEGRITY" >&2
  exit 1
fi
mkdir "$tmp/x"
tar -xzf "$tmp"/ohif-app-"$VERSION".tgz -C "$tmp/x"
rm -rf "${dest:?}/$VERSION"
mv "$tmp/x/package" "$dest/$VERSION"
