#!/usr/bin/env bash
# Refreshes the map library the consoles embed: Leaflet from the npm registry (its published
# tarball, checked by npm against the registry's integrity hash), copied to
# web/assets/vendor/leaflet/ with its licence. The consoles need no CDN and no build step;
# the files are committed so `cargo build` works offline. Run this to move to a new version,
# then review the diff and rebuild.
set -euo pipefail
cd "$(dirname "$0")/.."
VERSION="${1:-1.9.4}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "leaflet@$VERSION" --silent >/dev/null)
tar -xzf "$tmp"/leaflet-"$VERSION".tgz -C "$tmp"
out=web/assets/vendor/leaflet
rm -rf "$out"
mkdir -p "$out"
cp "$tmp"/package/dist/leaflet.js "$tmp"/package/dist/leaflet.css "$tmp"/package/LICENSE "$out"/
# The images leaflet.css refers to (layer switcher, default marker), so no URL 404s.
cp -r "$tmp"/package/dist/images "$out"/
echo "leaflet $VERSION from the npm registry ($(cd "$tmp" && sha256sum leaflet-"$VERSION".tgz | cut -d' ' -f1))" > "$out"/VERSION
echo "vendored $(cat "$out"/VERSION) into $out"
