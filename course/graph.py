"""Show the autograd graph behind a tensor: as a text tree or a matplotlib picture.

Node names only (``MulBackward0``, ``AccumulateGrad``), never memory addresses,
so the output is the same on every run and every device.
"""

import torch

from course.i18n import message


def _label(node, names: dict[int, str]) -> str:
    label = type(node).__name__
    variable = getattr(node, "variable", None)
    if isinstance(variable, torch.Tensor):
        shown = names.get(id(variable))
        shape = "×".join(str(s) for s in variable.shape) or "scalar"
        label += f" ({shown}, {shape})" if shown else f" ({shape})"
    return label


def graph_tree(tensor: torch.Tensor, names: dict[str, torch.Tensor] | None = None) -> str:
    """A text tree of the backward graph of ``tensor``, root first.

    ``names`` maps display names to leaf tensors so that each ``AccumulateGrad``
    says which tensor it feeds, e.g. ``graph_tree(loss, {"w": w, "b": b})``.
    """
    by_id = {id(t): n for n, t in (names or {}).items()}
    if tensor.grad_fn is None:
        return message("graph.no_grad_fn")
    lines = [_label(tensor.grad_fn, by_id)]

    def walk(node, prefix: str) -> None:
        children = [fn for fn, _ in node.next_functions if fn is not None]
        for i, child in enumerate(children):
            last = i == len(children) - 1
            lines.append(prefix + ("└── " if last else "├── ") + _label(child, by_id))
            walk(child, prefix + ("    " if last else "│   "))

    walk(tensor.grad_fn, "")
    return "\n".join(lines)


def draw_graph(tensor: torch.Tensor, names: dict[str, torch.Tensor] | None = None, ax=None):
    """Draw the backward graph of ``tensor`` with matplotlib (no graphviz needed).

    The root (the last operation) is at the top; arrows point the way gradients flow.
    Returns the matplotlib Axes.
    """
    import matplotlib.pyplot as plt

    by_id = {id(t): n for n, t in (names or {}).items()}
    depth: dict[int, int] = {}
    nodes: dict[int, object] = {}
    edges: list[tuple[int, int]] = []

    def visit(node, level: int) -> None:
        key = id(node)
        if key in depth:
            depth[key] = max(depth[key], level)
        else:
            depth[key] = level
            nodes[key] = node
        for child, _ in node.next_functions:
            if child is not None:
                edges.append((key, id(child)))
                visit(child, level + 1)

    if tensor.grad_fn is not None:
        visit(tensor.grad_fn, 0)
    levels: dict[int, list[int]] = {}
    for key in nodes:
        levels.setdefault(depth[key], []).append(key)
    position = {}
    for level, keys in levels.items():
        for i, key in enumerate(keys):
            position[key] = (i - (len(keys) - 1) / 2, -level)

    if ax is None:
        width = max((len(k) for k in levels.values()), default=1)
        _, ax = plt.subplots(figsize=(2.8 * width + 1, 1.1 * len(levels) + 1))
    for parent, child in set(edges):
        (x0, y0), (x1, y1) = position[parent], position[child]
        ax.annotate(
            "",
            xy=(x1, y1 + 0.18),
            xytext=(x0, y0 - 0.18),
            arrowprops={"arrowstyle": "->", "color": "0.4"},
        )
    for key, node in nodes.items():
        x, y = position[key]
        leaf = type(node).__name__ == "AccumulateGrad"
        ax.text(
            x,
            y,
            _label(node, by_id),
            ha="center",
            va="center",
            fontsize=9,
            bbox={"boxstyle": "round", "fc": "#dbeafe" if leaf else "#fef3c7", "ec": "0.3"},
        )
    ax.set_xlim(
        min((p[0] for p in position.values()), default=0) - 1,
        max((p[0] for p in position.values()), default=0) + 1,
    )
    ax.set_ylim(-len(levels) + 0.5, 0.5)
    ax.axis("off")
    return ax
