"""`gluon-bn doctor` tells what works: data, MXNet and NumPy, GPUs, CUDA libraries, threads."""

import io
import os
import subprocess
import sys

import numpy as np
import pytest
from _run_helpers import HOPPER_FAILURE, run

from gluon_bn import doctor


def test_doctor_exits_0_here_and_names_the_data_and_no_gpu(fashion_root):
    status, out, err = run(["doctor"])
    assert status == 0, out + err
    assert f"Fashion-MNIST found in {fashion_root}, verified" in out
    assert "mxnet 1.9.1" in out and "numpy 1.23" in out and "work together" in out
    assert "MKLDNN on" in out and "OMP_NUM_THREADS" in out and "os.cpu_count()" in out
    if doctor.check_gpus()[0].message.startswith("no GPU"):
        assert "no GPU" in out
    assert "Ready" in out


def test_doctor_gpu_check_explains_hopper():
    checks = doctor.check_gpus(
        count=lambda: 1,
        probe=lambda i: HOPPER_FAILURE,
        query=lambda: [("NVIDIA H100 80GB HBM3", "9.0")],
        cuda_build=True,
    )
    assert len(checks) == 1 and checks[0].status == doctor.WARN
    text = doctor.format_checks(checks)
    assert "gpu(0) NVIDIA H100 80GB HBM3, compute capability 9.0: MXNet cannot run" in text
    assert "no kernel image" in text and "sm_50/60/70/80/86 and no PTX" in text
    assert "--device cpu" in text
    assert doctor.ready(checks)  # the CPU still runs the job


def test_doctor_gpu_check_other_cases():
    working = doctor.check_gpus(
        count=lambda: 2,
        probe=lambda i: (True, ""),
        query=lambda: [("A100", "8.0"), ("RTX 4090", "8.9")],
        cuda_build=True,
    )
    assert [c.status for c in working] == [doctor.OK, doctor.OK]
    assert "RTX 4090, compute capability 8.9: MXNet kernels run" in working[1].message
    cpu_wheel = doctor.check_gpus(
        count=lambda: 0,
        probe=lambda i: (False, ""),
        query=lambda: [("A100", "8.0")],
        cuda_build=False,
    )
    assert cpu_wheel[0].status == doctor.WARN and "gluon-bn[cu112]" in cpu_wheel[0].fix
    none = doctor.check_gpus(
        count=lambda: 0, probe=lambda i: (False, ""), query=lambda: None, cuda_build=False
    )
    assert none[0].status == doctor.INFO and none[0].message.startswith("no GPU")
    unknown_cap = doctor.check_gpus(
        count=lambda: 1,
        probe=lambda i: (False, "cudnn missing"),
        query=lambda: None,
        cuda_build=True,
    )
    assert "compute capability unknown" in unknown_cap[0].message
    assert "CUDA libraries" in unknown_cap[0].fix


@pytest.mark.parametrize(
    "cap,runs",
    [
        ("5.2", True),
        ("7.5", True),
        ("8.0", True),
        ("8.9", True),
        ("9.0", False),
        ("3.7", False),
        ("unknown", None),
    ],
)
def test_cu112_architectures(cap, runs):
    assert doctor.cu112_runs_on(cap) is runs


def test_doctor_cuda_library_search(tmp_path):
    lib = tmp_path / "nvidia" / "cudnn" / "lib"
    lib.mkdir(parents=True)
    (lib / "libcudnn.so.8").write_bytes(b"")
    ldconfig = "\tlibnccl.so.2 (libc6,x86-64) => /usr/lib/x86_64-linux-gnu/libnccl.so.2\n"
    found = doctor.find_cuda_libraries([str(tmp_path)], ldconfig)
    assert found == {
        "libcudart.so.11": [],
        "libcudnn.so.8": [str(lib / "libcudnn.so.8")],
        "libnccl.so.2": ["/usr/lib/x86_64-linux-gnu/libnccl.so.2"],
    }
    check = doctor.check_cuda_libraries(found, cuda_build=True)[0]
    assert check.status == doctor.WARN and "libcudart.so.11" in check.message
    assert doctor.check_cuda_libraries(found, cuda_build=False)[0].status == doctor.INFO


def test_doctor_fails_without_data_and_with_numpy_too_new(tmp_path, monkeypatch):
    data = doctor.check_data(str(tmp_path), env={})
    assert data[-1].status == doctor.FAIL and str(tmp_path) in "\n".join(data[-1].details)
    assert not doctor.ready(data)
    out = io.StringIO()
    assert doctor.run_doctor(file=out, data_root=str(tmp_path)) == 1
    assert "Not ready" in out.getvalue()
    monkeypatch.setattr(np, "__version__", "1.26.4")
    checks = doctor.check_mxnet_numpy()
    assert checks[0].status == doctor.FAIL and "numpy<1.24" in checks[0].fix
    assert not doctor.ready(checks)


def test_doctor_thread_oversubscription_is_a_warning():
    cores = len(os.sched_getaffinity(0))
    check = doctor.check_threads({"OMP_NUM_THREADS": str(cores * 4)})[0]
    assert check.status == doctor.WARN and "oversubscribe" in check.fix
    assert doctor.check_threads({"OMP_NUM_THREADS": "1"})[0].status == doctor.OK
    naive = {
        "MXNET_ENGINE_TYPE": "NaiveEngine",
        "OMP_NUM_THREADS": str(cores),
        "MXNET_CPU_WORKER_NTHREADS": "4",
    }  # workers are not used by NaiveEngine
    assert doctor.check_threads(naive)[0].status == doctor.OK


def test_doctor_reports_an_mxnet_that_fails_to_import():
    """`import gluon_bn` does not load MXNet, so the doctor can describe a broken one."""
    code = (
        "import sys; sys.modules['mxnet'] = None; from gluon_bn.cli import main; "
        "sys.exit(main(['doctor']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "[FAIL] mxnet" in proc.stdout and "pip install 'gluon-bn[cpu]'" in proc.stdout
    assert "Traceback" not in proc.stderr


def test_doctor_says_whether_the_native_operator_builds():
    assert [(c.status, c.message) for c in doctor.check_native(lambda: None)] == [
        ("ok", "--bn-impl native: the C++ operator builds and loads")
    ]
    [missing] = doctor.check_native(lambda: "impl='native' ... found no C++ compiler\n(more)")
    assert missing.status == "info" and "optional" in missing.message
    assert missing.details == ["impl='native' ... found no C++ compiler", "(more)"]
