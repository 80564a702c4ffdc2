"""`gluon-bn bench --peer torch`: a fair side-by-side with PyTorch (issue 15, item 1).

PyTorch runs only in child processes (it bundles its own libgomp), so these tests never
import it; the ones that need it skip when the `peer` extra is not installed.
"""

import io
import json
import sys

import numpy as np
import pytest

from gluon_bn import cli
from gluon_bn.bench import peer, peer_report, peer_torch
from gluon_bn.harness import run_json_child, runtime_environment, summarize
from gluon_bn.runtime.loader import (
    mx,  # loaded first: the bench's runtime choice then leaves this process alone
)


def _torch_installed() -> bool:
    try:
        peer.require_torch()
    except ValueError:
        return False
    return True


needs_torch = pytest.mark.skipif(
    not _torch_installed(), reason="PyTorch not installed: pip install 'gluon-bn[peer]'"
)
LENET = [
    "conv",
    "bn",
    "sigmoid",
    "maxpool",
    "conv",
    "bn",
    "sigmoid",
    "maxpool",
    "flatten",
    "dense",
    "bn",
    "sigmoid",
    "dense",
    "bn",
    "sigmoid",
    "dense",
]


@pytest.fixture(scope="module")
def kit(fashion_root, tmp_path_factory):
    plan = peer.PeerPlan(threads=1, fraction=0.005, data_root=str(fashion_root))
    return plan, peer.write_kit(plan, tmp_path_factory.mktemp("peer") / "kit.npz")


def test_the_kit_holds_the_gluon_weights_and_the_fast_pipelines_batches(kit):
    """Same layers and initial weights as time_config's Gluon net; same batches, same order."""
    from gluon_bn.data import load_data_fashion_mnist
    from gluon_bn.models import build_net, make_initializer
    from gluon_bn.recipes import get_recipe
    from gluon_bn.run.training import seed_everything

    plan, path = kit
    data = np.load(path)
    setup = json.loads(str(data["setup"]))
    assert [layer["op"] for layer in setup["layers"]] == LENET
    assert setup["batch_size"] == 256 and setup["lr"] == 1.0
    assert {layer["momentum"] for layer in setup["layers"] if layer["op"] == "bn"} == {0.9}
    recipe = get_recipe("d2l-en")
    seed_everything(plan.seed)
    net = build_net(recipe, "gluon")
    net.initialize(make_initializer(recipe.initializer_for("gluon")))
    images = peer_torch.preloaded(data["images"])
    for name, limit in (("warmup", 1280), ("timed", 512)):  # 0.5 % of an epoch: 2 batches
        order = data[name]
        batches = load_data_fashion_mnist(
            256, root=plan.data_root, pipeline="fast", seed=plan.seed, limit=limit
        )[0]
        assert len(order) == limit
        for i, (X, y) in enumerate(batches):
            if i == 0 and name == "warmup":
                net(X)  # the first forward pass draws the weights, as in training
            index = order[i * 256 : (i + 1) * 256]
            assert np.array_equal(X.asnumpy(), images[index])
            assert np.array_equal(y.asnumpy(), data["labels"][index])
    ours = [p.data().asnumpy() for p in net.collect_params().values()]
    theirs = [data[k] for k in data.files if k.startswith("param:")]
    assert len(ours) == len(theirs) == 26
    assert all(np.array_equal(a, b) for a, b in zip(ours, theirs))


@needs_torch
def test_pytorch_trains_the_same_steps_as_gluon(kit):
    """One step from the same weights and batch: the same loss to 1e-4; the next steps
    (lr 1.0, mean gradient) stay together, within MXNet's float32 BN statistics."""
    from gluon_bn.data import load_data_fashion_mnist
    from gluon_bn.models import build_net, make_initializer
    from gluon_bn.recipes import get_recipe
    from gluon_bn.run.training import seed_everything

    plan, path = kit
    theirs = run_json_child(
        peer.MODULE,
        {"framework": "torch", "kit": str(path), "threads": 1, "record": True},
        what="bench --peer: a torch run",
        env=runtime_environment({"OMP_NUM_THREADS": "1"}, drop=()),
    )["losses"]
    recipe = get_recipe("d2l-en")
    seed_everything(plan.seed)
    net = build_net(recipe, "gluon")
    net.initialize(make_initializer(recipe.initializer_for("gluon")))
    trainer = mx.gluon.Trainer(net.collect_params(), "sgd", {"learning_rate": 1.0})
    loss_fn, ours = mx.gluon.loss.SoftmaxCrossEntropyLoss(), []
    for X, y in load_data_fashion_mnist(
        256, root=plan.data_root, pipeline="fast", seed=plan.seed, limit=1280
    )[0]:
        with mx.autograd.record():
            loss = loss_fn(net(X), y).sum()
        loss.backward()
        trainer.step(256)
        ours.append(loss.asscalar() / 256)
    assert len(ours) == len(theirs) == 5
    assert abs(ours[0] - theirs[0]) < 1e-4
    assert np.allclose(ours, theirs, atol=2e-3)


@needs_torch
def test_bench_peer_runs_on_a_tiny_fraction(fashion_root, tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(peer, "GLUON_CONFIGS", peer.GLUON_CONFIGS[:1])  # one of ours is enough here
    status = cli.main(
        [
            "bench",
            "--peer",
            "torch",
            "--rounds",
            "1",
            "--fraction",
            "0.005",
            "--threads",
            "1",
            "--data-root",
            str(fashion_root),
            "--out",
            str(tmp_path),
        ]
    )
    out = capsys.readouterr().out
    assert status == 0
    result = json.loads((tmp_path / "peer.json").read_text())
    assert result["torch"]["torch_threads"] == 1 and result["plan"]["threads"] == 1
    assert list(result["seconds"]) == ["gluon graph / fast", "torch eager / preloaded"]
    assert [(r["loop"], r["pipeline"], r["recipe"]) for r in result["rows"]] == [
        ("train_ch5", "fast", "d2l-en"),
        (peer.TORCH_LOOP, "preloaded", "d2l-en"),
    ]
    assert all(len(v) == 1 and v[0] > 0 for v in result["seconds"].values())
    assert result["ratios"]["torch eager / preloaded"] == [1.0]
    assert (tmp_path / "peer.md").read_text().strip() in out
    assert (tmp_path / "peer.png").read_bytes()[:4] == b"\x89PNG"


def test_rounds_alternate_the_configurations(tmp_path, monkeypatch):
    """A B C D A B C D ..., every run its own child, PyTorch's threads passed on."""
    calls = []

    def child(module, job, *, what, env):
        threads = int(env["OMP_NUM_THREADS"])
        calls.append((tuple(job["config"]) if "config" in job else job["framework"], threads))
        return {"seconds_per_epoch": 2.0 if job["framework"] == "torch" else 3.0}

    monkeypatch.setattr(peer, "write_kit", lambda plan, path: path)
    monkeypatch.setattr(peer, "run_json_child", child)
    monkeypatch.setattr(peer, "require_torch", lambda: None)
    result = peer.run_peer(peer.PeerPlan(threads=2, rounds=2), file=io.StringIO())
    one_round = [*peer.GLUON_CONFIGS, "torch"]
    assert calls == [(c, 2) for c in one_round * 2]
    assert result["ratios"]["gluon graph / fast"] == [1.5, 1.5]
    assert [r["label"] for r in result["rows"]] == list(result["seconds"])
    assert all("job" not in r for r in result["rows"])


def test_without_the_extra_bench_peer_says_how_to_add_it(tmp_path, capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)  # `import torch` fails, as when not installed
    status = cli.main(["bench", "--peer", "torch", "--threads", "1", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == 2
    assert err.count("\n") == 1 and "pip install 'gluon-bn[peer]'" in err
    assert not (tmp_path / "peer.json").exists()


def test_the_summary_gives_median_range_and_the_ratio_per_round():
    seconds = {"gluon": [4.0, 6.0, 5.0], "torch eager / preloaded": [4.0, 4.0, 5.0]}
    summary = summarize(seconds, peer.TORCH_LABEL)
    assert summary["ratios"]["gluon"] == [1.0, 1.5, 1.0]
    assert summary["summary"]["gluon"] == {
        "seconds": {"median": 5.0, "min": 4.0, "max": 6.0},
        "ratio": {"median": 1.0, "min": 1.0, "max": 1.5},
    }


ALL_LOOPS = [  # label, loop, pipeline, recipe, batch size: loops="all" in round order
    ("gluon graph / fast", "train_ch5", "fast", "d2l-en", 256),
    ("scratch fast graph / fast", "train_ch5", "fast", "d2l-en", 256),
    ("scratch native graph / fast", "train_ch5", "fast", "d2l-en", 256),
    ("plain graph / fast", "train_ch5", "fast", "d2l-en", 256),
    ("scratch faithful / d2l", "train_ch5", "d2l", "d2l-en", 256),
    ("gluon / d2l", "train_ch5", "d2l", "d2l-en", 256),
    ("scratch faithful / d2l.Trainer", "d2l.Trainer", "d2l", "d2l-1.0", 128),
    ("gluon / d2l.Trainer", "d2l.Trainer", "d2l", "d2l-1.0", 128),
    ("torch eager / preloaded", peer.TORCH_LOOP, "preloaded", "d2l-en", 256),
]


def test_all_loops_add_the_documents_routes_each_row_saying_what_it_runs():
    """The jobs and labels of --loops all, built without running; the book's rows differ
    from PyTorch's work (network, batch, validation) and say so, the others do not."""
    rows = peer.plan_rows(peer.PeerPlan(threads=1, loops="all", fraction=0.25))
    assert [
        (r["label"], r["loop"], r["pipeline"], r["recipe"], r["batch_size"]) for r in rows
    ] == ALL_LOOPS
    assert [tuple(r["job"]["config"]) for r in rows[:6]] == [
        *peer.GLUON_CONFIGS,
        ("scratch", "faithful", "none", "d2l"),
        ("gluon", "faithful", "none", "d2l"),
    ]
    book = rows[6]["job"]
    assert (book["loop"], book["variant"], book["bn_impl"]) == (
        "d2l.Trainer",
        "scratch",
        "faithful",
    )
    assert book["train_examples"] == 15104  # 0.25 of 60000 in whole batches of 128
    assert rows[6]["differences"] == [
        "d2l-1.0's network (lenet, avg-pool)",
        "batch 128",
        "epoch includes validation",
    ]
    assert [bool(r["differences"]) for r in rows] == [False] * 6 + [True, True, False]
    assert [r["label"] for r in peer.plan_rows(peer.PeerPlan(threads=1))] == [
        ALL_LOOPS[i][0] for i in (0, 1, 2, 3, 8)
    ]  # "fast", the default: today's four
    assert [r["label"] for r in peer.plan_rows(peer.PeerPlan(threads=1, native=False))] == [
        ALL_LOOPS[i][0] for i in (0, 1, 3, 8)
    ]  # without a C++ compiler
    with pytest.raises(ValueError, match="loops must be one of"):
        peer.PeerPlan(threads=1, loops="some")
    args = cli.build_parser().parse_args(["bench", "--peer", "torch", "--loops", "all"])
    assert args.loops == "all"


def test_the_table_names_each_rows_route_and_marks_ratios_that_are_not_like_for_like():
    rows = [
        {k: v for k, v in r.items() if k != "job"}
        for r in peer.plan_rows(peer.PeerPlan(threads=2, loops="all"))
    ]
    seconds = {r["label"]: [5.0, 6.0, 4.0] for r in rows}
    seconds[peer.TORCH_LABEL] = [4.0, 4.0, 4.0]
    result = {
        "plan": {"rounds": 3, "fraction": 0.25, "warmup_batches": 5, "threads": 2},
        "rows": rows,
        "torch": {"torch": "2.13.0+cpu"},
        "load_before": [3.0, 2.5, 2.0],
        "load_after": [3.5, 2.6, 2.1],
        **summarize(seconds, peer.TORCH_LABEL),
    }
    table = peer_report.format_peer(result)
    assert (
        "| gluon / d2l | train_ch5 | d2l | d2l-en (256) | 5.00 (4.00-6.00) | 1.25 (1.00-1.50) |  |"
    ) in table
    assert (
        "| gluon / d2l.Trainer | d2l.Trainer | d2l | d2l-1.0 (128) | 5.00 (4.00-6.00) | "
        "1.25 (1.00-1.50) † | d2l-1.0's network (lenet, avg-pool), batch 128, epoch "
        "includes validation |"
    ) in table
    assert table.count(" † |") == 2 and "† Not like for like" in table
    assert "3.00 → 3.50" in table and "PyTorch 2.13.0+cpu" in table


def test_the_plot_draws_every_loop(tmp_path):
    rows = [
        {k: v for k, v in r.items() if k != "job"}
        for r in peer.plan_rows(peer.PeerPlan(threads=2, loops="all"))
    ]
    result = {
        "plan": {"recipe": "d2l-en", "threads": 2, "rounds": 1},
        "rows": rows,
        **summarize({r["label"]: [1.0] for r in rows}, peer.TORCH_LABEL),
    }
    peer_report.plot_peer(result, tmp_path / "peer.png")
    assert (tmp_path / "peer.png").read_bytes()[:4] == b"\x89PNG"


def test_a_book_job_runs_time_book_loop(monkeypatch):
    """The child's d2l.Trainer job is one call of run.timing.time_book_loop with the job's settings."""
    from gluon_bn.run import timing

    calls = []
    monkeypatch.setattr(
        timing,
        "time_book_loop",
        lambda *a, **kw: calls.append((a, kw)) or {"seconds_per_epoch": 7.0},
    )
    job = peer.plan_rows(peer.PeerPlan(threads=1, loops="all", fraction=0.001))[7]["job"]
    assert peer._time_gluon(job) == {"seconds_per_epoch": 7.0}
    assert calls == [(("gluon", "faithful"), {"seed": 0, "train_examples": 128, "data_root": None})]


def test_time_book_loop_times_the_second_epoch_of_document_000s_loop(fashion_root):
    """Two epochs of d2l.Trainer on 256 images (validating on 42); the second scaled up."""
    from gluon_bn.run.timing import time_book_loop

    timing = time_book_loop("gluon", train_examples=256, data_root=str(fashion_root))
    assert timing["timed_examples"] == 256
    assert timing["seconds_per_epoch"] > 0
    assert timing["seconds_per_epoch"] == pytest.approx(60000 / timing["examples_per_sec"])
    with pytest.raises(ValueError, match="train_examples"):
        time_book_loop("gluon", train_examples=0)
