#!/usr/bin/env bash
# The HTML report in a real browser: converts the bundled example (and verifies it with
# --per-layer, and sweeps it with study --sweep-average --eval) with --report, renders the
# pages with headless Chromium (Debian's `chromium`, installed by Scripts/setup.sh) to PNG
# and checks that each is not blank and that the charts were drawn (pixels of the bar colours,
# of both ends of the heat maps' scale), and that the page's DOM after its script ran still
# holds every chart. Without chromium: skipped with a message; under CI=true that fails when
# the package exists for this system (apt-cache has a candidate).
#   Scripts/test-report-render.sh [--bin path/to/mbconvert] [--keep DIR]
#   Scripts/test-report-render.sh --screenshot report.html out.png [width]   (just render one page)
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bin=""
keep=""
browser=$(command -v chromium || command -v chromium-browser || true)

screenshot() {  # page.html out.png [width]
  local width=${3:-1100} profile status=0
  profile=$(mktemp -d)
  # A tall window: the whole page in one image (Chromium crops to the window).
  timeout 120 "$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --no-first-run \
    --user-data-dir="$profile" --window-size="$width,${SCREEN_HEIGHT:-4000}" --force-device-scale-factor="${SCALE:-1}" \
    --screenshot="$2" "file://$(cd "$(dirname "$1")" && pwd)/$(basename "$1")" >/dev/null 2>&1 || status=$?
  rm -rf "$profile"
  return $status
}

if [ "${1:-}" = "--screenshot" ]; then
  [ -n "$browser" ] || { echo "test-report-render: chromium is not installed" >&2; exit 1; }
  screenshot "$2" "$3" "${4:-1100}"
  exit 0
fi
while [ $# -gt 0 ]; do
  case "$1" in
    --bin) bin=$2; shift 2 ;;
    --keep) keep=$2; shift 2 ;;
    *) echo "test-report-render: unknown argument $1" >&2; exit 64 ;;
  esac
done
if [ -z "$browser" ]; then
  if [ "${CI:-}" = "true" ] && apt-cache policy chromium 2>/dev/null | grep -q "Candidate: [0-9]"; then
    echo "test-report-render: FAILED: chromium is installable here but not installed (run Scripts/setup.sh)" >&2
    exit 1
  fi
  echo "test-report-render: chromium not installed; SKIPPING the browser rendering of the HTML report" >&2
  exit 0
fi
[ -n "$bin" ] || bin="$(cd "$root" && swift build --show-bin-path)/mbconvert"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
model="$root/Examples/models/tiny_cnn.onnx"
"$bin" "$model" "$root/Examples/policies/post-training.txt" -o "$work/m.mbm" --report "$work/convert.html" --quiet
"$bin" verify "$model" "$work/m.mbm" --random 8 --per-layer --report "$work/verify.html" >/dev/null
"$bin" study "$model" --sweep-average 1.4,2.0 --eval "$root/Examples/models/tiny_cnn.input.npy" --threads 1 --report "$work/sweep.html" >/dev/null 2>&1
status=0
for page in convert verify sweep; do
  # Half scale: a quarter of the pixels for the pure-Python PNG decoder below, bars still 6 px tall.
  SCALE=0.5 screenshot "$work/$page.html" "$work/$page.png"
  charts=$(grep -o "<svg" "$work/$page.html" | wc -l)
  # The DOM after the sort script ran: the charts and bars are still there.
  dom_bars=$(timeout 120 "$browser" --headless --no-sandbox --disable-gpu --no-first-run --user-data-dir="$work/profile" \
    --dump-dom "file://$work/$page.html" 2>/dev/null | grep -oE 'class="(bar|cell)"' | sed -E 's/class="(.*)"/\1/' | sort | uniq -c | awk '{printf "%s=%s ", $2, $1}')
  python3 - "$work/$page.png" "$page" "$charts" "$dom_bars" <<'PY' || status=1
import struct, sys, zlib
path, page, charts = sys.argv[1], sys.argv[2], int(sys.argv[3])
dom = dict(kv.split("=", 1) for kv in sys.argv[4].split())
dom_bars = int(dom.get("bar", 0)); dom_cells = int(dom.get("cell", 0))
data = open(path, "rb").read()
assert data[:8] == b"\x89PNG\r\n\x1a\n", f"{path}: not a PNG"
pos, idat, width = 8, b"", 0
while pos < len(data):
    length, kind = struct.unpack(">I4s", data[pos:pos + 8])
    body = data[pos + 8:pos + 8 + length]
    if kind == b"IHDR":
        width, height, depth, color, _, _, interlace = struct.unpack(">IIBBBBB", body)
        assert depth == 8 and color in (2, 6) and interlace == 0, f"{path}: unexpected PNG format {depth}/{color}/{interlace}"
        channels = 3 if color == 2 else 4
    elif kind == b"IDAT":
        idat += body
    pos += 12 + length
raw = zlib.decompress(idat)
stride = width * channels
rows, prev = [], bytearray(stride)
i = 0
for _ in range(height):  # undo the PNG row filters
    f, line = raw[i], bytearray(raw[i + 1:i + 1 + stride]); i += 1 + stride
    for x in range(stride):
        a = line[x - channels] if x >= channels else 0
        b = prev[x]; c = prev[x - channels] if x >= channels else 0
        if f == 1: line[x] = (line[x] + a) & 255
        elif f == 2: line[x] = (line[x] + b) & 255
        elif f == 3: line[x] = (line[x] + (a + b) // 2) & 255
        elif f == 4:
            p = a + b - c; pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
            line[x] = (line[x] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
    rows.append(line); prev = line
def near(px, rgb): return all(abs(px[k] - rgb[k]) <= 6 for k in range(3))
def close(px, rgb): return all(abs(px[k] - rgb[k]) <= 30 for k in range(3))
ink = blue = red = purple = yellow = 0
for line in rows:
    for x in range(0, stride, channels):
        px = line[x:x + 3]
        if px[0] < 235 or px[1] < 235 or px[2] < 235: ink += 1
        if near(px, (0x3b, 0x6e, 0xa5)): blue += 1
        if near(px, (0xc0, 0x50, 0x4d)): red += 1
        if close(px, (68, 1, 84)): purple += 1      # the heat map's scale: worst end
        if close(px, (253, 231, 37)): yellow += 1   # best end
total = width * height
problems = []
if ink < total * 0.01: problems.append(f"nearly blank ({ink} of {total} pixels not white)")
if blue < 150: problems.append(f"no bar charts drawn ({blue} pixels of the bar colour)")
if red < 60: problems.append(f"no weight-error / SQNR bars drawn ({red} pixels)")
expected = {"convert": 3, "verify": 5, "sweep": 6}[page]  # sweep: two simplex heat maps, two bar charts per average
if charts != expected: problems.append(f"{charts} charts in the page, expected {expected}")
if dom_bars < 10: problems.append(f"{dom_bars} bars in the rendered DOM")
if page == "sweep":
    if dom_cells != 2 * 16: problems.append(f"{dom_cells} heat-map cells in the rendered DOM, expected 32 (16 P, two maps)")
    if purple < 40 or yellow < 40: problems.append(f"heat-map colours missing ({purple} pixels of the worst end, {yellow} of the best)")
if problems:
    print(f"test-report-render: {page}.html FAILED: " + "; ".join(problems), file=sys.stderr); sys.exit(1)
print(f"test-report-render: {page}.html rendered {width}x{height}: {100 * ink / total:.1f} % ink, {blue} + {red} bar pixels, {charts} charts, {dom_bars} bars"
      + (f", {dom_cells} heat-map cells ({purple} + {yellow} scale-end pixels)" if page == "sweep" else "") + " in the DOM")
PY
done
if [ -n "$keep" ]; then mkdir -p "$keep" && cp "$work"/*.html "$work"/*.png "$keep"/; fi
exit $status
