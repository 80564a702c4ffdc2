"""Where runs train: one after another in this process, or fanned out over Dask workers.

:mod:`gluon_bn.scale.backend` is the one seam (``submit`` / ``as_completed``, as in
``concurrent.futures``) that every fan-out shares, with the worker's side (one OpenMP thread,
the version check). It takes callables and hands back their results; the task functions live
beside the code that submits them and return data, never files.
"""
