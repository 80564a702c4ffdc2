"""Bad input to the BatchNorm layers: NaN propagates without crashing (docs/bad-input.md)."""

import numpy as np
import pytest

from gluon_bn import BatchNorm
from gluon_bn.runtime.loader import mx

nd, autograd, gluon = mx.nd, mx.autograd, mx.gluon


@pytest.mark.parametrize("layer", ["faithful", "fast", "gluon"])
def test_nan_input_to_batchnorm_propagates_without_crashing(layer):
    if layer == "gluon":
        bn = gluon.nn.BatchNorm(in_channels=3)
    else:
        bn = BatchNorm(3, 4, impl=layer)
    bn.initialize()
    x = nd.array(np.random.default_rng(0).normal(size=(4, 3, 5, 5)).astype("float32"))
    x[1, 0, 2, 2] = np.nan
    predicted = bn(x).asnumpy()  # prediction: moving statistics, only the NaN element is NaN
    assert np.isnan(predicted).sum() == 1 and np.isnan(predicted[1, 0, 2, 2])
    with autograd.record():
        y = bn(x)
    y.backward()
    y = y.asnumpy()
    # training: channel 0's batch mean and variance are NaN, so all of channel 0 is
    assert np.isnan(y[:, 0]).all() and np.isfinite(y[:, 1:]).all()
    if layer != "gluon":  # and channel 0's moving statistics are NaN from now on
        assert np.isnan(bn.moving_mean.data().asnumpy().ravel()[0])
        assert np.isfinite(bn.moving_mean.data().asnumpy().ravel()[1:]).all()


@pytest.mark.parametrize("impl", ["faithful", "fast"])
@pytest.mark.parametrize("dtype", ["float16", "float64"])
def test_input_of_another_float_dtype_names_both_and_the_fix(impl, dtype):
    from gluon_bn import BatchNorm

    layer = BatchNorm(3, 2, impl=impl)
    layer.initialize()
    with pytest.raises(
        TypeError,
        match=rf"holds float32 parameters but got {dtype} input; "
        rf"cast the layer \(layer.cast\('{dtype}'\)\)",
    ):
        layer(mx.nd.zeros((2, 3), dtype=dtype))


def test_fast_layer_training_in_float16_on_the_cpu_says_why_and_what_to_use():
    from gluon_bn import BatchNorm

    layer = BatchNorm(3, 2, impl="fast")
    layer.initialize()
    layer.cast("float16")
    with pytest.raises(
        TypeError, match="impl='fast' cannot train in float16 on the CPU.*impl='faithful'"
    ):
        with mx.autograd.record():
            layer(mx.nd.ones((2, 3), dtype="float16"))
    # prediction works: no matrix product there
    assert layer(mx.nd.ones((2, 3), dtype="float16")).dtype == np.float16
