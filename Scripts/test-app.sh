#!/usr/bin/env bash
# Builds an app the way users build theirs: depending on mbconvert by version from a git URL,
# on the MBRuntime product alone, in release, then runs it on a converted model.
#
#   Scripts/test-app.sh [CHECKOUT]     (default: this checkout)
#
# It makes a bare clone of CHECKOUT in a temporary folder, tags its HEAD 0.1.0 (the clone's
# other tags are dropped, so `from: "0.1.0"` resolves to exactly that commit), takes
# Examples/RuntimeApp and Examples/models from that commit, points the app's manifest at
# file://<clone> (MBCONVERT_URL) and runs `swift build -c release`, then the app on
# tiny_cnn.mbm. It tests what is COMMITTED: uncommitted changes in CHECKOUT are not in the clone.
# SwiftPM refuses unsafeFlags in a package depended on by version, so this is what fails if a
# target the MBRuntime product reaches gets one back.
set -euo pipefail
checkout=$(cd "${1:-$(dirname "$0")/..}" && pwd)
tmp=$(mktemp -d "${TMPDIR:-/tmp}/mbconvert-app-test.XXXXXX")
trap 'rm -rf "$tmp"' EXIT
start=$(date +%s)

git clone -q --bare "$checkout" "$tmp/mbconvert.git"
commit=$(git --git-dir="$tmp/mbconvert.git" rev-parse HEAD)
git --git-dir="$tmp/mbconvert.git" tag -l | xargs -r git --git-dir="$tmp/mbconvert.git" tag -d >/dev/null
git --git-dir="$tmp/mbconvert.git" tag 0.1.0 "$commit"
if [ -n "$(git -C "$checkout" status --porcelain 2>/dev/null)" ]; then
  echo "test-app: note: $checkout has uncommitted changes; the app test builds commit ${commit:0:12} without them"
fi
mkdir -p "$tmp/app"
git --git-dir="$tmp/mbconvert.git" archive "$commit" Examples/RuntimeApp Examples/models | tar -x -C "$tmp/app"
app="$tmp/app/Examples/RuntimeApp"
rm -rf "$app/.build" "$app/Package.resolved"
echo "test-app: bare clone of $checkout at ${commit:0:12}, tagged 0.1.0; app: Examples/RuntimeApp (MBRuntime product, from: \"0.1.0\")"

export MBCONVERT_URL="file://$tmp/mbconvert.git"
# Every library product, not only the one the app uses, must load as a versioned dependency:
# SwiftPM checks the flags when it loads the graph, so this needs no build.
products=$(git --git-dir="$tmp/mbconvert.git" show "$commit:Package.swift" | sed -n 's/.*\.library(name: "\([A-Za-z0-9_]*\)".*/\1/p')
mkdir -p "$tmp/graph/Sources/Graph"
echo 'print("graph")' >"$tmp/graph/Sources/Graph/main.swift"
{
  echo '// swift-tools-version:6.1'
  echo 'import PackageDescription'
  echo 'let package = Package(name: "Graph", platforms: [.macOS(.v15), .iOS(.v18)],'
  echo "  dependencies: [.package(url: \"$MBCONVERT_URL\", from: \"0.1.0\")],"
  echo '  targets: [.executableTarget(name: "Graph", dependencies: ['
  for p in $products; do echo "    .product(name: \"$p\", package: \"mbconvert\"),"; done
  echo '  ])])'
} >"$tmp/graph/Package.swift"
if ! swift package --package-path "$tmp/graph" --scratch-path "$tmp/graph/.build" show-dependencies >"$tmp/graph.log" 2>&1; then
  grep -E "error" "$tmp/graph.log" | head -10 >&2 || tail -10 "$tmp/graph.log" >&2
  echo "test-app: FAILED: the library products ($(echo $products)) do not load as a dependency by version" >&2
  exit 1
fi
echo "test-app: library products $(echo $products | tr ' ' ',') load as a dependency by version"
if ! swift build -c release --package-path "$app" --scratch-path "$app/.build" --product RuntimeApp >"$tmp/build.log" 2>&1; then
  # The resolution and build errors (e.g. "contains unsafe build flags"), not the progress lines.
  grep -E "error|warning: .*unsafe" "$tmp/build.log" | head -20 >&2 || tail -20 "$tmp/build.log" >&2
  echo "test-app: FAILED: the app depending on mbconvert from: \"0.1.0\" (MBRuntime) does not build" >&2
  exit 1
fi
built=$(date +%s)
bin="$app/.build/release/RuntimeApp"
echo "test-app: release build in $((built - start)) s; RuntimeApp binary $(stat -c %s "$bin") bytes"
run=("$bin" "$tmp/app/Examples/models/tiny_cnn.mbm" "$tmp/app/Examples/models/tiny_cnn.input.npy")
# Peak resident memory of the whole run (load, session, one inference) where GNU time exists.
[ -x /usr/bin/time ] && run=(/usr/bin/time -f "%M" -o "$tmp/rss" "${run[@]}")
if ! output=$("${run[@]}" 2>&1); then
  echo "$output" >&2
  echo "test-app: FAILED: RuntimeApp did not run tiny_cnn.mbm" >&2
  exit 1
fi
echo "$output" | sed 's/^/  /'
grep -q "→ class" <<<"$output" || { echo "test-app: FAILED: RuntimeApp printed no classes" >&2; exit 1; }
[ -s "$tmp/rss" ] && echo "test-app: RuntimeApp peak resident memory on tiny_cnn: $(cat "$tmp/rss") KB"
echo "test-app: ok ($(( $(date +%s) - start )) s)"
