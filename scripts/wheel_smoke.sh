#!/usr/bin/env bash
# Build the ntkbook wheel, install it into a fresh venv with only its declared dependencies, and run
# scripts/wheel_smoke.py there (outside the repository, so the source tree cannot be imported).
#   scripts/wheel_smoke.sh             newest versions the declared ranges allow
#   scripts/wheel_smoke.sh --minimum   every dependency at its declared minimum (">=" read as "==")
#   scripts/wheel_smoke.sh --pins      the dependencies at the pins of requirements.txt
# Needs only the package index (PyPI, or pip's configured index): the build backend and the
# dependencies are downloaded by pip; nothing else is fetched.
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD
mode=${1:-}
PYTHON=${PYTHON:-python3}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

# Built from a copy of the working tree (tracked and untracked, not ignored files), so the build
# leaves no build/ or *.egg-info behind and sees no stale ones.
mkdir "$work/src"
if git rev-parse --is-inside-work-tree >/dev/null 2>&1; then
  git ls-files -z --cached --others --exclude-standard | tar -cf - --null -T - | tar -xf - -C "$work/src"
else  # an unpacked sdist or archive: everything but build outputs and environments
  tar -cf - --exclude=./.venv --exclude=./_build --exclude=./build --exclude='*.egg-info' . \
    | tar -xf - -C "$work/src"
fi
"$PYTHON" -m pip wheel --quiet --no-deps --wheel-dir "$work/dist" "$work/src"
wheel=$(ls "$work"/dist/ntkbook-*.whl)
echo "built $(basename "$wheel")"
"$PYTHON" -m venv "$work/venv"
py=$work/venv/bin/python
"$py" -m pip install --quiet --upgrade pip

case "$mode" in
  "") "$py" -m pip install --quiet "$wheel" ;;
  --pins) "$py" -m pip install --quiet -c requirements.txt "$wheel" ;;
  --minimum)
    "$PYTHON" - > "$work/minimum.txt" <<'PY'
import re, tomllib
deps = tomllib.load(open("pyproject.toml", "rb"))["project"]["dependencies"]
for d in deps:
    m = re.fullmatch(r"([A-Za-z0-9_.-]+)>=([0-9.]+)", d.replace(" ", ""))
    if m is None:
        raise SystemExit(f"--minimum: cannot read a minimum from {d!r}")
    print(f"{m[1]}=={m[2]}")
PY
    echo "minimum versions: $(tr '\n' ' ' < "$work/minimum.txt")"
    "$py" -m pip install --quiet -c "$work/minimum.txt" "$wheel" ;;
  *) echo "usage: $0 [--minimum|--pins]" >&2; exit 2 ;;
esac
"$py" -m pip list --format=freeze | grep -iE '^(ntkbook|jax|jaxlib|numpy|scipy|matplotlib|scikit-learn)=='
(cd "$work" && "$py" "$repo/scripts/wheel_smoke.py")
