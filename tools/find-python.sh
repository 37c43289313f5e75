#!/usr/bin/env bash
# Prints the path of a CPython 3.10 (Rasa 3.6 runs on nothing newer), or says how to get one.
set -euo pipefail

is_310() { "$1" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 10))' 2>/dev/null; }

if [ -n "${PYTHON310:-}" ] && is_310 "$PYTHON310"; then echo "$PYTHON310"; exit 0; fi
if command -v python3.10 >/dev/null 2>&1 && is_310 "$(command -v python3.10)"; then
  command -v python3.10; exit 0
fi
if command -v pyenv >/dev/null 2>&1; then
  for candidate in $(ls -d "$(pyenv root)"/versions/3.10.* 2>/dev/null | sort -V -r); do
    if is_310 "$candidate/bin/python3.10"; then echo "$candidate/bin/python3.10"; exit 0; fi
  done
fi
for candidate in "$HOME"/.pyenv/versions/3.10.*/bin/python3.10 /usr/local/bin/python3.10 /usr/bin/python3.10; do
  if [ -x "$candidate" ] && is_310 "$candidate"; then echo "$candidate"; exit 0; fi
done

cat >&2 <<'MSG'
error: CPython 3.10 was not found, and Rasa 3.6 runs on nothing newer.
Install it with one of:
  uv python install 3.10            (then set PYTHON310=$(uv python find 3.10))
  pyenv install 3.10.13
  apt-get install python3.10 python3.10-venv   (where your distribution has it)
or point PYTHON310 at a python3.10 binary.
MSG
exit 1
