"""Timings: every BN path per epoch (``bench``), beside other work (``contention``), beside
PyTorch eager (``peer``, ``peer_torch``), against batch size and threads (``scaling``), per
operator (``profile``), and the one way a timing runs in a fresh process (``child``).
``bench_command`` is ``gluon-bn bench``. Training itself lives in :mod:`gluon_bn.run`.
"""
