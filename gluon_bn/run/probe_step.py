"""The runtime probe's training step, timed in a fresh process per candidate runtime
(``python -m gluon_bn.run.probe_step JOB``; :mod:`gluon_bn.runtime.probe` starts it).
"""

from __future__ import annotations

import time
from typing import Optional, Sequence

from gluon_bn.runtime.probe import PROBE_BATCH, PROBE_SECONDS, WARMUP_STEPS


def probe_step(seconds: float = PROBE_SECONDS, batch: int = PROBE_BATCH) -> float:
    """Time training steps of the d2l-en LeNet with ``nn.BatchNorm``; return ms per step.

    Runs in the probe's own process (MXNet loads here, under the candidate's variables). The
    batch is synthetic, (`batch`, 1, 28, 28) images and labels 0-9; the network is compiled
    as one static graph, as ``--pipeline fast`` trains it.
    """
    from gluon_bn.recipes import get_recipe
    from gluon_bn.run.training import prepare_network, seed_everything
    from gluon_bn.runtime.loader import mx

    seed_everything(0)
    net, trainer = prepare_network(
        get_recipe("d2l-en"), "gluon", hybridize="graph", learning_rate=0.1
    )
    loss = mx.gluon.loss.SoftmaxCrossEntropyLoss()
    X = mx.nd.random.uniform(shape=(batch, 1, 28, 28))
    y = mx.nd.array([i % 10 for i in range(batch)])

    def step():
        with mx.autograd.record():
            value = loss(net(X), y)
        value.backward()
        trainer.step(batch)

    for _ in range(WARMUP_STEPS):
        step()
    mx.nd.waitall()
    steps, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or steps < 3:
        step()
        steps += 1
        if steps % 5 == 0:
            mx.nd.waitall()
    mx.nd.waitall()
    return (time.perf_counter() - start) / steps * 1000


def main(argv: Optional[Sequence[str]] = None) -> int:
    """``python -m gluon_bn.run.probe_step JOB``: one probe in this process, answered as JSON."""
    from gluon_bn.harness import json_child_main

    return json_child_main(
        argv,
        prog="python -m gluon_bn.run.probe_step",
        description="Time the runtime probe's training step in this process (JSON job "
        '{"seconds": S}); gluon-bn starts these when it chooses a runtime.',
        answer=lambda job: {"ms_per_step": probe_step(float(job.get("seconds", PROBE_SECONDS)))},
    )


if __name__ == "__main__":
    raise SystemExit(main())
