"""benchmarks/bench_embed.py's device handling, with torch.cuda mocked (no GPU here): what the GPU script
(benchmarks/gpu_embed.sh) relies on before it ever reaches a GPU."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parent.parent / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    sys.path.insert(0, str(BENCH))  # bench_embed imports its sibling results_md
    try:
        spec = importlib.util.spec_from_file_location("bench_embed", BENCH / "bench_embed.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        yield module
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture
def fake_cuda(monkeypatch):
    calls = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "synchronize", lambda device=None: calls.append(("sync", str(device))))
    monkeypatch.setattr(torch.cuda, "reset_peak_memory_stats", lambda device=None: calls.append(("reset", str(device))))
    monkeypatch.setattr(torch.cuda, "max_memory_allocated", lambda device=None: 3 * 2**30)
    return calls


def test_cuda_clock_synchronizes_and_reports_peak_gpu_memory(bench, fake_cuda):
    device, dtype = bench.resolve("cuda", "fp16")
    assert (str(device), dtype) == ("cuda:0", torch.float16)
    clock = bench.Clock(device)
    clock.start()
    assert clock.seconds() >= 0
    assert fake_cuda == [("sync", "cuda:0"), ("reset", "cuda:0"), ("sync", "cuda:0")]  # GPU work is finished
    assert clock.peak_gpu_mb() == 3 * 1024


def test_cpu_clock_counts_cpu_seconds_without_cuda(bench, monkeypatch):
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *a: pytest.fail("no CUDA call on CPU"))
    clock = bench.Clock(torch.device("cpu"))
    clock.start()
    sum(range(10**5))
    assert clock.seconds() > 0 and clock.peak_gpu_mb() is None


def test_cuda_without_gpu_and_fp16_on_cpu_exit_with_a_reason(bench, monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(SystemExit, match="no CUDA GPU"):
        bench.resolve("cuda", "bf16")
    with pytest.raises(SystemExit, match="fp16 is for CUDA"):
        bench.resolve("cpu", "fp16")


def _row(forward, rate, **kw):
    return {
        "arch": "650M",
        "batching": "budget",
        "precision": "fp16",
        "forward": forward,
        "proteins": 8,
        "mean_len": 400.0,
        "residues_per_busy_s": rate,
        "residues_per_s": rate,
        "gflops_per_busy_s": 100.0,
        "matmul_gflops_per_busy_s": 400.0,
        "peak_gpu_mb": 2048.0,
        "peak_rss_mb": 900.0,
        "rss_model_mb": 800.0,
        "sdpa_backend": "EFFICIENT_ATTENTION" if forward == "ours" else "none",
        **kw,
    }


def test_gpu_table_reports_speedup_peak_gpu_memory_and_kernel(bench):
    rows = [_row("fair-esm", 1000.0), _row("ours", 2500.0)]
    text = bench.forward_table(rows, cuda=True)
    assert "peak GPU MB" in text and "| 2.50x |" in text and "EFFICIENT_ATTENTION" in text and "2,048" in text
    assert "650M fp16, token budget: ours / fair-esm = 2.50x\n" in bench.summary(rows, cuda=True)
