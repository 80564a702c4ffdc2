"""Timings: every BN path per epoch (``bench``), under every runtime (``sweep``), beside other
work (``contention``), beside PyTorch eager (``peer``, ``peer_torch``), against batch size and
threads (``scaling``), per operator (``profile``), the layout a BN layer hands on (``layout``)
and the scale-out (``scaleout``). ``bench_command`` is ``gluon-bn bench``; two of its modes at
once are refused. Every mode measures with :mod:`gluon_bn.harness` (alternating rounds,
medians and ranges, fresh processes, the table and record). Training lives in
:mod:`gluon_bn.run`.
"""
