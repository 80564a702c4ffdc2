"""Where runs train: one after another in this process, or fanned out over Dask workers.

:mod:`gluon_bn.scale.backend` is the one seam (``submit`` / ``as_completed``, as in
``concurrent.futures``) that the study runner, ``reproduce`` and ``scripts/reproduce_all.py``
share; :mod:`gluon_bn.scale.tasks` holds what a worker runs: library calls that return data,
never files.
"""
