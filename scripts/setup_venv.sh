#!/usr/bin/env bash
# Create or refresh the project's virtual environment (.venv) from the requirements files.
# Idempotent: does nothing when .venv matches the requirements; quiet unless it installs.
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="$repo/.venv"
stamp="$venv/.requirements.sha256"
wanted="$(cat "$repo/requirements.txt" "$repo/requirements-dev.txt" | sha256sum | cut -d' ' -f1)"
if [[ -x "$venv/bin/python" && -f "$stamp" && "$(cat "$stamp")" == "$wanted" ]]; then
  exit 0
fi
echo "Setting up $venv (first run takes about a minute) ..." >&2
python3 -m venv "$venv"
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
"$venv/bin/python" -m pip install --quiet --disable-pip-version-check -r "$repo/requirements-dev.txt"
echo "$wanted" > "$stamp"
