"""What this machine is, as records and caches name it: the CPU model and vector extensions, the
instruction set MXNet's oneDNN dispatches to (asked of oneDNN itself, cached) and its cap
(``--isa``), and the key the runtime caches are stored under. No MXNet is imported here.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import sys
from pathlib import Path
from typing import Dict, Mapping, Optional

from gluon_bn.cache import cache_root
from gluon_bn.harness import runtime_environment, write_atomically
from gluon_bn.runtime.settings import usable_cores

CACHE_VERSION = 1
# --isa NAME: oneDNN's cap (DNNL_MAX_CPU_ISA) and the words its verbose mode uses for it.
ISAS = {
    "sse41": ("SSE41", "Intel SSE4.1"),
    "avx": ("AVX", "Intel AVX"),
    "avx2": ("AVX2", "Intel AVX2"),
    "avx512": ("AVX512_CORE", "Intel AVX-512"),
}
ISA_LINE = "dnnl_verbose,info,cpu,isa:"


def cpu_description() -> Dict[str, object]:
    """Return the CPU's model name and its vector extensions, from /proc/cpuinfo (Linux).

    MXNet's CPU kernels pick their instructions at run time, so the same seed can round
    differently on another CPU model: records keep what they ran on.
    """
    model, flags = None, set()
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                if key.strip() == "model name" and model is None:
                    model = value.strip()
                elif key.strip() == "flags" and not flags:
                    flags = set(value.split())
    except OSError:
        pass
    vector = sorted(f for f in flags if f.startswith(("avx", "fma", "sse4")))
    return {"cpu_model": model, "cpu_vector_extensions": vector}


def machine_key(environ: Optional[Mapping[str, str]] = None) -> Dict[str, object]:
    """Return what identifies a machine for the cache: CPU model, cores, ISA cap, MXNet version."""
    environ = os.environ if environ is None else environ
    try:
        mxnet_version = importlib.metadata.version("mxnet")
    except importlib.metadata.PackageNotFoundError:
        mxnet_version = next(
            (
                d.version
                for d in importlib.metadata.distributions()
                if (d.metadata["Name"] or "").lower().startswith("mxnet")
            ),
            None,
        )
    return {
        "cpu_model": cpu_description()["cpu_model"],
        "usable_cores": usable_cores(),
        "mxnet": mxnet_version,
        "isa_cap": environ.get("DNNL_MAX_CPU_ISA") or None,
        "cache_version": CACHE_VERSION,
    }


def cache_path() -> Path:
    """Return the probe's cache file, under :func:`gluon_bn.cache.cache_root` (``runtime/``)."""
    return cache_root() / "runtime" / "runtime.json"


def save_json(path: Path, data: Mapping[str, object]) -> None:
    """Write `data` to `path` atomically (:func:`gluon_bn.harness.write_atomically`; two runs
    may write at once); skipped silently when the cache directory is not writable."""
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomically(path, lambda p: p.write_text(json.dumps(dict(data), indent=1)))
    except OSError:
        pass


def onednn_isa(
    environ: Optional[Mapping[str, str]] = None, *, path: Optional[Path] = None
) -> Optional[str]:
    """Return the instruction set MXNet's oneDNN dispatches to under `environ`, in its words.

    Read from oneDNN itself: a fresh process runs one convolution with ``DNNL_VERBOSE=1`` and
    oneDNN's ``isa:`` line is kept (about a second, then cached per machine and cap). None
    when oneDNN says nothing (MXNet built without it) or the process fails.
    """
    import subprocess

    environ = dict(os.environ if environ is None else environ)
    path = path or cache_path().with_name("onednn_isa.json")
    key = machine_key(environ)
    try:
        entry = json.loads(path.read_text())
        if entry.get("key") == key and isinstance(entry.get("isa"), str):
            return entry["isa"]
    except (OSError, ValueError, AttributeError):
        pass
    env = runtime_environment({"OMP_NUM_THREADS": "1"})
    env = {k: v for k, v in env.items() if k != "DNNL_MAX_CPU_ISA"}
    if environ.get("DNNL_MAX_CPU_ISA"):
        env["DNNL_MAX_CPU_ISA"] = environ["DNNL_MAX_CPU_ISA"]
    env["DNNL_VERBOSE"] = "1"
    code = (
        "from gluon_bn.runtime.loader import mx; x = mx.nd.ones((1, 1, 8, 8)); "
        "w = mx.nd.ones((2, 1, 3, 3)); "
        "mx.nd.Convolution(x, w, kernel=(3, 3), num_filter=2, no_bias=True).wait_to_read()"
    )
    try:
        proc = subprocess.run(
            [sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120
        )
    except (OSError, subprocess.SubprocessError):
        return None
    isa = next(
        (
            line[len(ISA_LINE) :].strip()
            for line in proc.stdout.splitlines()
            if line.startswith(ISA_LINE)
        ),
        None,
    )
    if isa is not None:
        save_json(path, {"key": key, "isa": isa})
    return isa


def pin_isa(name: str, environ: Optional[dict] = None) -> str:
    """Cap oneDNN at ISA `name` (``--isa``) before MXNet loads; return the one line to print.

    Raises
    ------
    ValueError
        For an unknown name, or when this CPU lacks that instruction set (oneDNN then runs a
        lower one, whose numbers would not be the pinned ISA's).
    """
    environ = os.environ if environ is None else environ
    if name not in ISAS:
        raise ValueError(f"--isa must be one of {', '.join(ISAS)}, got {name!r}")
    cap, words = ISAS[name]
    trial = dict(environ, DNNL_MAX_CPU_ISA=cap)
    found = onednn_isa(trial)
    if found is not None and found != words:
        raise ValueError(
            f"--isa {name}: this CPU runs oneDNN at {found!r}, not {words!r} "
            f"(the CPU lacks {name}); choose a lower --isa"
        )
    environ["DNNL_MAX_CPU_ISA"] = cap
    return f"isa: oneDNN capped at {words} (DNNL_MAX_CPU_ISA={cap}; recorded as onednn_isa)"
