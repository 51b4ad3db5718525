# Sourced by the scripts: the one rule for which Python runs the cross-checks, fixtures and
# benchmark baselines (the Swift tests and mbbench follow it too):
#   $MBCONVERT_PYTHON when set, else the checkout's .venv/bin/python (Scripts/setup.sh makes
#   it from Scripts/requirements.txt) when it exists, else python3 on the PATH.
_mb_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
if [ -z "${MBCONVERT_PYTHON:-}" ]; then
  if [ -x "$_mb_root/.venv/bin/python" ]; then MBCONVERT_PYTHON="$_mb_root/.venv/bin/python"; else MBCONVERT_PYTHON=python3; fi
fi
export MBCONVERT_PYTHON
unset _mb_root
