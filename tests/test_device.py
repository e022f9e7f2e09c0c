"""course.pick_device: CUDA when present, else CPU; COURSE_DEVICE overrides."""

import pytest
import torch

from course import DeviceUnavailable, pick_device


def test_default_follows_what_pytorch_sees(monkeypatch):
    monkeypatch.delenv("COURSE_DEVICE", raising=False)
    assert pick_device().type == ("cuda" if torch.cuda.is_available() else "cpu")


@pytest.mark.parametrize("value", ["cpu", "CPU", " cpu "])
def test_cpu_can_always_be_forced(monkeypatch, value):
    monkeypatch.setenv("COURSE_DEVICE", value)
    assert pick_device() == torch.device("cpu")


def test_cuda_asked_for_but_absent_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceUnavailable) as info:
        pick_device()
    text = str(info.value)
    assert "no CUDA device" in text and "README" in text  # English
    assert "CUDA-устройство" in text  # and Russian


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_cuda_when_asked_and_present(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "cuda")
    assert pick_device().type == "cuda"


def test_unknown_value_says_what_is_allowed(monkeypatch):
    monkeypatch.setenv("COURSE_DEVICE", "tpu")
    with pytest.raises(ValueError, match="'cpu' or 'cuda'"):
        pick_device()
