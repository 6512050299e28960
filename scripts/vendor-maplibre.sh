#!/usr/bin/env bash
# Refreshes the vector basemap's renderer the consoles embed: MapLibre GL JS and its Leaflet
# binding (@maplibre/maplibre-gl-leaflet) from the npm registry (published tarballs, checked by
# npm against the registry's integrity hash), copied to web/assets/vendor/ with their licences.
# No CDN, no build step; the files are committed so `cargo build` works offline.
#
# Two edits, both mechanical: the binding's bare imports ("leaflet", "maplibre-gl") point at
# the page's global Leaflet and the vendored module (browsers resolve no bare specifiers
# without an import map, and an inline import map would need a CSP exception); source-map
# comments are dropped (the maps are not shipped).
set -euo pipefail
cd "$(dirname "$0")/.."
GL="${1:-6.20.0}"
BINDING="${2:-0.1.4}"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack "maplibre-gl@$GL" "@maplibre/maplibre-gl-leaflet@$BINDING" --silent >/dev/null)
mkdir -p "$tmp/gl" "$tmp/binding"
tar -xzf "$tmp"/maplibre-gl-"$GL".tgz -C "$tmp/gl"
tar -xzf "$tmp"/maplibre-maplibre-gl-leaflet-"$BINDING".tgz -C "$tmp/binding"

out=web/assets/vendor/maplibre-gl
rm -rf "$out" && mkdir -p "$out"
for f in maplibre-gl.mjs maplibre-gl-worker.mjs; do
  sed '/^\/\/# sourceMappingURL=/d' "$tmp/gl/package/dist/$f" > "$out/$f"
done
cp "$tmp/gl/package/dist/maplibre-gl.css" "$tmp/gl/package/LICENSE.txt" "$out"/
echo "maplibre-gl $GL from the npm registry ($(cd "$tmp" && sha256sum maplibre-gl-"$GL".tgz | cut -d' ' -f1))" > "$out/VERSION"

out=web/assets/vendor/maplibre-gl-leaflet
rm -rf "$out" && mkdir -p "$out"
sed -e 's#^import \* as LeafletModule from "leaflet";#const LeafletModule = window.L;#' \
    -e 's#^import \* as maplibregl from "maplibre-gl";#import * as maplibregl from "../maplibre-gl/maplibre-gl.mjs";#' \
    -e '/^\/\/# sourceMappingURL=/d' \
    "$tmp/binding/package/dist/leaflet-maplibre-gl.mjs" > "$out/leaflet-maplibre-gl.mjs"
grep -q 'window.L' "$out/leaflet-maplibre-gl.mjs" && grep -q '../maplibre-gl/maplibre-gl.mjs' "$out/leaflet-maplibre-gl.mjs" \
  || { echo "the binding's imports changed; review scripts/vendor-maplibre.sh" >&2; exit 1; }
cp "$tmp/binding/package/LICENSE" "$out"/
echo "@maplibre/maplibre-gl-leaflet $BINDING from the npm registry ($(cd "$tmp" && sha256sum maplibre-maplibre-gl-leaflet-"$BINDING".tgz | cut -d' ' -f1))" > "$out/VERSION"
echo "vendored $(cat web/assets/vendor/maplibre-gl/VERSION) and $(cat "$out"/VERSION)"
