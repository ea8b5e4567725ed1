"""Device, autocast precision and torch.distributed rank handling."""

from __future__ import annotations

import os
from typing import NamedTuple

import torch

from cafa_mlflow.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "fp16")
DEVICES = ("auto", "cpu", "cuda")


class Dist(NamedTuple):
    rank: int
    world_size: int
    local_rank: int


def dist_env() -> Dist:
    """Rank info from torchrun's environment variables; (0, 1, 0) when not launched by torchrun."""
    if "RANK" in os.environ and "WORLD_SIZE" in os.environ:
        return Dist(int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"]), int(os.environ.get("LOCAL_RANK", 0)))
    return Dist(0, 1, 0)


def resolve_device(device: str, local_rank: int = 0) -> torch.device:
    """'auto' -> CUDA when available else CPU; under torchrun each rank gets cuda:<local_rank>."""
    if device not in DEVICES:
        raise ConfigError(f"embed.device={device!r}: choose one of {', '.join(DEVICES)}")
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        if not torch.cuda.is_available():
            raise ConfigError("embed.device=cuda but torch sees no CUDA GPU; use device: auto or cpu.")
        return torch.device("cuda", local_rank % torch.cuda.device_count())
    return torch.device("cpu")


def autocast_dtype(precision: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for `precision` on `device`; None means plain fp32."""
    if precision not in PRECISIONS:
        raise ConfigError(f"embed.precision={precision!r}: choose one of {', '.join(PRECISIONS)}")
    if precision == "fp32":
        return None
    if device.type == "cpu":
        if precision == "fp16":
            raise ConfigError("embed.precision=fp16 is for CUDA GPUs; on CPU use bf16 or fp32.")
        return torch.bfloat16
    if precision == "bf16" and not torch.cuda.is_bf16_supported():
        raise ConfigError(f"{torch.cuda.get_device_name(device)} does not support bf16; use precision fp16 or fp32.")
    return torch.bfloat16 if precision == "bf16" else torch.float16


def init_distributed(dist: Dist, device: torch.device) -> bool:
    """Join the torchrun process group (gloo on CPU, nccl on CUDA); True when this call created it."""
    if dist.world_size == 1 or not torch.distributed.is_available() or torch.distributed.is_initialized():
        return False
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.distributed.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return True


def barrier(dist: Dist) -> None:
    if dist.world_size > 1 and torch.distributed.is_initialized():
        torch.distributed.barrier()
