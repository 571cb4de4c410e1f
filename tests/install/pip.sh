#!/usr/bin/env bash
# `pip install --no-build-isolation .` works offline: it builds the extension with the project's
# CMake build and installs a package that imports and runs, from a folder that is not the
# source tree.
#   tests/install/pip.sh PYTHON SOURCE_DIR WORK_DIR
set -euo pipefail
python="$1" source="$2" work="$3"
rm -rf "$work"
mkdir -p "$work"
PIP_NO_INDEX=1 PIP_DISABLE_PIP_VERSION_CHECK=1 ENTITY_JOBS=1 \
  "$python" -m pip install --no-build-isolation --no-deps --target "$work/site" "$source" \
  >"$work/pip.log" 2>&1 || { tail -n 40 "$work/pip.log"; exit 1; }
cd "$work"
PYTHONPATH="$work/site" "$python" - <<'PY'
import asyncio, os
import entity_db
assert entity_db.__file__.startswith(os.getcwd()), entity_db.__file__
db = entity_db.open("installed.db")
mem = db.memory()
mem.store_sync("k", {"installed": True})
async def main():
    assert await mem.load("k") == {"installed": True}
    await db.close()
asyncio.run(main())
print("pip install: ok")
PY
