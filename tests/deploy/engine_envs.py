"""The engines' published releases, each in a virtual environment of its own, for the parser tests.

The flag tables in ``stockpile/data/engines`` were extracted from one release of each engine, and
``test_deploy_flags.py`` checks every argv the exporters emit against that release's own CLI code
(``engine_parse.py``, run by the engine env's python). The engines pin torch builds of their own (CUDA
ones: no CPU build on PyPI matches their pins), so they never enter the project's venv: each gets
``<root>/<table>-<version>/``, root being ``$STOCKPILE_ENGINE_ENVS`` or the user cache dir
(``~/.cache/stockpile/engines`` on Linux).

Installing: the engine's wheel is downloaded first and its sha256 checked against the table header, then
installed with its dependencies (no bytecode: Python compiles what the parser imports on first use).
Files identical to ones another engine env already has (same distribution, version and RECORD hash:
the engines share most of their CUDA stack) become hard links to them. A marker file written last makes
later runs instant; an env without a matching marker (an interrupted install) is wiped and rebuilt, and
an env of a release the table no longer pins is removed once the new one is ready.

    python tests/deploy/engine_envs.py             # install what is missing (`make engines`)
    python tests/deploy/engine_envs.py --status    # where each env lives and whether it is ready
"""

from __future__ import annotations

import argparse
import csv
import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

# flag table name -> distribution on PyPI
ENGINES = {"vllm": "vllm", "sglang": "sglang", "sglang_router": "sglang-router", "vllm_router": "vllm-router"}
MARKER = ".stockpile-engine.json"
PARSE_CACHE = ".stockpile-parse-cache.json"
HERE = Path(__file__).resolve().parent
TABLES = HERE.parents[1] / "stockpile" / "data" / "engines"
CHECKER = HERE / "engine_parse.py"


def root() -> Path:
    """Where the engine envs live: $STOCKPILE_ENGINE_ENVS, else <user cache dir>/engines."""
    if env := os.environ.get("STOCKPILE_ENGINE_ENVS"):
        return Path(env).expanduser().resolve()
    import platformdirs

    return Path(platformdirs.user_cache_dir("stockpile", appauthor=False)) / "engines"


def header(table: str) -> dict[str, str]:
    """The table's release pin: version, wheel file name and its sha256."""
    raw = yaml.safe_load((TABLES / f"{table}.yaml").read_text())
    return {"version": str(raw["version"]), "wheel": raw.get("wheel", ""), "wheel_sha256": raw.get("wheel_sha256", "")}


def env_dir(table: str) -> Path:
    return root() / f"{table}-{header(table)['version']}"


def _marker(env: Path) -> dict:
    try:
        return json.loads((env / MARKER).read_text())
    except (OSError, ValueError):
        return {}


def python(table: str) -> Path | None:
    """The env's interpreter if the pinned release installed there completely, else None."""
    env, marker = env_dir(table), _marker(env_dir(table))
    exe = env / "bin" / "python"
    ok = marker.get("package") == ENGINES[table] and marker.get("version") == header(table)["version"]
    return exe if ok and exe.exists() else None


def _site_packages(env: Path) -> Path:
    (sp,) = (env / "lib").glob("python3*/site-packages")
    return sp


def _records(env: Path) -> dict[str, dict[str, str]]:
    """Per installed distribution (its dist-info name, version included): {file: RECORD hash}."""
    out = {}
    for record in _site_packages(env).glob("*.dist-info/RECORD"):
        with open(record, newline="") as f:
            out[record.parent.name] = {row[0]: row[1] for row in csv.reader(f) if len(row) >= 2 and row[1]}
    return out


def share_files(env: Path) -> int:
    """Hard-link the env's files that a ready engine env already holds byte for byte; bytes saved."""
    mine, sp, saved = _records(env), _site_packages(env), 0
    for other in sorted(p.parent for p in root().glob(f"*/{MARKER}")):
        if other == env:
            continue
        theirs, other_sp = _records(other), _site_packages(other)
        for dist, files in mine.items():
            for rel, digest in files.items():
                if rel.startswith("..") or theirs.get(dist, {}).get(rel) != digest:
                    continue
                src, dst = other_sp / rel, sp / rel
                try:
                    if src.is_symlink() or dst.is_symlink() or src.stat().st_ino == dst.stat().st_ino:
                        continue
                    link = dst.with_name(dst.name + ".stockpile-link")
                    os.link(src, link)
                    os.replace(link, dst)
                    saved += dst.stat().st_size
                except OSError:  # another filesystem, a missing file: keep the copy
                    continue
        mine = {d: {r: h for r, h in fs.items() if theirs.get(d, {}).get(r) != h} for d, fs in mine.items()}
    return saved


def _du(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def _pip(exe: Path, *args: str) -> None:
    subprocess.run([str(exe), "-m", "pip", "--disable-pip-version-check", "--quiet", *args], check=True)


def install(table: str) -> None:
    pin, dist, env = header(table), ENGINES[table], env_dir(table)
    print(f"engine envs: installing {dist}=={pin['version']} into {env} (first run only)", flush=True)
    start = time.monotonic()
    if env.exists():
        shutil.rmtree(env)
    subprocess.run([sys.executable, "-m", "venv", str(env)], check=True)
    exe = env / "bin" / "python"
    _pip(exe, "install", "--upgrade", "pip")
    with tempfile.TemporaryDirectory(dir=root()) as tmp:
        _pip(exe, "download", "--no-deps", "--only-binary=:all:", "-d", tmp, f"{dist}=={pin['version']}")
        (wheel,) = Path(tmp).glob("*.whl")
        digest = hashlib.sha256(wheel.read_bytes()).hexdigest()
        if wheel.name == pin["wheel"] and digest != pin["wheel_sha256"]:
            raise SystemExit(f"engine envs: {wheel.name} has sha256 {digest}, but the table "
                             f"{table}.yaml was extracted from {pin['wheel_sha256']}")
        _pip(exe, "install", "--no-cache-dir", "--no-compile", str(wheel))
    size, shared = _du(env), share_files(env)
    took = time.monotonic() - start
    (env / MARKER).write_text(json.dumps({"package": dist, "version": pin["version"], "wheel": wheel.name,
                                          "wheel_sha256": digest, "seconds": round(took), "bytes": size,
                                          "bytes_shared": shared}, indent=1) + "\n")
    print(f"engine envs: {dist} {pin['version']} ready in {took:.0f} s, {size / 1e9:.2f} GB "
          f"({shared / 1e9:.2f} GB of it hard links shared with the other engine envs)", flush=True)
    for stale in root().glob(f"{table}-*"):  # other releases of this engine, pinned before
        if stale != env and (stale / "bin").is_dir():
            print(f"engine envs: removing {stale} (the table now pins {pin['version']})", flush=True)
            shutil.rmtree(stale)


def ensure(tables: list[str]) -> None:
    """Install every missing env; one installer at a time (a lock file under the root)."""
    root().mkdir(parents=True, exist_ok=True)
    with open(root() / ".lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        for table in tables:
            if python(table) is None:
                install(table)


def parse_argvs(batches: dict[str, list[list[str]]], workdir: Path, timeout: float = 600) -> dict[str, dict]:
    """Parse each table's argvs with its engine's own CLI code (engine_parse.py in the engine's env).

    One subprocess per table, all running at once (importing an engine takes seconds). Per table:
    ``{"version": ..., "results": [...]}`` from engine_parse.py, ``{"missing": why}`` when the env is
    not installed, or ``{"failed": log}`` when the checker itself crashed. An answer is kept in the env
    (PARSE_CACHE) and reused while the argvs, the checker and the installed env are the same.
    """
    out: dict[str, dict] = {}
    running = []
    env = {**os.environ, "VLLM_TARGET_DEVICE": "cpu", "HF_HUB_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1"}
    env.pop("PYTHONDONTWRITEBYTECODE", None)  # installed without bytecode: keep what the first parse compiles
    for table, argvs in batches.items():
        exe = python(table) if table in ENGINES else None
        if exe is None:
            out[table] = {"missing": f"{table} {header(table)['version']} is not installed at "
                          f"{env_dir(table)}: run `make engines`" if table in ENGINES
                          else f"no engine env is defined for table {table} (tests/deploy/engine_envs.py)"}
            continue
        key = hashlib.sha256(json.dumps([(env_dir(table) / MARKER).read_text(), CHECKER.read_text(), argvs])
                             .encode()).hexdigest()
        cache = env_dir(table) / PARSE_CACHE
        try:
            cached = json.loads(cache.read_text())
        except (OSError, ValueError):
            cached = {}
        if cached.get("key") == key:
            out[table] = cached["answer"]
            continue
        src, dst, log = (workdir / f"{table}.{ext}" for ext in ("in.json", "out.json", "log"))
        src.write_text(json.dumps(argvs))
        with open(log, "w") as f:
            proc = subprocess.Popen([str(exe), str(CHECKER), table, str(src), str(dst)], cwd=workdir, env=env,
                                    stdout=f, stderr=subprocess.STDOUT)
        running.append((table, proc, dst, log, cache, key))
    for table, proc, dst, log, cache, key in running:
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            code = proc.wait()
        if code == 0 and dst.exists():
            out[table] = json.loads(dst.read_text())
            cache.write_text(json.dumps({"key": key, "answer": out[table]}))
        else:
            out[table] = {"failed": f"{CHECKER.name} {table} exited with {code}:\n{log.read_text()[-4000:]}"}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("tables", nargs="*", metavar="TABLE", help=f"which of {', '.join(ENGINES)} (default: all)")
    ap.add_argument("--status", action="store_true", help="print where each env is and whether it is ready")
    args = ap.parse_args()
    tables = args.tables or list(ENGINES)
    if unknown := set(tables) - set(ENGINES):
        ap.error(f"unknown engine table(s) {sorted(unknown)}; known: {list(ENGINES)}")
    if args.status:
        for t in tables:
            print(f"{t} {header(t)['version']}: {env_dir(t)} {'ready' if python(t) else 'missing'}")
        return
    ensure(tables)


if __name__ == "__main__":
    main()
