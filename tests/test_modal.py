"""gluon_bn.bn.modal: one compiled graph per mode, on Gluon 1.9's private cache attributes."""

import numpy as np

from gluon_bn.bn import modal
from gluon_bn.runtime.loader import mx

nd, autograd, nn = mx.nd, mx.autograd, mx.gluon.nn


class TracesMode(mx.gluon.HybridBlock):
    """Adds 1 in training and 0 in prediction, the mode read when its graph is traced."""

    def __init__(self):
        super().__init__()
        self.traces = []

    def hybrid_forward(self, F, x):
        training = autograd.is_training() if F is nd else modal.traced_mode()
        self.traces.append(training)
        return x + float(training)


def test_one_graph_per_mode_built_once_each_and_cleared_by_hybridize():
    block = TracesMode()
    net = modal.ModeHybridSequential()
    net.add(block)
    net.hybridize(static_alloc=True)
    x = nd.zeros((2,))
    outputs = []
    for training in (True, False, True, False):
        with autograd.record(train_mode=training):
            outputs.append(net(x).asnumpy())
    assert [o[0] for o in outputs] == [1.0, 0.0, 1.0, 0.0]
    assert block.traces == [True, False]  # each mode traced once, then reused
    for name in modal._CACHE:  # the Gluon attributes the switch swaps still exist
        assert hasattr(net, name)
    net.hybridize(static_alloc=True)
    with autograd.predict_mode():
        np.testing.assert_array_equal(net(x).asnumpy(), [0.0, 0.0])
    assert block.traces == [True, False, False]
    assert modal.traced_mode() is None


def test_needs_mode_graphs_looks_inside_containers():
    outer = nn.Sequential()
    inner = modal.ModeHybridSequential()
    outer.add(nn.Dense(2))
    assert not modal.needs_mode_graphs(outer)
    outer.add(inner)
    assert modal.needs_mode_graphs(outer)
