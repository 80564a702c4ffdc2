"""Writing a run's files when the disk says no: the record first, whole files only, a clear message."""

import errno

import pytest
from _run_helpers import run_with_file_size_limit

from gluon_bn import report
from gluon_bn.options import RunOptions
from gluon_bn.recipes import get_recipe
from gluon_bn.records import EpochStats, Reproduction, VariantRun, load_result


def tiny_record() -> Reproduction:
    run = RunOptions(variants=("gluon",), epochs=1).resolve(get_recipe("d2l-en"))
    epoch = EpochStats(1, 0.5, 0.8, 0.79, 1.0, 0.9, 1000.0)
    env = {
        "device": "cpu(0)",
        "mxnet": "1.9.1",
        "cpu_count": 2,
        "processor": "x86_64",
        "threads": {},
    }
    return Reproduction(run, env, [VariantRun("gluon", 0, (epoch,))])


def refuse(number):
    def write(*args, **kwargs):
        raise OSError(number, "simulated")

    return write


@pytest.mark.parametrize("number", [errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS])
def test_a_failing_figure_keeps_the_record_and_names_the_file(tmp_path, monkeypatch, number):
    monkeypatch.setattr(report, "plot_curves", refuse(number))
    with pytest.raises(report.WriteError) as caught:
        report.write_outputs(tiny_record(), tmp_path, "run")
    message = str(caught.value)
    assert f"could not write {tmp_path / 'run.png'}" in message
    assert f"({errno.errorcode[number]})" in message
    assert f"the record was written first and is complete: {tmp_path / 'run.json'}" in message
    assert load_result(tmp_path / "run.json").runs[0].history[0].test_acc == 0.79
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.json", "run.md"]


def test_a_failing_record_leaves_the_previous_one_whole(tmp_path, monkeypatch):
    report.write_outputs(tiny_record(), tmp_path, "run")
    before = (tmp_path / "run.json").read_text()
    monkeypatch.setattr(
        report, "dumps", lambda rep: (_ for _ in ()).throw(OSError(errno.ENOSPC, "simulated"))
    )
    with pytest.raises(
        report.WriteError, match="No space left on device .ENOSPC.; no file of this run was written"
    ):
        report.write_outputs(tiny_record(), tmp_path, "run")
    assert (tmp_path / "run.json").read_text() == before
    assert not list(tmp_path.glob(".*tmp*"))


def test_a_real_file_size_limit_exits_5_with_the_record_kept(tmp_path, fashion_root):
    """RLIMIT_FSIZE below the figure's size: training finishes, the JSON is whole, exit 5."""
    out = tmp_path / "out"
    proc = run_with_file_size_limit(30000, fashion_root, "--out", str(out))
    assert proc.returncode == 5, proc.stderr
    assert "epoch 1, loss" in proc.stdout
    assert proc.stderr.strip().startswith(
        f"gluon-bn: write error: could not write {out / 'd2l-en_limit256.png'}: "
        f"File too large (EFBIG)"
    )
    assert "Traceback" not in proc.stderr
    assert load_result(out / "d2l-en_limit256.json").runs[0].variant == "gluon"
    assert not (out / "d2l-en_limit256.png").exists()
