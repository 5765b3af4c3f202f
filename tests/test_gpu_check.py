"""`make gpu-check` (bench/gpu_check.py) at smoke scale on the CPU: every step runs end to end,
the outputs have the shape the dry-run cost model reads, and the time budget holds (a step
over its limit is recorded as timed out, the others go on). No timing is asserted as speed."""
import json
import os
import re
import subprocess
import sys

import pytest

from bench.gpu_check import SHARES, STEPS, parse_limits

@pytest.mark.slow
def test_smoke_run_writes_both_files_and_honours_the_budget(tmp_path):
    out = tmp_path / "bench"
    budget_s = 150
    # the baseline step is made to hang (gpu_check.HANG_ENV), so its limit must stop it, whatever the machine's speed
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--smoke", "--out", str(out),
                           "--budget-min", str(budget_s / 60), "--limit", "baseline=0.3"],
                          capture_output=True, text=True, timeout=budget_s + 60,
                          env=os.environ | {"LOGIT_KD_GPU_CHECK_HANG": "baseline"})
    assert proc.returncode == 0, proc.stderr[-3000:]

    data = json.loads((out / "gpu_throughput.json").read_text())
    assert set(data) == {"device", "torch", "date", "models", "pairs"}
    assert isinstance(data["device"], str) and data["device"] and isinstance(data["torch"], str)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", data["date"])
    assert data["models"] and data["pairs"]
    for name, m in data["models"].items():
        assert set(m) == {"train_img_s", "eval_img_s", "batch_size", "input"}, name
        assert m["train_img_s"] > 0 and m["eval_img_s"] > 0 and isinstance(m["batch_size"], int)
        assert m["input"] in ("cifar", "imagenet")
    for key, p in data["pairs"].items():
        assert re.fullmatch(r"\w+->\w+", key) and set(p) == {"train_img_s", "batch_size", "input"}
        assert p["train_img_s"] > 0 and p["input"] in ("cifar", "imagenet")
    assert {"wrn_16_2->wrn_16_1", "resnet18->MobileNetV1"} <= set(data["pairs"])

    report = json.loads((out / "gpu_check.json").read_text())
    steps = report["steps"]
    assert list(steps) == list(STEPS)
    # the budget: every step's deadline inside it, and a step over its limit is killed there
    assert all(s["start_s"] + s["limit_s"] <= budget_s for s in steps.values())
    assert steps["baseline"]["status"] == "timed out" and steps["baseline"]["limit_s"] == pytest.approx(0.3)
    assert steps["baseline"]["elapsed_s"] < 0.3 + 10           # killed, not waited for
    assert all(s["status"] == "ok" for n, s in steps.items() if n != "baseline"), \
        {n: (s["status"], s.get("error")) for n, s in steps.items()}
    assert report["wall_s"] <= budget_s
    for variant in ("engine_plain", "engine_fast", "engine_cached", "engine_full"):
        assert steps[variant]["images_per_s"] > 0 and steps[variant]["epochs_timed"] >= 1
    assert steps["sweep"]["loop_ratio"] > 0 and steps["sweep"]["group"]["students"] == 6

    md = (out / "gpu.md").read_text()
    assert data["device"] in md and "torch " + data["torch"] in md
    assert "| baseline | timed out |" in md
    for step in STEPS:
        assert f"| {step} |" in md
    assert "6 KL students" in md and "wrn_16_2->wrn_16_1" in md and "extrapolated" in md


def test_budget_shares_and_limit_flags():
    assert sum(SHARES.values()) <= 1.0 and set(SHARES) == set(STEPS)
    assert parse_limits(["pairs=12", "baseline=0.5"]) == {"pairs": 12.0, "baseline": 0.5}
    from common import UserError

    for bad in (["nosuchstep=3"], ["pairs"], ["pairs=soon"]):
        with pytest.raises(UserError):
            parse_limits(bad)


@pytest.mark.slow
def test_no_gpu_is_one_line_error_and_writes_nothing(tmp_path):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    proc = subprocess.run([sys.executable, "-m", "bench.gpu_check", "--out", str(tmp_path / "bench")],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and "no CUDA GPU" in proc.stderr
    assert not (tmp_path / "bench").exists()
