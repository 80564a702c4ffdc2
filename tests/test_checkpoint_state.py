"""The iterators' shuffling state as a public API, and checkpoints that use only that API.

``state_dict`` / ``load_state_dict`` of `D2lBatchIterator`, `FastBatchIterator` and
`EpochShuffleSampler`: round trips (also through JSON), clear ValueErrors for states that
do not fit, and `gluon_bn.run.checkpoint` saving and restoring through them alone.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
from pathlib import Path

import numpy as np
import pytest

from gluon_bn import data as D
from gluon_bn.run import checkpoint as C
from gluon_bn.run.checkpoint import Checkpointer, CheckpointError, run_config
from gluon_bn.run.reproduce import RunOptions
from gluon_bn.runtime.loader import mx

N, BATCH = 40, 8
ITERATORS = {"d2l": D.D2lBatchIterator, "fast": D.FastBatchIterator}


def arrays(n=N):
    """Images (n, 4, 4) whose first pixel is the example's index, and labels (n,)."""
    images = np.random.default_rng(1).integers(0, 256, (n, 4, 4), dtype=np.uint8)
    images[:, 0, 0] = np.arange(n)
    return images, (np.arange(n) % 10).astype(np.int32)


def make(pipeline, *, n=N, seed=3, shuffle=True):
    images, labels = arrays(n)
    return ITERATORS[pipeline](images, labels, BATCH, shuffle=shuffle, seed=seed)


def epoch_order(it):
    """The example indices of one pass, in the order the batches hold them: shape (N,)."""
    # X is (B, 1, H, W) in [0, 1]; pixel (0, 0) * 255 is the example's index.
    return np.concatenate([np.rint(x.asnumpy()[:, 0, 0, 0] * 255) for x, _ in it]).astype(int)


def plain(value) -> bool:
    """True if `value` is built only of dicts with str keys, lists, str, int, bool and None."""
    if isinstance(value, dict):
        return all(isinstance(k, str) and plain(v) for k, v in value.items())
    if isinstance(value, list):
        return all(plain(v) for v in value)
    return value is None or type(value) in (str, int, bool)


# --------------------------------------------------------------------------- round trips


@pytest.mark.parametrize("pipeline", list(ITERATORS))
def test_loaded_state_gives_the_originals_next_epoch(pipeline):
    original = make(pipeline)
    epoch_order(original)  # one pass, so the state is not the initial one
    state = original.state_dict()
    resumed, fresh = make(pipeline), make(pipeline)
    resumed.load_state_dict(state)
    got, expected = epoch_order(resumed), epoch_order(original)
    np.testing.assert_array_equal(got, expected)
    assert sorted(got) == list(range(N))
    assert not np.array_equal(got, epoch_order(fresh))  # a fresh iterator's first pass differs
    np.testing.assert_array_equal(epoch_order(resumed), epoch_order(original))  # and after


@pytest.mark.parametrize("pipeline", list(ITERATORS))
def test_state_survives_json_and_is_plain_data(pipeline):
    it = make(pipeline)
    epoch_order(it)
    state = it.state_dict()
    assert plain(state)
    assert state["kind"] == D.ORDER_STATE_KIND and state["shuffle"] is True
    assert (state["num_examples"], state["seed"]) == (N, 3)
    again = json.loads(json.dumps(state))
    assert again == state
    resumed = make(pipeline)
    resumed.load_state_dict(again)
    np.testing.assert_array_equal(epoch_order(resumed), epoch_order(it))
    assert it.state_dict() == resumed.state_dict()


@pytest.mark.parametrize("pipeline", list(ITERATORS))
def test_file_order_state_round_trips(pipeline):
    it = make(pipeline, shuffle=False)
    state = it.state_dict()
    assert plain(state) and state["shuffle"] is False
    assert state["seed"] is None and state["bit_generator"] is None
    it.load_state_dict(json.loads(json.dumps(state)))
    np.testing.assert_array_equal(epoch_order(it), np.arange(N))


def test_both_pipelines_share_one_state_format():
    """The pipelines draw the same stream, so either loads the other's state."""
    d2l, fast = make("d2l"), make("fast")
    epoch_order(fast)
    d2l.load_state_dict(fast.state_dict())
    np.testing.assert_array_equal(epoch_order(d2l), epoch_order(fast))


def test_sampler_state_round_trip():
    sampler = D.EpochShuffleSampler(N, 5)
    list(sampler)
    state = json.loads(json.dumps(sampler.state_dict()))
    other = D.EpochShuffleSampler(N, 5)
    other.load_state_dict(state)
    assert list(other) == list(sampler)
    with pytest.raises(ValueError, match="EpochShuffleSampler.load_state_dict: .*seed 6"):
        D.EpochShuffleSampler(N, 6).load_state_dict(state)


# --------------------------------------------------------------------------- bad states


def _good():
    return make("fast").state_dict()


def _with_generator(**changes):
    state = _good()
    state["bit_generator"] = dict(state["bit_generator"], **changes)
    return state


BAD_STATES = {
    "not-a-dict": ([1, 2], r"expects what FastBatchIterator\.state_dict\(\) returns .*got a list"),
    "bare-generator-state": (
        np.random.default_rng(0).bit_generator.state,
        r"got a dict without 'kind' \(keys \['bit_generator'",
    ),
    "other-kind": ({"kind": "torch.sampler"}, r"got a dict of kind 'torch\.sampler'"),
    "other-version": (dict(_good(), version=99), "unknown state version 99, expected 1"),
    "other-seed": (
        dict(_good(), seed=4),
        r"another data set, seed or order: 40 examples "
        r"shuffled with seed 4, but this FastBatchIterator has 40 examples "
        r"shuffled with seed 3",
    ),
    "other-size": (
        make("fast", n=30).state_dict(),
        "30 examples shuffled with seed 3, but this FastBatchIterator has 40 examples",
    ),
    "file-order": (make("fast", shuffle=False).state_dict(), "40 examples in file order, but"),
    "no-generator": (
        dict(_good(), bit_generator=None),
        r"bit_generator is not a valid PCG64 state \(TypeError",
    ),
    "other-generator": (
        _with_generator(bit_generator="MT19937"),
        "not a valid PCG64 state .*must be for a PCG64",
    ),
    "broken-generator": (_with_generator(state={"inc": 1}), "not a valid PCG64 state"),
    "negative-generator": (
        _with_generator(state={"state": -1, "inc": 3}),
        "not a valid PCG64 state .*do not read back",
    ),
}


@pytest.mark.parametrize("name", list(BAD_STATES))
def test_bad_state_is_a_clear_value_error_and_changes_nothing(name):
    bad, message = BAD_STATES[name]
    it = make("fast")
    before = it.state_dict()
    with pytest.raises(ValueError, match=message):
        it.load_state_dict(bad)
    assert it.state_dict() == before


def test_shuffled_state_into_file_order_iterator_is_refused():
    for pipeline in ITERATORS:
        with pytest.raises(
            ValueError,
            match=r"40 examples shuffled with seed 3, but this "
            r"\w+BatchIterator has 40 examples in file order",
        ):
            make(pipeline, shuffle=False).load_state_dict(make(pipeline).state_dict())


# --------------------------------------------------------------------------- checkpoints

# checkpoint.py and the modules it was split into (checkpoint_files.py, ...)
CHECKPOINT_SOURCES = {
    path.name: path.read_text(encoding="utf-8")
    for path in sorted(Path(C.__file__).parent.glob("checkpoint*.py"))
}
CHECKPOINT_SOURCE = "\n".join(CHECKPOINT_SOURCES.values())


@pytest.mark.parametrize(
    "private", ["._loader", "._sampler", "._rng", "_batch_sampler", "shuffle_generators"]
)
def test_checkpoint_source_does_not_reach_into_the_iterators(private):
    assert private not in CHECKPOINT_SOURCE


def test_checkpoint_uses_no_private_attribute_of_an_iterator():
    """No ``x._name`` nor ``getattr(x, "_name")`` in checkpoint*.py for a data object x.

    Searched in the syntax tree, for variables named like an iterator, sampler or loader.
    """

    def owner(node) -> str:
        return node.id if isinstance(node, ast.Name) else ""

    def is_data_object(name: str) -> bool:
        return any(word in name for word in ("iter", "sampler", "loader"))

    assert {"checkpoint.py", "checkpoint_files.py"} <= set(CHECKPOINT_SOURCES)
    for module, source in CHECKPOINT_SOURCES.items():
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
                assert not is_data_object(owner(node.value)), (
                    f"{module} line {node.lineno}: {owner(node.value)}.{node.attr}"
                )
            if isinstance(node, ast.Call) and owner(node.func) == "getattr" and len(node.args) > 1:
                name = node.args[1].value if isinstance(node.args[1], ast.Constant) else ""
                assert not (str(name).startswith("_") and is_data_object(owner(node.args[0]))), (
                    f"{module} line {node.lineno}: getattr({owner(node.args[0])}, {name!r})"
                )


def tiny_net():
    net = mx.gluon.nn.Sequential()
    net.add(mx.gluon.nn.Dense(4), mx.gluon.nn.BatchNorm(), mx.gluon.nn.Dense(3))
    net.initialize(mx.init.Xavier())
    net(mx.nd.zeros((2, 1, 4, 4)))  # shapes known, so parameters can be saved
    return net, mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 0.1})


def saved_checkpoint(directory, pipeline="fast"):
    """Save epoch 1 of a tiny run after one pass of `pipeline`; return (iterator, path)."""
    net, trainer = tiny_net()
    it = make(pipeline)
    epoch_order(it)
    config = run_config("d2l-en", "gluon", 0, RunOptions(epochs=3))
    path = Checkpointer(directory, config).save(1, net, trainer, it, [{"epoch": 1}])
    return it, path, config


def restore(directory, config, it):
    net, trainer = tiny_net()
    return Checkpointer(directory, config, resume=True, file=io.StringIO()).restore(
        net, trainer, it, mx.cpu()
    )


@pytest.mark.parametrize("pipeline", list(ITERATORS))
def test_checkpoint_stores_and_restores_the_state_dict(tmp_path, pipeline):
    original, path, config = saved_checkpoint(tmp_path / "run", pipeline)
    rng = json.loads((path / "rng.json").read_text())
    assert rng["train_iter"] == original.state_dict()
    resumed = make(pipeline)
    assert restore(tmp_path / "run", config, resumed)[1] == 1
    np.testing.assert_array_equal(epoch_order(resumed), epoch_order(original))


def test_checkpoint_of_another_data_set_size_is_refused(tmp_path):
    _, _, config = saved_checkpoint(tmp_path / "run")
    with pytest.raises(
        CheckpointError,
        match=r"cannot load the checkpoint .*epoch-0001: "
        r"FastBatchIterator\.load_state_dict: .*30 examples",
    ):
        restore(tmp_path / "run", config, make("fast", n=30))


def test_checkpoint_written_before_state_dict_still_resumes(tmp_path):
    """rng.json of the earlier format: the shuffle generator's state in a list under "shuffle"."""
    original, path, config = saved_checkpoint(tmp_path / "run")
    rng = json.loads((path / "rng.json").read_text())
    old = {
        "python": rng["python"],
        "numpy": rng["numpy"],
        "shuffle": [rng["train_iter"]["bit_generator"]],
    }
    (path / "rng.json").write_text(json.dumps(old, indent=1))
    manifest = json.loads((path / C.MANIFEST).read_text())  # keep the checkpoint intact
    content = (path / "rng.json").read_bytes()
    manifest["files"]["rng.json"] = {
        "bytes": len(content),
        "sha256": hashlib.sha256(content).hexdigest(),
    }
    (path / C.MANIFEST).write_text(json.dumps(manifest))
    resumed = make("fast")
    assert restore(tmp_path / "run", config, resumed)[1] == 1
    assert resumed.state_dict() == original.state_dict()
    np.testing.assert_array_equal(epoch_order(resumed), epoch_order(original))
