"""Bad input to a run through the API: NaN training data stops `train_ch5` with
TrainingDiverged; impossible `train_ch5` arguments and `RunOptions` are ValueErrors.
See docs/bad-input.md for what each test backs.
"""

import io

import numpy as np
import pytest
from _run_helpers import tiny_setup

from gluon_bn.run.reproduce import RunOptions
from gluon_bn.run.training import TrainingDiverged, train_ch5
from gluon_bn.runtime.loader import mx

nd = mx.nd


@pytest.mark.parametrize("sync", [True, False])
def test_training_on_nan_data_stops_with_training_diverged(sync):
    net, trainer, _, _ = tiny_setup()
    x = np.random.default_rng(1).random((4, 32, 1, 6, 6)).astype("float32")
    x[1, 5, 0, 3, 3] = np.nan  # batch 2
    y = np.zeros((4, 32), dtype="int32")
    batches = [(nd.array(a), nd.array(b, dtype="int32")) for a, b in zip(x, y)]
    where = r"epoch 1, batch 2"  # the per-epoch read-back names the first bad batch too
    with pytest.raises(TrainingDiverged, match=where + r"(.|\n)*NaN/inf in the input data"):
        train_ch5(
            net,
            batches,
            batches[:1],
            32,
            trainer,
            mx.cpu(),
            2,
            file=io.StringIO(),
            sync_every_batch=sync,
        )


@pytest.mark.parametrize(
    "field,value",
    [("batch_size", 0), ("epochs", -1), ("limit", 0), ("lr", 0.0), ("pipeline", "turbo")],
)
def test_impossible_run_options_are_value_errors(field, value):
    with pytest.raises(ValueError, match=field):
        RunOptions(**{field: value}).check()


@pytest.mark.parametrize(
    "batch_size,epochs,message",
    [
        (0, 1, "batch_size must be a positive int, got 0"),
        (32, -1, "num_epochs must be a non-negative int, got -1"),
    ],
)
def test_train_ch5_rejects_impossible_arguments(batch_size, epochs, message):
    net, trainer, train_iter, test_iter = tiny_setup()
    with pytest.raises(ValueError, match=message):
        train_ch5(
            net, train_iter, test_iter, batch_size, trainer, mx.cpu(), epochs, file=io.StringIO()
        )
