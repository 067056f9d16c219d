#!/usr/bin/env bash
# Build the wheel and the sdist, then install each into a fresh virtual environment and import
# the package there. Exits non-zero if anything fails.
#
#   scripts/check_dist.sh            # uses .venv/bin/python (which needs the `build` package)
#   PYTHON=python3.12 scripts/check_dist.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
python=${PYTHON:-$root/.venv/bin/python}
work=$(mktemp -d "${TMPDIR:-/tmp}/sqs-cluster-dist.XXXXXX")
trap 'rm -rf "$work"' EXIT

expected=$("$python" -c 'import tomllib; print(tomllib.load(open("pyproject.toml", "rb"))["project"]["version"])' 2>/dev/null ||
  sed -n 's/^version = "\(.*\)"$/\1/p' pyproject.toml | head -n1)

echo "+ python -m build --outdir $work/dist"
"$python" -m build --outdir "$work/dist" >"$work/build.log" 2>&1 || {
  cat "$work/build.log" >&2
  exit 1
}
wheel=$(ls "$work"/dist/*.whl)
sdist=$(ls "$work"/dist/*.tar.gz)
echo "  built $(basename "$wheel") and $(basename "$sdist")"

# What went into the archives: the package, nothing from the developer's machine.
"$python" - "$wheel" "$sdist" <<'PY'
import sys
import tarfile
import zipfile

wheel, sdist = sys.argv[1], sys.argv[2]
names = zipfile.ZipFile(wheel).namelist()
for needed in ("sqs_cluster/__init__.py", "sqs_cluster/py.typed", "sqs_cluster/local/__init__.py",
               "sqs_cluster/pytest_plugin.py", "sqs_cluster/sync/__init__.py",
               "sqs_cluster/_dashboard/static/app.js", "sqs_cluster/_dashboard/static/style.css"):
    assert needed in names, f"wheel lacks {needed}"
entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
text = zipfile.ZipFile(wheel).read(entry_points).decode()
assert "[pytest11]" in text and "sqs_cluster.pytest_plugin" in text, text
assert "sqs-cluster = sqs_cluster._cli.main:main" in text, text

members = [m.split("/", 1)[1] for m in tarfile.open(sdist).getnames() if "/" in m]
for needed in ("pyproject.toml", "README.md", "CHANGELOG.md", "src/sqs_cluster/__init__.py",
               "src/sqs_cluster/py.typed", "templates/sqs-cluster.yaml"):
    assert needed in members, f"sdist lacks {needed}"
for bad in (".venv/", ".git/", ".nox/", "site/", "dist/", "__pycache__/", ".mypy_cache/",
            ".ruff_cache/", ".pytest_cache/", "benchmarks/results/"):
    leaked = [m for m in members if m.startswith(bad) or f"/{bad}" in m]
    assert not leaked, f"sdist contains {bad}: {leaked[:3]}"
print(f"  wheel: {len(names)} files; sdist: {len(members)} files; contents as expected")
PY

check() {  # check <label> <file to install>
  local label=$1 dist=$2 env="$work/env-$1"
  echo "+ fresh venv, pip install $(basename "$dist")"
  "$python" -m venv "$env"
  "$env/bin/python" -m pip install -q --disable-pip-version-check "$dist" >"$work/pip-$label.log" 2>&1 || {
    cat "$work/pip-$label.log" >&2
    return 1
  }
  local got
  got=$(cd "$work" && "$env/bin/python" -c "import sqs_cluster, sqs_cluster.local, sqs_cluster.sync; print(sqs_cluster.__version__)")
  if [ "$got" != "$expected" ]; then
    echo "$label: imported version $got, expected $expected" >&2
    return 1
  fi
  (cd "$work" && "$env/bin/sqs-cluster" --help >/dev/null)
  echo "  $label: import sqs_cluster, sqs_cluster.local: version $got; sqs-cluster --help works"
}

# The two installs are independent: run them side by side, then report both.
check wheel "$wheel" >"$work/check-wheel.out" 2>&1 &
wheel_pid=$!
check sdist "$sdist" >"$work/check-sdist.out" 2>&1 &
sdist_pid=$!
status=0
wait "$wheel_pid" || status=1
wait "$sdist_pid" || status=1
cat "$work/check-wheel.out" "$work/check-sdist.out"
if [ "$status" -ne 0 ]; then
  echo "dist check failed" >&2
  exit 1
fi
echo "dist check passed"
