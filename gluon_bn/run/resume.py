"""What identifies a checkpointed run (its configuration, its folder, its generator seeds) and
the runtime it trained with, read back before MXNet loads.

A seed's numbers follow the OpenMP thread count, the engine's wait policy aside, and the
instruction set oneDNN dispatches to, so a resumed run continues the same run only under
the same runtime: every checkpoint's ``config.json`` holds it under ``runtime``
(:func:`runtime_state`, written when the epoch is saved, so a count dropped mid-run is the
one kept), and ``--resume`` restores it whatever the load (:func:`saved_runtime`, then
:class:`gluon_bn.runtime.select.Request`'s ``restore``). This module never imports MXNet.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path
from typing import Iterable, Optional

MANIFEST = "manifest.json"  # written last: a checkpoint without it is incomplete
# Options that may differ between the run that wrote a checkpoint and the one resuming it.
_FREE_OPTIONS = ("variants", "seeds", "epochs", "data_root", "sync_every_batch")
EPOCH_DIR = re.compile(r"^epoch-(\d{4,})$")  # one epoch's checkpoint folder


def safe_name(text: str) -> str:
    """Return `text` as a folder name: every run of other characters becomes one ``-``."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text)


def run_directory(root: Path, recipe_name: str, variant: str, seed: int) -> Path:
    """Return the checkpoint folder of one run: ``ROOT/<recipe>/<variant>-seed<seed>``."""
    return Path(root) / safe_name(recipe_name) / f"{safe_name(variant)}-seed{seed}"


def mxnet_seed(seed: int, epoch: int) -> int:
    """Return the MXNet seed of `epoch` (1-based) of the run seeded with `seed`.

    Parameters
    ----------
    seed : int
        The run's seed.
    epoch : int
        The epoch about to start.

    Returns
    -------
    int
        A seed in ``[0, 2**31)`` that depends only on (`seed`, `epoch`).
    """
    digest = hashlib.sha256(f"gluon-bn/mxnet/{seed}/{epoch}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def run_config(recipe_name: str, variant: str, seed: int, options) -> dict:
    """Return what identifies a run for checkpointing: recipe, variant, seed and options.

    Parameters
    ----------
    recipe_name : str
        As given to ``gluon-bn reproduce`` (``NAME[:ALTERNATIVE]``).
    variant : str
        "scratch", "gluon" or "plain".
    seed : int
        The run's seed.
    options : gluon_bn.options.RunOptions or ResolvedRun
        The run's options, resolved against the recipe (:meth:`RunOptions.resolve`).

    Returns
    -------
    dict
        JSON-serialisable; ``options`` holds only what must match on resume.
    """
    from gluon_bn.options import RunOptions
    from gluon_bn.recipes import get_recipe

    recipe = get_recipe(recipe_name)
    run = options.resolve(recipe) if isinstance(options, RunOptions) else options
    fixed = {k: v for k, v in run.config().items() if k not in _FREE_OPTIONS}
    return {
        "recipe": recipe.name,
        "variant": variant,
        "seed": seed,
        "epochs": run.epochs,
        "options": fixed,
    }


def runtime_state() -> dict:
    """Return the runtime this process trains with now (MXNet loaded): what a checkpoint keeps.

    ``omp_threads`` (as set mid-run, if it was), ``engine``, ``wait`` (``OMP_WAIT_POLICY``),
    ``isa_cap`` (``DNNL_MAX_CPU_ISA``) and ``onednn_isa`` (what oneDNN dispatches to).
    """
    from gluon_bn.runtime.loader import LOADED_WITH
    from gluon_bn.runtime.machine import onednn_isa
    from gluon_bn.runtime.watch import threads_now

    return {
        "omp_threads": threads_now(),
        "engine": LOADED_WITH.get("MXNET_ENGINE_TYPE"),
        "wait": LOADED_WITH.get("OMP_WAIT_POLICY"),
        "isa_cap": LOADED_WITH.get("DNNL_MAX_CPU_ISA"),
        "onednn_isa": onednn_isa(LOADED_WITH),
    }


def _newest_complete(directory: Path) -> Optional[Path]:
    """The newest checkpoint folder of one run whose manifest was written, or None."""
    if not directory.is_dir():
        return None
    found = sorted(
        (int(m.group(1)), path)
        for path in directory.iterdir()
        if (m := EPOCH_DIR.match(path.name)) and (path / MANIFEST).is_file()
    )
    return found[-1][1] if found else None


def saved_runtime(
    root: Path, recipe_name: str, variants: Iterable[str], seeds: Iterable[int]
) -> Optional[dict]:
    """Return the runtime of the checkpoint a ``--resume`` continues, or None.

    The runs go seed by seed, variant by variant, so the last run in that order with a
    checkpoint is the one the interrupted process was training. None when no run has a
    checkpoint; ``{}`` when it has one written before checkpoints kept their runtime.

    Parameters
    ----------
    root : Path
        ``--checkpoint-dir``.
    recipe_name : str
        As given to ``reproduce``.
    variants, seeds
        The planned runs.
    """
    last = None
    for seed in seeds:
        for variant in variants:
            path = _newest_complete(run_directory(root, recipe_name, variant, seed))
            if path is not None:
                last = path
    if last is None:
        return None
    try:
        config = json.loads((last / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None  # a damaged checkpoint: the resume itself says what is wrong
    runtime = config.get("runtime") if isinstance(config, dict) else None
    return dict(runtime, checkpoint=os.fspath(last)) if isinstance(runtime, dict) else {}
