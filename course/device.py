"""Which device the course's tensors live on."""

import os

import torch

from course.i18n import message


class DeviceUnavailable(RuntimeError):
    """COURSE_DEVICE asks for a device this machine does not have."""


def pick_device() -> torch.device:
    """CUDA when PyTorch sees a GPU, else the CPU; ``COURSE_DEVICE=cpu|cuda`` overrides."""
    wanted = os.environ.get("COURSE_DEVICE", "").strip().lower()
    if wanted == "":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if wanted == "cpu":
        return torch.device("cpu")
    if wanted == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(_both("cuda_absent"))
        return torch.device("cuda")
    raise ValueError(_both("device_env", value=wanted))


def _both(key: str, **fields) -> str:
    # Raised before a notebook has chosen its language, so say it in both.
    return message(key, "en", **fields) + "\n" + message(key, "ru", **fields)
