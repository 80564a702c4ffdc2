"""A run's defaults are resolved once, in the library: the command line only parses."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from gluon_bn.options import ResolvedRun, RunOptions
from gluon_bn.recipes import get_recipe


def test_fast_pipeline_resolves_to_graph_no_sync_and_train_ch5():
    run = RunOptions(pipeline="fast").resolve(get_recipe("d2l-1.0"))
    assert (run.hybridize, run.sync_every_batch, run.loop) == ("graph", False, "train_ch5")


def test_documents_path_resolves_to_the_documents_settings():
    recipe = get_recipe("d2l-zh")
    run = RunOptions().resolve(recipe)
    assert isinstance(run, ResolvedRun)
    assert (run.hybridize, run.sync_every_batch, run.loop) == ("none", True, "train_ch5")
    assert (run.epochs, run.lr, run.batch_size) == (
        recipe.num_epochs,
        recipe.learning_rate,
        recipe.batch_size,
    )
    assert RunOptions().resolve(get_recipe("d2l-1.0")).loop == "d2l.Trainer"


def test_what_the_user_sets_wins():
    run = RunOptions(
        pipeline="fast", hybridize="none", sync_every_batch=True, epochs=2, lr=0.5, batch_size=64
    ).resolve(get_recipe("d2l-en"))
    assert (run.hybridize, run.sync_every_batch, run.epochs, run.lr, run.batch_size) == (
        "none",
        True,
        2,
        0.5,
        64,
    )


def test_straight_dope_scales_the_trainers_step_by_its_batch():
    run = RunOptions().resolve(get_recipe("straight-dope"))
    assert run.trainer_learning_rate() == pytest.approx(0.001 * 64)


def test_config_is_json_and_names_every_setting():
    config = RunOptions(pipeline="fast").resolve(get_recipe("d2l-en")).config()
    assert json.loads(json.dumps(config)) == config
    assert "auto" not in config.values()
    assert {"loop", "hybridize", "sync_every_batch", "dataset", "epochs", "lr"} <= set(config)


def test_command_line_and_library_run_the_identical_configuration(tmp_path, fashion_root):
    """``gluon-bn reproduce`` (a subprocess) and ``reproduce()`` write the same config."""
    from gluon_bn.run.reproduce import reproduce
    from gluon_bn.runtime.loader import mx

    cli_out, lib_out = tmp_path / "cli", tmp_path / "lib"
    argv = [
        "reproduce",
        "d2l-en",
        "--variant",
        "gluon",
        "--pipeline",
        "fast",
        "--epochs",
        "0",
        "--limit",
        "256",
        "--test-limit",
        "128",
        "--data-root",
        str(fashion_root),
        "--out",
        str(cli_out),
    ]
    subprocess.run(
        [sys.executable, "-m", "gluon_bn.cli", *argv], check=True, capture_output=True, text=True
    )
    options = RunOptions(
        variants=("gluon",),
        pipeline="fast",
        epochs=0,
        limit=256,
        test_limit=128,
        data_root=str(fashion_root),
    )
    _, paths = reproduce("d2l-en", options, mx.cpu(), out_dir=lib_out, file=open("/dev/null", "w"))
    cli = json.loads(next(cli_out.glob("*.json")).read_text())
    lib = json.loads(paths["json"].read_text())
    assert cli["config"] == lib["config"]
    assert next(cli_out.glob("*.json")).name == paths["json"].name
    assert lib["config"]["hybridize"] == "graph" and lib["config"]["sync_every_batch"] is False


@pytest.mark.parametrize(
    "module",
    [
        "gluon_bn.cli",
        "gluon_bn.results",
        "gluon_bn.run.probe_step",
        "gluon_bn.results",
        "gluon_bn.bench.bench",
        "gluon_bn.bench.peer",
        "gluon_bn.bench.scaling",
        "gluon_bn.bench.scaleout",
    ],
)
def test_every_module_entry_point_answers_help(module):
    proc = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("usage:")


def test_every_module_entry_point_is_listed_in_the_help_test():
    """A module that gains a ``__main__`` block joins the --help test above."""
    import gluon_bn

    root = Path(gluon_bn.__file__).parent
    found = {
        ".".join(("gluon_bn", *p.relative_to(root).with_suffix("").parts)).removesuffix(".__main__")
        for p in root.rglob("*.py")
        if '__name__ == "__main__"' in p.read_text()
    }
    listed = set(test_every_module_entry_point_answers_help.pytestmark[0].args[1])
    assert found == listed


@pytest.mark.parametrize(
    "name, options",
    [
        ("d2l-en", RunOptions()),
        (
            "d2l-1.0",
            RunOptions(
                variants=("scratch", "gluon", "plain"),
                seeds=(0, 1, 2),
                pipeline="fast",
                bn_impl="fast",
                limit=512,
            ),
        ),
        (
            "straight-dope",
            RunOptions(
                variants=("plain",),
                epochs=3,
                lr=0.5,
                dataset="fashion-mnist",
                hybridize="layers",
                sync_every_batch=False,
            ),
        ),
    ],
)
def test_a_runs_command_runs_the_identical_configuration(name, options):
    """What the results README prints to run a record again resolves to that very run."""
    from gluon_bn.cli import build_parser, run_options

    run = options.resolve(
        get_recipe(name), dataset=options.dataset if options.dataset != "auto" else None
    )
    args = build_parser().parse_args(run.command(omp_threads=2))
    assert args.threads == 2
    again = run_options(args).resolve(get_recipe(args.recipe), dataset=args.dataset)
    assert again == run


@pytest.mark.parametrize("module", ["gluon_bn.bench.scaling", "gluon_bn.bench.scaleout"])
@pytest.mark.parametrize("job", ["not json", "[1, 2]"])
def test_a_child_module_refuses_a_job_that_is_not_a_json_object(module, job):
    proc = subprocess.run([sys.executable, "-m", module, job], capture_output=True, text=True)
    assert proc.returncode == 2
    assert "the job" in proc.stderr and "Traceback" not in proc.stderr
