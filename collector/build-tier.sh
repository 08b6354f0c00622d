#!/usr/bin/env bash
# Build the scale-out collector distribution (collector/manifest-tier.yaml) and fetch the Zipkin
# server the tier exports to. collector/build.sh runs this after the small distribution, so
# `make collector` / `make test` get both.
#
#   collector/build-tier.sh            build _build/tier/otelcol-showmax-tier if the manifest changed,
#                                      fetch Zipkin into the Maven cache if it is not there
#   collector/build-tier.sh --force    rebuild even if it looks up to date
#   collector/build-tier.sh --zipkin-path   print the Zipkin jar's path (after fetching it)
#
# - The builder is installed at the tier manifest's release (v0.161.0, not build.sh's v0.165.0) into
#   _build/tier/bin; Go's default module and build caches are reused (outside the repository).
# - Rebuilds only when the stamp (hash of the manifest, this script, the builder release, Go version)
#   differs from the last successful build, or the binary is missing.
# - Zipkin server (io.zipkin:zipkin-server:3.5.1, the self-contained "exec" jar, ~131 MB) comes from
#   Maven Central through `mvn dependency:get` into the local Maven repository (~/.m2, outside the
#   repository); it is fetched once and reused. Needs Java >= 17 to run, mvn to fetch.
# - Fails loudly (non-zero exit) when Go, mvn or Java is missing or a step fails: the tests never skip.
set -euo pipefail

BUILDER_MODULE="go.opentelemetry.io/collector/cmd/builder"
BUILDER_VERSION="v0.161.0"
ZIPKIN_ARTIFACT="io.zipkin:zipkin-server:3.5.1:jar:exec"

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
MANIFEST="$HERE/manifest-tier.yaml"
BUILD_DIR="$HERE/_build/tier"
BIN_NAME="otelcol-showmax-tier"
BINARY="$BUILD_DIR/$BIN_NAME"
BUILDER="$BUILD_DIR/bin/builder"
STAMP="$BUILD_DIR/.stamp"

die() { echo "collector/build-tier.sh: ERROR: $*" >&2; exit 1; }
say() { echo "collector/build-tier.sh: $*" >&2; }

FORCE=0
ZIPKIN_PATH_ONLY=0
case "${1:-}" in
  "") ;;
  --force) FORCE=1 ;;
  --zipkin-path) ZIPKIN_PATH_ONLY=1 ;;
  -h|--help) sed -n '2,20p' "$0"; exit 0 ;;
  *) die "unknown argument: $1 (use --force, --zipkin-path or nothing)" ;;
esac

# -- Zipkin ---------------------------------------------------------------------------------------
zipkin_jar() {
  local repo group artifact version
  IFS=: read -r group artifact version _ _ <<<"$ZIPKIN_ARTIFACT"
  repo="$(mvn -q help:evaluate -Dexpression=settings.localRepository -DforceStdout 2>/dev/null || true)"
  [ -n "$repo" ] && [ -d "$repo" ] || repo="$HOME/.m2/repository"
  echo "$repo/${group//.//}/$artifact/$version/$artifact-$version-exec.jar"
}

fetch_zipkin() {
  # On a fresh Debian machine (root, apt-get): install what is missing, as .ci/run does for other tools.
  local missing=()
  command -v java >/dev/null 2>&1 || missing+=(openjdk-17-jre-headless)
  command -v mvn >/dev/null 2>&1 || missing+=(maven)
  if [ ${#missing[@]} -gt 0 ] && [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    say "installing ${missing[*]} (apt-get)"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 && \
      DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null \
      || die "apt-get install ${missing[*]} failed"
  fi
  command -v java >/dev/null 2>&1 || die "Java is not installed (Zipkin server needs Java >= 17: apt-get install openjdk-17-jre-headless)"
  command -v mvn >/dev/null 2>&1 || die "mvn is not installed (it fetches Zipkin from Maven Central: apt-get install maven)"
  local jar
  jar="$(zipkin_jar)"
  if [ ! -s "$jar" ]; then
    say "fetching $ZIPKIN_ARTIFACT from Maven Central (~131 MB, once; cached in the local Maven repository)"
    # -Dtransitive=false: the exec jar is self-contained; its pom's dependencies are not needed.
    mvn -q -B dependency:get -Dartifact="$ZIPKIN_ARTIFACT" -Dtransitive=false >&2 \
      || die "mvn dependency:get $ZIPKIN_ARTIFACT failed (is Maven Central reachable?)"
    [ -s "$jar" ] || die "mvn finished but $jar is missing"
  fi
  echo "$jar"
}

if [ "$ZIPKIN_PATH_ONLY" = 1 ]; then
  fetch_zipkin
  exit 0
fi

# -- the tier distribution ------------------------------------------------------------------------
command -v go >/dev/null 2>&1 || die "Go is not installed or not on PATH (Go >= 1.26 builds the collector; see collector/README.md)"
GO_VERSION="$(go env GOVERSION 2>/dev/null)" || die "'go env GOVERSION' failed; is the Go installation broken?"
[ -f "$MANIFEST" ] || die "manifest not found: $MANIFEST"

mkdir -p "$BUILD_DIR"
exec 9>"$BUILD_DIR/.lock"
if command -v flock >/dev/null 2>&1; then
  flock 9
fi

sha256() { if command -v sha256sum >/dev/null 2>&1; then sha256sum; else shasum -a 256; fi; }
WANT="$({ cat "$MANIFEST" "$HERE/build-tier.sh"; echo "$BUILDER_VERSION"; echo "$GO_VERSION"; } | sha256 | cut -d' ' -f1)"

if [ "$FORCE" = 0 ] && [ -x "$BINARY" ] && [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$WANT" ]; then
  say "up to date: $BINARY (manifest unchanged)"
else
  start=$(date +%s)
  rm -f "$STAMP"
  if [ ! -x "$BUILDER" ] || ! "$BUILDER" version 2>/dev/null | grep -q "$BUILDER_VERSION"; then
    say "installing $BUILDER_MODULE@$BUILDER_VERSION"
    GOBIN="$BUILD_DIR/bin" go install "$BUILDER_MODULE@$BUILDER_VERSION" \
      || die "go install $BUILDER_MODULE@$BUILDER_VERSION failed (is the Go module proxy reachable? GOPROXY=$(go env GOPROXY))"
  fi
  say "building $BIN_NAME with $GO_VERSION (cold: a few minutes; warm caches: seconds)"
  rm -f "$BINARY"
  cd "$HERE"
  export GOFLAGS="${GOFLAGS:+$GOFLAGS }-buildvcs=false"
  "$BUILDER" --config "$MANIFEST" || die "the tier collector build failed (see the builder output above)"
  [ -x "$BINARY" ] || die "the builder finished but $BINARY is missing"
  "$BINARY" components >/dev/null || die "$BINARY was built but does not run"
  echo "$WANT" >"$STAMP"
  say "built $BINARY in $(( $(date +%s) - start ))s"
fi

fetch_zipkin >/dev/null
