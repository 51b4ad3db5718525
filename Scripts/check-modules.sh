#!/usr/bin/env bash
# Checks that the module table in Sources/README.md is what the package really is:
#  1. every non-test target's dependencies in Package.swift (swift package dump-package) are
#     exactly its "may import" column;
#  2. no Swift source file imports a package module outside its own row;
#  3. the runtime's closure stays {MBRuntime, MBFormat, MBKernels, MBCore, CZlib} + C kernels.
# Prints one line per problem and exits 1 when there is any.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v jq >/dev/null || { echo "check-modules: jq not installed; SKIPPING the module table check" >&2; exit 0; }
table=$(sed -n '/<!-- module table/,/<!-- end of module table/p' Sources/README.md |
  awk -F'|' 'NF > 4 && $2 ~ /`/ { gsub(/[` ]/, "", $2); gsub(/ /, "", $4); if ($4 == "-") $4 = ""; print $2 " " $4 }')
[ -n "$table" ] || { echo "check-modules: no module table in Sources/README.md" >&2; exit 1; }
# Its own scratch path: the manifest is all it reads, and a build holding .build must not block it.
declared=$(swift package --scratch-path "${TMPDIR:-/tmp}/mbconvert-check-modules" dump-package | jq -r '.targets[] | select(.type != "test") | select(.name != "TestSupport")
  | .name + " " + ([.dependencies[] | (.byName // .target // .product)[0]] | join(","))')
norm() { tr ',' '\n' | sed '/^$/d' | sort | paste -sd, -; }
problems=0
allowed() { awk -v m="$1" '$1 == m { print $2 }' <<<"$table"; }
while read -r name deps; do
  row=$(awk -v m="$name" '$1 == m { print "found" }' <<<"$table")
  if [ -z "$row" ]; then echo "check-modules: target $name is not in Sources/README.md's table"; problems=$((problems+1)); continue; fi
  want=$(allowed "$name" | norm); have=$(norm <<<"${deps:-}")
  if [ "$want" != "$have" ]; then
    echo "check-modules: $name depends on [$have] in Package.swift but may import [$want] in Sources/README.md"; problems=$((problems+1))
  fi
done <<<"$declared"
while read -r name _; do
  grep -q "^$name " <<<"$declared" || grep -qx "$name" <<<"$declared" || { echo "check-modules: $name is in the table but not a target"; problems=$((problems+1)); }
done <<<"$table"
# 2. Imports of package modules (system modules such as Foundation are not in the table).
modules=$(awk '{print $1}' <<<"$table")
for dir in Sources/*/; do
  name=$(basename "$dir")
  grep -qx "$name" <<<"$modules" || continue
  may=",$(allowed "$name"),"
  while IFS=: read -r file imported; do
    grep -qx "$imported" <<<"$modules" || continue
    case "$may" in *",$imported,"*) ;; *) echo "check-modules: $file imports $imported, which $name may not import"; problems=$((problems+1));; esac
  done < <(grep -rHoE '^(@_implementationOnly |@preconcurrency |public )?import [A-Za-z_]+' "$dir" --include=*.swift | sed -E 's/:.*import /:/')
done
# 3. The runtime's closure.
closure="MBRuntime"; frontier="MBRuntime"
while [ -n "$frontier" ]; do
  next=""
  for m in $frontier; do for d in $(allowed "$m" | tr ',' ' '); do
    case " $closure " in *" $d "*) ;; *) closure="$closure $d"; next="$next $d";; esac
  done; done
  frontier=$next
done
for m in $closure; do
  case "$m" in MBRuntime|MBFormat|MBKernels|MBCore|CZlib|CBitPlanes|CFloatKernels|CBLAS) ;;
    *) echo "check-modules: the runtime's closure includes $m (allowed: MBRuntime, MBFormat, MBKernels, MBCore, CZlib and the C kernels)"; problems=$((problems+1));; esac
done
if [ $problems -gt 0 ]; then echo "check-modules: $problems problem(s)"; exit 1; fi
echo "check-modules: $(wc -l <<<"$declared") targets match Sources/README.md; imports within their rows; runtime closure: $closure"
