#!/usr/bin/env bash
# Set up .venv in the repository root with everything softlines-attr needs (idempotent).
# Checks Python 3.11 and Java 17+ (Spark 4 needs it) and says exactly how to get what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

VENV=.venv
STAMP="$VENV/.installed"

find_python() {
  for cand in "${PYTHON:-}" python3.11 python3; do
    [ -n "$cand" ] || continue
    if command -v "$cand" >/dev/null 2>&1 && "$cand" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' 2>/dev/null; then
      echo "$cand"; return 0
    fi
  done
  return 1
}

check_java() {
  local java_bin=java
  [ -n "${JAVA_HOME:-}" ] && java_bin="$JAVA_HOME/bin/java"
  if ! command -v "$java_bin" >/dev/null 2>&1; then
    cat >&2 <<'MSG'
error: Java was not found. Spark 4 needs Java 17 or newer. Install it, then rerun:
  Debian/Ubuntu:  sudo apt-get update && sudo apt-get install -y openjdk-17-jre-headless
  Amazon Linux:   sudo dnf install -y java-17-amazon-corretto-headless
  macOS:          brew install openjdk@17 && export JAVA_HOME="$(brew --prefix openjdk@17)"
or point JAVA_HOME at an existing JDK 17+.
MSG
    exit 1
  fi
  local version major
  version=$("$java_bin" -version 2>&1 | awk -F'"' '/version/ {print $2; exit}')
  major=${version%%.*}
  if [ -z "$major" ] || [ "$major" -lt 17 ] 2>/dev/null; then
    echo "error: Java $version found at $(command -v "$java_bin"); Spark 4 needs Java 17 or newer (see above for how to install it)." >&2
    exit 1
  fi
}

PY=$(find_python) || {
  echo "error: Python 3.11 was not found (tried \$PYTHON, python3.11, python3). mxnet 1.9.1 and pyspark 4 need it." >&2
  echo "  Debian/Ubuntu: sudo apt-get install -y python3.11 python3.11-venv   or use pyenv: pyenv install 3.11" >&2
  exit 1
}
check_java

want=$(cat setup.py pyproject.toml | sha256sum | cut -c1-16)
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$want" ] && [ -x "$VENV/bin/python" ]; then
  exit 0
fi
echo "setting up $VENV with $PY ($("$PY" --version 2>&1)) ..."
[ -x "$VENV/bin/python" ] || "$PY" -m venv "$VENV"
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip 'setuptools>=64' wheel
"$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -e '.[test,bench]'
"$VENV/bin/python" -c 'import mxnet, pyspark, pyarrow, numpy; print("installed: mxnet", mxnet.__version__, "pyspark", pyspark.__version__, "pyarrow", pyarrow.__version__, "numpy", numpy.__version__)'
echo "$want" > "$STAMP"
