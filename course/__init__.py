"""The library the course notebooks import: checks for test cells, device choice,
autograd graph views, plots, and every message in Russian and English.

Names load on first use (PEP 562): ``import course`` and the catalogue
(``course.i18n``) do not import torch, so the grader's pages are written without it.
"""

import importlib

_HOMES = {
    "CheckFailed": "course.checks",
    "check_grad_fn_chain": "course.checks",
    "check_scalar": "course.checks",
    "check_tensor": "course.checks",
    "check_true": "course.checks",
    "check_type": "course.checks",
    "check_value": "course.checks",
    "grad_fn_chain": "course.checks",
    "DeviceUnavailable": "course.device",
    "pick_device": "course.device",
    "draw_graph": "course.graph",
    "graph_tree": "course.graph",
    "get_language": "course.i18n",
    "set_language": "course.i18n",
}

__all__ = sorted(_HOMES)


def __getattr__(name: str):
    if name not in _HOMES:
        raise AttributeError(f"module 'course' has no attribute {name!r}")
    value = getattr(importlib.import_module(_HOMES[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
