"""Interop: a memory file is one format for Python, the entitydb CLI and plain sqlite3 + json."""

import json
import os
import sqlite3
import subprocess
from pathlib import Path

import pytest

import entity_db
from conftest import ROOT

VALUES = {
    "user:42": {"name": "Ada", "tags": ["math"], "born": 1815, "score": 9.75, "alive": False},
    "list": [1, "two", None, True, [3.5, {"deep": "ü✓日本🐍"}]],
    "text": "ünïcödé \"quoted\" \\ \n end",
    "int": 2**63 - 1,
    "neg": -12,
    "float": 0.1,
    "null": None,
    "true": True,
    "empty": {},
}


@pytest.fixture(scope="module")
def cli():
    path = Path(os.environ.get("ENTITYDB_BIN") or ROOT / "build/tools/entitydb/entitydb")
    if not (path.is_file() and os.access(path, os.X_OK)):
        pytest.fail(f"the entitydb CLI is missing: {path} (build it, or set ENTITYDB_BIN)",
                    pytrace=False)
    return str(path)


def run(cli, *args):
    proc = subprocess.run([cli, *args], capture_output=True, text=True, timeout=60)
    return proc


def cli_get(cli, db_path, key, scope=None):
    args = ["memory", "get", key, "--db", db_path]
    if scope:
        args += ["--scope", scope]
    proc = run(cli, *args)
    assert proc.returncode == 0, f"entitydb {' '.join(args)}: {proc.stderr}"
    return json.loads(proc.stdout)


def cli_put(cli, db_path, key, value, scope=None):
    args = ["memory", "put", key, json.dumps(value, ensure_ascii=False), "--db", db_path]
    if scope:
        args += ["--scope", scope]
    proc = run(cli, *args)
    assert proc.returncode == 0, f"entitydb {' '.join(args)}: {proc.stderr}"


def test_python_writes_the_cli_reads(cli, tmp_path):
    path = str(tmp_path / "mem.db")
    db = entity_db.open(path)
    try:
        mem = db.memory()
        mem.batch_store_sync(VALUES)
        mem.scope("agent").store_sync("note", ["scoped", 1])
        # Read while the database is open here.
        for key, value in VALUES.items():
            assert cli_get(cli, path, key) == value, key
        assert cli_get(cli, path, "note", scope="agent") == ["scoped", 1]
        keys = run(cli, "memory", "keys", "--db", path).stdout.split()
        assert keys == sorted(list(VALUES) + ["agent:note"])
    finally:
        db.close_sync()
    # And once it is closed.
    assert cli_get(cli, path, "user:42") == VALUES["user:42"]
    missing = run(cli, "memory", "get", "missing", "--db", path)
    assert missing.returncode == 1


@pytest.mark.asyncio
async def test_python_async_writes_the_cli_reads(cli, tmp_path):
    path = str(tmp_path / "mem.db")
    async with entity_db.open(path) as db:
        mem = db.memory()
        await mem.store("k", {"async": True})
        assert cli_get(cli, path, "k") == {"async": True}


@pytest.mark.asyncio
async def test_the_cli_writes_python_reads(cli, tmp_path):
    path = str(tmp_path / "mem.db")
    for key, value in VALUES.items():
        cli_put(cli, path, key, value)
    cli_put(cli, path, "note", {"from": "cli"}, scope="agent")
    db = entity_db.open(path)
    try:
        mem = db.memory()
        for key, value in VALUES.items():
            assert mem.load_sync(key) == value, key
            assert await mem.load(key) == value, key
        assert await mem.scope("agent").load("note") == {"from": "cli"}
        assert mem.scope("agent").keys_sync() == ["note"]
        # A value the CLI replaces while the database is open here is seen at once.
        cli_put(cli, path, "user:42", "replaced")
        assert await mem.load("user:42") == "replaced"
        assert mem.size_sync() == len(VALUES) + 1
    finally:
        db.close_sync()


def test_sqlite3_and_json_read_what_python_wrote(tmp_path):
    path = str(tmp_path / "mem.db")
    db = entity_db.open(path)
    try:
        mem = db.memory()
        mem.batch_store_sync(VALUES)
        mem.scope("s").store_sync("k", [1])
    finally:
        db.close_sync()
    con = sqlite3.connect(path)
    try:
        columns = [(r[1], r[2].upper()) for r in con.execute("PRAGMA table_info(memory)")]
        assert columns == [("key", "TEXT"), ("value", "TEXT")]
        rows = dict(con.execute("SELECT key, value FROM memory"))
    finally:
        con.close()
    assert set(rows) == set(VALUES) | {"s:k"}
    for key, value in VALUES.items():
        assert isinstance(rows[key], str)
        assert json.loads(rows[key]) == value, key
    assert json.loads(rows["s:k"]) == [1]


def test_python_reads_what_sqlite3_wrote(tmp_path):
    path = str(tmp_path / "mem.db")
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE memory (key TEXT PRIMARY KEY, value TEXT)")
    con.executemany("INSERT INTO memory VALUES (?, ?)",
                    [(k, json.dumps(v)) for k, v in VALUES.items()])
    con.execute("INSERT INTO memory VALUES (?, ?)", ("s:k", json.dumps({"scoped": True})))
    con.commit()
    con.close()
    db = entity_db.open(path)
    try:
        mem = db.memory()
        assert mem.batch_load_sync(list(VALUES)) == VALUES
        assert mem.scope("s").load_sync("k") == {"scoped": True}
        assert mem.keys_sync() == sorted(list(VALUES) + ["s:k"])
    finally:
        db.close_sync()


def test_a_stored_value_that_is_not_json_is_a_decode_error(tmp_path):
    path = str(tmp_path / "mem.db")
    con = sqlite3.connect(path)
    con.execute("CREATE TABLE memory (key TEXT PRIMARY KEY, value TEXT)")
    con.execute("INSERT INTO memory VALUES ('bad', '{not json')")
    con.execute("INSERT INTO memory VALUES ('good', '1')")
    con.commit()
    con.close()
    db = entity_db.open(path)
    try:
        mem = db.memory()
        with pytest.raises(entity_db.DecodeError) as info:
            mem.load_sync("bad")
        assert "bad" in info.value.message
        assert mem.load_sync("good") == 1
    finally:
        db.close_sync()
