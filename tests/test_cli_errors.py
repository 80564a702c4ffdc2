"""Bad input at the command line: one clear message and the documented exit code
(a damaged data file, a GPU that cannot run, an impossible option); see docs/bad-input.md.
"""

import gzip

import pytest
from _run_helpers import HOPPER_FAILURE

from gluon_bn import cli


@pytest.mark.parametrize(
    "damage,message",
    [
        ("truncated", "checksum mismatch for {path}"),
        ("corrupt-gzip", "the gzip file {path}.gz is corrupt or incomplete"),
        ("missing", "missing: t10k-labels-idx1-ubyte"),
    ],
    ids=["truncated", "corrupt-gzip", "missing"],
)
def test_bad_data_file_is_exit_3_naming_the_file(fashion_root, tmp_path, capsys, damage, message):
    data = tmp_path / "data"
    data.mkdir()
    for path in sorted(fashion_root.glob("*-ubyte*")):
        if not path.name.startswith("t10k-labels"):
            (data / path.name).symlink_to(path)
            continue
        content = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
        if damage == "truncated":  # e.g. a copy that stopped early
            (data / "t10k-labels-idx1-ubyte").write_bytes(content[:-100])
        elif damage == "corrupt-gzip":  # e.g. a download that stopped early
            (data / "t10k-labels-idx1-ubyte.gz").write_bytes(gzip.compress(content)[:-100])
    status = cli.main(
        [
            "reproduce",
            "d2l-en",
            "--data-root",
            str(data),
            "--device",
            "cpu",
            "--epochs",
            "1",
            "--out",
            str(tmp_path / "out"),
        ]
    )
    err = capsys.readouterr().err
    assert status == cli.EXIT_DATA and "Traceback" not in err
    assert err.startswith("gluon-bn: data error: ")
    assert message.format(path=data / "t10k-labels-idx1-ubyte") in err


@pytest.mark.parametrize("probe", [None, HOPPER_FAILURE], ids=["no-gpu", "hopper"])
def test_cli_device_gpu_that_cannot_run_is_one_message(tmp_path, capsys, monkeypatch, probe):
    import gluon_bn.device as device

    if probe is not None:
        monkeypatch.setattr(device, "probe_gpu", lambda index=0: probe)
    elif device.probe_gpu(0)[0]:
        pytest.skip("a working GPU is present")
    status = cli.main(["reproduce", "d2l-en", "--device", "gpu", "--out", str(tmp_path)])
    err = capsys.readouterr().err
    assert status == cli.EXIT_USAGE and "Traceback" not in err
    assert "--device gpu" in err and "Use --device cpu" in err
    if probe is not None:
        assert "no kernel image" in err


def test_cli_rejects_zero_limit(capsys):
    with pytest.raises(SystemExit) as exc:
        cli.main(["reproduce", "d2l-en", "--limit", "0"])
    assert exc.value.code == 2 and "must be a positive integer" in capsys.readouterr().err


@pytest.mark.parametrize("option", ["--out", "--checkpoint-dir"])
def test_unusable_output_directory_fails_before_any_work(tmp_path, capsys, option):
    """A path under a file is refused in one line, exit 2, before data is read or training."""
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    argv = [
        "reproduce",
        "d2l-en",
        "--variant",
        "gluon",
        "--limit",
        "64",
        "--epochs",
        "1",
        "--data-root",
        str(tmp_path / "no-data-here"),
        option,
        str(blocker / "x"),
    ]
    if option == "--checkpoint-dir":
        argv += ["--out", str(tmp_path / "out")]
    assert cli.main(argv) == 2
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines() == [
        f"gluon-bn: error: {option} {blocker / 'x'} cannot be used: a file is in the way "
        f"(a directory is needed). Give {option} a directory you can write to."
    ]
    assert "epoch" not in captured.out and "Traceback" not in captured.err


def test_listing_into_a_closed_pipe_is_quiet():
    """``gluon-bn list | head -1``: no BrokenPipeError traceback when the reader leaves early."""
    import subprocess
    import sys

    proc = subprocess.run(
        f"{sys.executable} -m gluon_bn.cli list | head -1",
        shell=True,
        capture_output=True,
        text=True,
    )
    assert proc.stdout.startswith("d2l-1.0")
    assert "Traceback" not in proc.stderr and "BrokenPipe" not in proc.stderr
