"""Choosing where to run: a GPU only when a kernel really runs there, else the CPU."""

from __future__ import annotations

import sys
from typing import List, Optional, Sequence, TextIO, Tuple, Union

from gluon_bn.runtime.loader import mx

Context = mx.context.Context


def num_gpus() -> int:
    """Return how many GPUs MXNet sees (0 for the CPU wheel or with no driver)."""
    try:
        return mx.context.num_gpus()
    except mx.base.MXNetError:
        return 0


def probe_gpu(index: int = 0) -> Tuple[bool, str]:
    """Run a small elementwise kernel and a convolution on GPU `index`; say whether they ran.

    ``mxnet-cu112`` 1.9.1 carries machine code for sm_50/60/70/80/86 and no PTX, so on a
    Hopper GPU (sm_90) the first kernel fails with "no kernel image is available"; a
    missing cuDNN fails the convolution. Both surface only when something runs and
    synchronises, which is what this does.

    Returns
    -------
    (ok, reason)
        `reason` is empty when `ok`, else one line saying what failed.
    """
    count = num_gpus()
    if index >= count:
        return False, f"no GPU {index} (MXNet sees {count} GPU(s){_cpu_build_note()})"
    try:
        ctx = mx.gpu(index)
        x = mx.nd.ones((1, 1, 8, 8), ctx=ctx)
        w = mx.nd.ones((2, 1, 3, 3), ctx=ctx)
        y = mx.nd.Convolution(x * 2, w, no_bias=True, kernel=(3, 3), num_filter=2)
        total = float(y.sum().asscalar())
    except mx.base.MXNetError as err:
        first = next((line for line in str(err).splitlines() if line.strip()), str(err))
        return False, f"gpu({index}) cannot run MXNet kernels: {first.strip()[:200]}"
    if total != 2 * 9 * 2 * 36:
        return False, f"gpu({index}) computed a wrong result ({total}); not using it"
    return True, ""


def _cpu_build_note() -> str:
    features = mx.runtime.Features()
    return "" if features.is_enabled("CUDA") else "; this is MXNet's CPU build"


def try_gpu(index: int = 0, *, file: Optional[TextIO] = None) -> Context:
    """Return ``mx.gpu(index)`` if a kernel runs there, else ``mx.cpu()`` with a one-line reason.

    Parameters
    ----------
    index : int
        Which GPU.
    file : text stream, optional
        Where the reason goes (default stderr); nothing is printed when the GPU works.
    """
    ok, reason = probe_gpu(index)
    if ok:
        return mx.gpu(index)
    print(f"using cpu(0): {reason}", file=file or sys.stderr)
    return mx.cpu()


def try_all_gpus(*, file: Optional[TextIO] = None) -> List[Context]:
    """Return every GPU that runs kernels, or ``[mx.cpu()]`` (with the reason) if none does."""
    good, reasons = [], []
    for i in range(num_gpus()):
        ok, reason = probe_gpu(i)
        (good if ok else reasons).append(mx.gpu(i) if ok else reason)
    if good:
        return good
    print(
        f"using cpu(0): {'; '.join(reasons) or 'no GPU found' + _cpu_build_note()}",
        file=file or sys.stderr,
    )
    return [mx.cpu()]


def parse_device(spec: str, *, file: Optional[TextIO] = None) -> Union[Context, List[Context]]:
    """Turn ``--device`` text into a context or a list of them.

    ``auto`` (a working GPU, else CPU), ``cpu``, ``gpu`` (must work, else ValueError),
    ``gpu:1``, ``cpu:1``, or a comma-separated list such as ``cpu:0,cpu:1`` (data
    parallel).
    """
    spec = spec.strip().lower()
    if spec == "auto":
        return try_gpu(0, file=file)
    parts = [p.strip() for p in spec.split(",") if p.strip()]
    if not parts:
        raise ValueError("empty --device; use auto, cpu, gpu, gpu:N or a list like cpu:0,cpu:1")
    contexts = [_parse_one(p) for p in parts]
    return contexts[0] if len(contexts) == 1 else contexts


def _parse_one(text: str) -> Context:
    kind, _, index_text = text.partition(":")
    if kind not in ("cpu", "gpu") or (index_text and not index_text.isdigit()):
        raise ValueError(
            f"cannot read device {text!r}; use auto, cpu, gpu, gpu:N, cpu:N "
            f"or a comma-separated list"
        )
    index = int(index_text or 0)
    if kind == "cpu":
        return mx.cpu(index)
    ok, reason = probe_gpu(index)
    if not ok:
        raise ValueError(
            f"--device {text}: {reason}. Use --device cpu (or auto, which falls "
            f"back to the CPU by itself)."
        )
    return mx.gpu(index)


def as_context_list(ctx: Union[Context, Sequence[Context]]) -> List[Context]:
    """Return `ctx` as a list of contexts."""
    return list(ctx) if isinstance(ctx, (list, tuple)) else [ctx]
