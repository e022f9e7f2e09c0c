"""The library the course notebooks import: checks for test cells, device choice,
autograd graph views, plots, and every message in Russian and English."""

from course.checks import (
    CheckFailed,
    check_grad_fn_chain,
    check_scalar,
    check_tensor,
    check_true,
    check_type,
    check_value,
    grad_fn_chain,
)
from course.device import DeviceUnavailable, pick_device
from course.graph import draw_graph, graph_tree
from course.i18n import get_language, set_language

__all__ = [
    "CheckFailed",
    "DeviceUnavailable",
    "check_grad_fn_chain",
    "check_scalar",
    "check_tensor",
    "check_true",
    "check_type",
    "check_value",
    "draw_graph",
    "get_language",
    "grad_fn_chain",
    "graph_tree",
    "pick_device",
    "set_language",
]
