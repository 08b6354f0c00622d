#!/usr/bin/env bash
# Build the otel_showmax collector distribution from collector/manifest.yaml.
#
#   collector/build.sh            build collector/_build/otelcol-showmax if the manifest changed
#   collector/build.sh --force    rebuild even if it looks up to date
#   (then collector/build-tier.sh: the scale-out distribution and the Zipkin server, same rules)
#
# - Installs the OpenTelemetry Collector Builder (ocb) with `go install` at the same release as the
#   manifest's core modules, into collector/_build/bin (nothing is installed globally).
# - Rebuilds only when the stamp (hash of the manifest, this script, the builder release and the Go
#   version) differs from the last successful build, or the binary is missing.
# - Uses Go's default module and build caches ($(go env GOMODCACHE), $(go env GOCACHE)), which live
#   outside the repository and survive between runs: a warm rebuild takes seconds, a cold one minutes.
# - Fails loudly (non-zero exit) if Go is missing or anything in the build fails; the tests never skip.
set -euo pipefail

# The builder's release must match the manifest's core modules (tests/collector/test_static.py checks).
BUILDER_MODULE="go.opentelemetry.io/collector/cmd/builder"
BUILDER_VERSION="v0.165.0"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MANIFEST="$HERE/manifest.yaml"
BUILD_DIR="$HERE/_build"
BIN_NAME="otelcol-showmax"
BINARY="$BUILD_DIR/$BIN_NAME"
BUILDER="$BUILD_DIR/bin/builder"
STAMP="$BUILD_DIR/.stamp"

die() { echo "collector/build.sh: ERROR: $*" >&2; exit 1; }
say() { echo "collector/build.sh: $*" >&2; }

FORCE=0
case "${1:-}" in
  "") ;;
  --force) FORCE=1 ;;
  -h|--help) sed -n '2,14p' "$0"; exit 0 ;;
  *) die "unknown argument: $1 (use --force or nothing)" ;;
esac

command -v go >/dev/null 2>&1 || die "Go is not installed or not on PATH. The collector is built from the official Go modules; install Go >= 1.26 (https://go.dev/dl/) and re-run. Tests that need the collector fail without it."
GO_VERSION="$(go env GOVERSION 2>/dev/null)" || die "'go env GOVERSION' failed; is the Go installation broken?"
[ -f "$MANIFEST" ] || die "manifest not found: $MANIFEST"

mkdir -p "$BUILD_DIR"
# One build at a time (parallel `make test` runs share the folder).
exec 9>"$BUILD_DIR/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

sha256() { if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi; }
manifest_hash() {
  { cat "$MANIFEST" "$HERE/build.sh"; echo "$BUILDER_VERSION"; echo "$GO_VERSION"; } | sha256 | cut -d' ' -f1
}
WANT="$(manifest_hash)"

# The scale-out distribution (manifest-tier.yaml, its own release) and the Zipkin server it exports
# to come next, from build-tier.sh (absent in a copy of this script alone: then only this one).
tier() {
  if [ -x "$HERE/build-tier.sh" ]; then
    exec 9>&-
    "$HERE/build-tier.sh" $([ "$FORCE" = 1 ] && echo --force) || exit 1
  fi
}

if [ "$FORCE" = 0 ] && [ -x "$BINARY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  say "up to date: $BINARY (manifest unchanged)"
  tier
  exit 0
fi

start=$(date +%s)
rm -f "$STAMP"

# 1. The builder, pinned to the manifest's release, installed into _build/bin.
if [ ! -x "$BUILDER" ] || ! "$BUILDER" version 2>/dev/null | grep -q "$BUILDER_VERSION"; then
  say "installing $BUILDER_MODULE@$BUILDER_VERSION"
  GOBIN="$BUILD_DIR/bin" go install "$BUILDER_MODULE@$BUILDER_VERSION" \
    || die "go install $BUILDER_MODULE@$BUILDER_VERSION failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
fi

# 2. Generate sources, resolve modules and compile into _build/ (output_path in the manifest).
say "building $BIN_NAME with $GO_VERSION (cold: a few minutes; warm caches: seconds)"
rm -f "$BINARY"
cd "$HERE"
# No VCS stamping: _build/ sits inside the repository, and CI checkouts are often owned by another user.
export GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"
"$BUILDER" --config "$MANIFEST" || die "the collector build failed (see the builder output above)"

[ -x "$BINARY" ] || die "the builder finished but $BINARY is missing"
"$BINARY" components >/dev/null || die "$BINARY was built but does not run"

echo "$WANT" >"$STAMP"
say "built $BINARY in $(( $(date +%s) - start ))s"
tier
