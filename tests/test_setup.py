"""Set-up: the README's two commands are what CI runs, they parse, and the data helper
(scripts/install_data.sh) does the right thing as root, as a user with or without sudo, and
without apt. apt-get, apt-cache, sudo, id and python3 are stubs here: nothing is installed.
"""

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
CI = ROOT / ".ci" / "run"
SCRIPT = ROOT / "scripts" / "install_data.sh"
SYSTEM_DATA = Path("/usr/share/datasets/fashion-mnist")
FILES = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)
SHELLS = [s for s in ("sh", "dash", "bash") if shutil.which(s)]


def readme_command(heading: str) -> str:
    """The body of the first ```bash block under `heading` (a whole line) in README.md."""
    lines = README.read_text().splitlines()
    start = lines.index(heading) + 1
    body, inside = [], False
    for line in lines[start:]:
        if not inside and line.startswith("## "):
            break
        if not inside and re.fullmatch(r"```bash\s*", line):
            inside = True
        elif inside and line.startswith("```"):
            return "\n".join(body)
        elif inside:
            body.append(line)
    raise AssertionError(f"no ```bash block under {heading!r} in README.md")


MAIN_JOB = readme_command("## Run the main job")
TESTS = readme_command("## Test")


def test_ci_runs_the_readme_commands_exactly_as_written():
    printed = subprocess.run(
        ["bash", str(CI), "--print"], capture_output=True, text=True, check=True, timeout=30
    ).stdout
    assert printed == f"{MAIN_JOB}\n{TESTS}\n"


@pytest.mark.parametrize("command", [MAIN_JOB, TESTS], ids=["main-job", "tests"])
def test_readme_commands_parse(command):
    result = subprocess.run(["bash", "-n", "-c", command], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def test_main_job_installs_through_the_helper_not_sudo():
    steps = [s.strip() for s in MAIN_JOB.split("&&")]
    assert steps[0] == "sh scripts/install_data.sh"
    assert steps[-1] == ".venv/bin/gluon-bn reproduce d2l-en"
    assert "sudo" not in MAIN_JOB


@pytest.mark.parametrize("shell", SHELLS)
def test_helper_parses_as_posix_sh(shell):
    result = subprocess.run([shell, "-n", str(SCRIPT)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


@pytest.mark.skipif(
    not all((SYSTEM_DATA / f"{f}.gz").exists() or (SYSTEM_DATA / f).exists() for f in FILES),
    reason="dataset-fashion-mnist not installed",
)
def test_helper_on_this_machine_sees_the_installed_data_quickly():
    # --dry-run: even if something were missing here, nothing would be installed.
    env = {
        k: v for k, v in os.environ.items() if k not in ("GLUON_BN_DATA", "GLUON_BN_DATASET_DIR")
    }
    env["MXNET_HOME"] = "/nonexistent"
    start = time.monotonic()
    result = subprocess.run(
        ["sh", str(SCRIPT), "--dry-run"],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert time.monotonic() - start < 10
    assert f"Fashion-MNIST is already there: {SYSTEM_DATA}" in result.stdout


# --- the helper's branches, with stubbed system commands ---------------------------------

STUBS = {
    # id -u: $FAKE_UID
    "id": 'echo "${FAKE_UID:-0}"\n',
    # python3 -c 'import ensurepip, venv': succeeds unless FAKE_NO_VENV=1
    "python3": '[ "${FAKE_NO_VENV:-0}" = 1 ] && exit 1\nexit 0\n',
    "apt-cache": '[ "${FAKE_APT_KNOWN:-1}" = 1 ] && exit 0\nexit 100\n',
    "apt-get": """echo "apt-get $*" >> "$CALLS"
[ "$1" = install ] || exit 0
[ "${FAKE_APT_FAIL:-0}" = 1 ] && exit 100
case " $* " in
    *" dataset-fashion-mnist "*)
        for f in train-images-idx3-ubyte train-labels-idx1-ubyte t10k-images-idx3-ubyte \\
                 t10k-labels-idx1-ubyte; do : > "$GLUON_BN_DATASET_DIR/$f.gz"; done ;;
esac
exit 0
""",
    "sudo": 'echo "sudo $*" >> "$CALLS"\nexec "$@"\n',
}


@pytest.fixture
def fake_system(tmp_path):
    """Run the helper with only stub commands on PATH; return (run, calls, dataset_dir)."""
    bin_dir, data_dir, calls = tmp_path / "bin", tmp_path / "datasets", tmp_path / "calls"
    browser_dir = (
        tmp_path / "browser"
    )  # Chromium and its driver, present unless a test removes them
    for folder in (bin_dir, data_dir, browser_dir):
        folder.mkdir()
    for name in ("chromium", "chromedriver"):
        (browser_dir / name).write_text("")
        (browser_dir / name).chmod(0o755)
    calls.write_text("")
    shell_path = shutil.which("sh")
    for name in ("cat", "sed"):
        os.symlink(shutil.which(name), bin_dir / name)

    def run(*args, shell="sh", stubs=("id", "python3", "apt-cache", "apt-get"), **fake):
        for name in stubs:
            stub = bin_dir / name
            if not stub.exists():
                stub.write_text(f"#!{shell_path}\n" + STUBS[name])
                stub.chmod(0o755)
        for name in set(STUBS) - set(stubs):
            if (bin_dir / name).exists():
                (bin_dir / name).unlink()
        env = {
            "PATH": str(bin_dir),
            "HOME": str(tmp_path / "home"),
            "CALLS": str(calls),
            "MXNET_HOME": str(tmp_path / "mxnet"),
            "GLUON_BN_DATASET_DIR": str(data_dir),
            "GLUON_BN_BROWSER_DIR": str(browser_dir),
            "CXX": "c++",
        }  # a compiler, unless a test passes CXX=""
        env.update({k: str(v) for k, v in fake.items()})
        result = subprocess.run(
            [shutil.which(shell), str(SCRIPT), *args],
            capture_output=True,
            text=True,
            env=env,
            timeout=30,
        )
        return result, calls.read_text().splitlines()

    return run, data_dir


def _fill(directory: Path, gz=True):
    directory.mkdir(parents=True, exist_ok=True)
    for f in FILES:
        (directory / (f + ".gz" if gz else f)).write_bytes(b"")


@pytest.mark.parametrize("shell", SHELLS)
def test_helper_does_nothing_when_the_data_is_there(fake_system, shell):
    run, data_dir = fake_system
    _fill(data_dir)
    result, calls = run(shell=shell, stubs=("id", "python3", "apt-cache", "apt-get", "sudo"))
    assert result.returncode == 0, result.stderr
    assert calls == []
    assert f"Fashion-MNIST is already there: {data_dir}" in result.stdout
    assert "nothing to install" in result.stdout


def test_helper_finds_the_data_where_gluon_bn_looks(fake_system, tmp_path):
    run, _ = fake_system
    _fill(tmp_path / "mine" / "fashion-mnist", gz=False)
    result, calls = run(GLUON_BN_DATA=tmp_path / "mine")
    assert result.returncode == 0 and calls == []
    assert "already there: " + str(tmp_path / "mine" / "fashion-mnist") in result.stdout
    _fill(tmp_path / "mxnet" / "datasets" / "fashion-mnist")
    result, calls = run()
    assert result.returncode == 0 and calls == []


@pytest.mark.parametrize("shell", SHELLS)
def test_helper_as_root_runs_apt_get_itself(fake_system, shell):
    run, data_dir = fake_system
    result, calls = run(
        shell=shell, stubs=("id", "python3", "apt-cache", "apt-get", "sudo"), FAKE_UID=0
    )
    assert result.returncode == 0, result.stderr
    assert calls == ["apt-get install -y dataset-fashion-mnist"]  # no sudo, no update
    assert f"Fashion-MNIST installed in {data_dir}" in result.stdout


def test_helper_adds_a_compiler_only_when_none_is_found(fake_system):
    """impl="native" compiles C++: g++ joins the list only without $CXX, c++ and g++."""
    run, data_dir = fake_system
    _fill(data_dir)
    result, calls = run(FAKE_UID=0, CXX="")
    assert result.returncode == 0, result.stderr
    assert calls == ["apt-get install -y g++"]
    result, calls = run(CXX="", stubs=("id", "python3"))  # no apt-get: advice instead
    assert len(calls) == 1 and "apt-get install -y g++, or set CXX" in result.stdout


def test_helper_adds_chromium_and_its_driver_only_where_missing(fake_system, tmp_path):
    """The website's browser test drives Debian's chromium through chromium-driver."""
    run, data_dir = fake_system
    _fill(data_dir)
    (tmp_path / "browser" / "chromedriver").unlink()
    result, calls = run(FAKE_UID=0)
    assert result.returncode == 0, result.stderr
    assert calls == ["apt-get install -y chromium-driver"]
    (tmp_path / "browser" / "chromium").unlink()
    result, calls = run(FAKE_UID=0, stubs=("id", "python3"))  # no apt-get: advice instead
    assert "apt-get install -y chromium chromium-driver" in result.stdout
    assert "browser test skips" in result.stdout


def test_helper_adds_a_chinese_font_where_fontconfig_has_none_or_chromium_comes(
    fake_system, tmp_path
):
    """Without one, Chromium draws the d2l-zh pages' title as boxes."""
    run, data_dir = fake_system
    _fill(data_dir)
    fc_list = tmp_path / "bin" / "fc-list"
    fc_list.write_text(
        f"#!{shutil.which('sh')}\n"
        '[ "$1" = :lang=zh ] && [ -n "${FAKE_ZH_FONT:-}" ] && echo "$FAKE_ZH_FONT"\n'
        "exit 0\n"
    )
    fc_list.chmod(0o755)

    def fresh_run(**fake):
        (tmp_path / "calls").write_text("")  # each run's apt-get calls alone
        return run(FAKE_UID=0, **fake)

    result, calls = fresh_run()
    assert calls == ["apt-get install -y fonts-wqy-microhei"], result.stdout
    result, calls = fresh_run(FAKE_ZH_FONT="WenQuanYi Micro Hei")
    assert calls == [] and "nothing to install" in result.stdout
    result, calls = fresh_run(stubs=("id", "python3"))  # no apt-get: advice instead
    assert "apt-get install -y fonts-wqy-microhei" in result.stdout
    assert "draws the d2l-zh\n  title as boxes" in result.stdout
    fc_list.unlink()  # no fontconfig yet: only with Chromium, which brings it
    result, calls = fresh_run()
    assert calls == []
    (tmp_path / "browser" / "chromium").unlink()
    result, calls = fresh_run()
    assert calls == ["apt-get install -y chromium fonts-wqy-microhei"]


def test_helper_updates_apt_first_when_the_package_is_unknown(fake_system):
    run, _ = fake_system
    result, calls = run(FAKE_UID=0, FAKE_APT_KNOWN=0)
    assert result.returncode == 0, result.stderr
    assert calls == ["apt-get update", "apt-get install -y dataset-fashion-mnist"]


@pytest.mark.parametrize("shell", SHELLS)
def test_helper_as_a_user_goes_through_sudo(fake_system, shell):
    run, _ = fake_system
    result, calls = run(
        shell=shell, stubs=("id", "python3", "apt-cache", "apt-get", "sudo"), FAKE_UID=1000
    )
    assert result.returncode == 0, result.stderr
    assert calls == [
        "sudo apt-get install -y dataset-fashion-mnist",
        "apt-get install -y dataset-fashion-mnist",
    ]


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("case", ["user-without-sudo", "no-apt", "install-fails"])
def test_helper_explains_the_alternatives_and_exits_0(fake_system, shell, case):
    run, _ = fake_system
    stubs = {
        "user-without-sudo": ("id", "python3", "apt-cache", "apt-get"),
        "no-apt": ("id", "python3"),
        "install-fails": ("id", "python3", "apt-cache", "apt-get"),
    }[case]
    fake = {
        "user-without-sudo": {"FAKE_UID": 1000},
        "no-apt": {"FAKE_UID": 0},
        "install-fails": {"FAKE_UID": 0, "FAKE_APT_FAIL": 1},
    }[case]
    result, calls = run(shell=shell, stubs=stubs, **fake)
    assert result.returncode == 0, result.stderr
    why = {
        "user-without-sudo": "not root and no sudo",
        "no-apt": "apt-get is not available here",
        "install-fails": "apt-get install dataset-fashion-mnist failed",
    }[case]
    assert why in result.stdout
    assert "--data-root DIR" in result.stdout and "downloads it on first use" in result.stdout
    if case == "user-without-sudo":
        assert calls == []


def test_helper_adds_python3_venv_only_when_python_lacks_it(fake_system):
    run, data_dir = fake_system
    _fill(data_dir)
    result, calls = run(FAKE_UID=0, FAKE_NO_VENV=1)
    assert result.returncode == 0, result.stderr
    assert calls == ["apt-get install -y python3-venv"]


def test_helper_dry_run_prints_and_installs_nothing(fake_system):
    run, data_dir = fake_system
    result, calls = run(
        "--dry-run",
        FAKE_UID=1000,
        FAKE_APT_KNOWN=0,
        stubs=("id", "python3", "apt-cache", "apt-get", "sudo"),
    )
    assert result.returncode == 0, result.stderr
    assert calls == []
    assert "running: sudo apt-get update" in result.stdout
    assert "running: sudo apt-get install -y dataset-fashion-mnist" in result.stdout
    assert not any(data_dir.iterdir())


def test_helper_rejects_unknown_options(fake_system):
    run, _ = fake_system
    result, calls = run("--yes")
    assert result.returncode == 2 and "unknown option --yes" in result.stderr and calls == []


# --- the extras ------------------------------------------------------------------------------


def _pyproject():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python < 3.11
        tomllib = pytest.importorskip("tomli")
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def test_extras_with_d2l_keep_an_ipython_that_its_matplotlib_can_use():
    project = _pyproject()
    for extra, requirements in project["optional-dependencies"].items():
        if any(r.replace(" ", "").startswith("d2l==1.0.3") for r in requirements):
            ipython = [r for r in requirements if r.lower().startswith("ipython")]
            assert ipython and "<9.16" in ipython[0], (extra, requirements)


def test_notebooks_extra_installs_jupyterlab_and_the_kernel_and_tqdm_is_a_dependency():
    project = _pyproject()
    notebooks = " ".join(project["optional-dependencies"]["notebooks"])
    assert "jupyterlab" in notebooks and "ipykernel" in notebooks
    assert any(r.startswith("tqdm") for r in project["dependencies"])
