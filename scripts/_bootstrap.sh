# Sourced by scripts/*: create .venv and install the package (and extras) when pyproject changes.
# Usage: bootstrap [extra]   e.g. bootstrap test
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${CPIMS_ADAPTER_VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3}"

bootstrap() {
  local extra="${1:-}"
  if ! "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    echo "cpims-adapter needs Python 3.11 or newer (found: $("$PYTHON" --version 2>&1))." >&2
    exit 2
  fi
  if [ ! -x "$VENV/bin/python" ]; then
    echo "==> creating $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local spec="$ROOT"
  [ -n "$extra" ] && spec="$ROOT[$extra]"
  local stamp="$VENV/.cpims-installed-${extra:-base}"
  local want
  want="$(cat "$ROOT/pyproject.toml" | sha256sum | cut -d' ' -f1)"
  if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$want" ]; then
    echo "==> installing cpims-adapter${extra:+ with [$extra]} into $VENV"
    "$VENV/bin/python" -m pip install --quiet --upgrade pip
    "$VENV/bin/python" -m pip install --quiet -e "$spec"
    echo "$want" > "$stamp"
  fi
}
