"""Figures of a compression report, saved as PNG files (matplotlib)."""

import os

_PLOTS_EXTRA = (
    "pip install matplotlib (or, in a clone of the repository, "
    'pip install ".[plots]")'
)


def _pyplot():
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError as e:
        raise ImportError(
            f"Figures need matplotlib: {_PLOTS_EXTRA}. ({e})"
        ) from e
    return plt


def _history_dict(history):
    return getattr(history, "history", history) or {}


def save_figures(report, directory, histories=None):
    """Saves a report's figures as PNG files in `directory`.

    - `accuracy_vs_params.png`: test accuracy against parameters (log
      scale) of the teacher, the composed model and each export (plotted
      at the composed model's parameters), when accuracy was measured.
    - `student_errors.png`: each student's regression error (MSE against
      its chunk) on the data given to `measure` (the `teacherclass`
      command gives the test split), when measured.
    - `training_curves.png`: each metric of each `History`, one panel per
      history, when `histories` is given.

    Args:
        report: a `CompressionReport` (from `measure`).
        directory: where to write (created if missing).
        histories: optional dict `{title: History or history dict}`, e.g.
            `{"teacher": tc.fit_teacher(...), "students":
            tc.fit_students(...)}`.

    Returns:
        The list of written paths.

    Raises:
        ImportError: without matplotlib (`pip install matplotlib`, or
            `pip install ".[plots]"` in a clone of the repository).
    """
    plt = _pyplot()
    os.makedirs(directory, exist_ok=True)
    written = []
    models = report.get("models", {})

    points = [
        (name, m["params"], m["accuracy"])
        for name, m in models.items()
        if m.get("accuracy") is not None
    ]
    num_models = len(points)
    # Exported artifacts of the composed model (not .keras copies of the
    # models already plotted) sit at the composed model's parameters.
    points += [
        (name, report["composed_params"], e["accuracy"])
        for name, e in (report.get("exports") or {}).items()
        if e.get("accuracy") is not None and e.get("format") != "keras"
    ]
    if points:
        # Exports sit on the composed model's point: distinct hollow
        # markers of decreasing size keep every one of them visible.
        markers = "os^Dv<>ph"
        series = [
            {
                "name": name,
                "params": [params],
                "accuracy": [acc],
                "marker": markers[k % len(markers)],
                "hollow": k >= num_models,
                "size": max(5, 12 - 2 * k) if k >= num_models else 7,
                "color": f"C{k}",
            }
            for k, (name, params, acc) in enumerate(points)
        ]
        path = os.path.join(directory, "accuracy_vs_params.png")
        plot_accuracy_vs_params(
            series,
            path,
            title=(
                "accuracy vs parameters "
                f"({report['compression_ratio']:.1f}x smaller)"
            ),
            ylabel="accuracy",
        )
        written.append(path)

    errors = [
        (name.replace("_", " "), m["mse"])
        for name, m in models.items()
        if m.get("mse") is not None
    ]
    if errors:
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        ax.bar([e[0] for e in errors], [e[1] for e in errors])
        # measure() computes it on the data it is given (the command:
        # the test split), after training: not the training loss.
        ax.set_ylabel("test MSE against its chunk")
        ax.set_title("each student's test MSE (not the training loss)")
        ax.grid(True, axis="y", alpha=0.3)
        written.append(_save(fig, plt, directory, "student_errors.png"))

    histories = {
        k: _history_dict(v)
        for k, v in (histories or {}).items()
        if _history_dict(v)
    }
    if histories:
        fig, axes = plt.subplots(
            1, len(histories), figsize=(5 * len(histories), 4), squeeze=False
        )
        for ax, (title, hist) in zip(axes[0], histories.items()):
            _plot_history(ax, title, hist)
        written.append(_save(fig, plt, directory, "training_curves.png"))
    return written


def _plot_history(ax, title, hist):
    """Losses on a log scale; other metrics on a second, linear axis."""
    losses = {k: v for k, v in hist.items() if k.endswith("loss")}
    others = {k: v for k, v in hist.items() if not k.endswith("loss")}
    lines = []
    twin = ax.twinx() if others else None
    series = [(ax, k, v) for k, v in losses.items()]
    series += [(twin, k, v) for k, v in others.items()]
    for color, (axis, key, values) in enumerate(series):
        style = "--" if key.startswith("val_") else "-"
        epochs = range(1, len(values) + 1)
        lines += axis.plot(epochs, values, style, color=f"C{color}", label=key)
    ax.xaxis.get_major_locator().set_params(integer=True)
    if losses and all(v > 0 for vs in losses.values() for v in vs):
        ax.set_yscale("log")
    ax.set_ylabel("loss" if losses else "")
    if twin is not None:
        twin.set_ylabel(", ".join(others) if len(others) < 3 else "metrics")
    ax.set_title(title)
    ax.set_xlabel("epoch")
    ax.grid(True, alpha=0.3)
    # Below the axes: a legend inside would cover a curve.
    ax.legend(
        lines,
        [ln.get_label() for ln in lines],
        fontsize=7,
        loc="upper center",
        bbox_to_anchor=(0.5, -0.2),
        ncol=min(3, len(lines)),
        frameon=False,
    )


def _save(fig, plt, directory, name):
    path = os.path.join(directory, name)
    fig.tight_layout()
    # "tight": legends placed outside the axes stay in the image.
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def plot_accuracy_vs_params(
    series,
    path,
    title,
    groups=None,
    target=None,
    ylabel="accuracy",
    x="params",
    xlabel="parameters",
):
    """Accuracy against parameters (log scale), saved as a PNG file.

    The one accuracy-vs-parameters figure of the library: `save_figures`
    draws a report's with it, `benchmarks/reproduce.py` its comparison of
    setups. The legend sits outside the axes, so it covers no point;
    with `groups`, it lists each model kind once (by marker) and each
    group once (by colour), so its length does not grow with their
    product. Per-point labels (e.g. "n = 4") are placed where they
    overlap no other label nor marker, joined to their point by a thin
    line when pushed away from it.

    Args:
        series: list of dicts, one per line or set of points:
            `name` (legend text), `params` and `accuracy` (lists of
            numbers), and optionally `std` (error bars), `group` (a key
            of `groups`: the colour), `color` (without groups), `marker`
            (default "o"), `hollow` (bool), `size` (marker size in
            points), `line` (bool: join the points in order) and
            `labels` (a text per point).
        path: the PNG file to write (its folder is created).
        title: the figure's title.
        groups: optional dict `{key: legend text}`, colours in order.
        target: optional `(accuracy, text)`: a dotted horizontal line.
        ylabel: the y axis' label.
        x: the key of each series holding the x values ("params"; see
            `plot_accuracy_vs_macs` for "macs").
        xlabel: the x axis' label, before "(log scale ...)".

    Returns:
        The matplotlib `Figure`, saved and closed.

    Raises:
        ImportError: without matplotlib (`pip install matplotlib`, or
            `pip install ".[plots]"` in a clone of the repository).
    """
    plt = _pyplot()
    from matplotlib.lines import Line2D
    from matplotlib.ticker import FuncFormatter

    groups = dict(groups or {})
    colors = {key: f"C{i}" for i, key in enumerate(groups)}
    params = sorted({p for s in series for p in s[x]})
    clusters = _clusters(params)
    fig, axes = plt.subplots(
        1,
        len(clusters),
        sharey=True,
        figsize=(7, 4.8),
        dpi=120,
        squeeze=False,
        gridspec_kw={"width_ratios": [3, 1][: len(clusters)]},
    )
    axes = list(axes[0])
    kinds = {}
    labels = []
    obstacles = []
    for k, s in enumerate(series):
        color = colors.get(s.get("group"), s.get("color", f"C{k}"))
        size = s.get("size", 7)
        style = {
            "marker": s.get("marker", "o"),
            "markersize": size,
            "markerfacecolor": "white" if s.get("hollow") else color,
            "markeredgecolor": color,
            "markeredgewidth": 1.5,
            "linestyle": ("--" if s.get("hollow") else "-")
            if s.get("line")
            else "none",
        }
        for ax in axes:  # each axes shows the points in its x range
            ax.errorbar(
                s[x],
                s["accuracy"],
                yerr=s.get("std"),
                color=color,
                capsize=3,
                **style,
            )
        stds = s.get("std") or [0] * len(s[x])
        texts = s.get("labels") or [None] * len(s[x])
        for px, py, std, text in zip(s[x], s["accuracy"], stds, texts):
            obstacles.append((px, py, size, std))
            if text:
                labels.append((px, py, text, color))
        if groups:
            # The legend shows the kind in grey; the colour is the group's.
            style = {
                **style,
                "color": "0.35",
                "markeredgecolor": "0.35",
                "markerfacecolor": "white" if s.get("hollow") else "0.35",
            }
        else:
            style["color"] = color
        kinds.setdefault(s["name"], Line2D([], [], label=s["name"], **style))
    handles = list(kinds.values())
    for ax, (low, high) in zip(axes, clusters):
        if target is not None:
            line = ax.axhline(
                target[0], color="0.4", linestyle=":", label=target[1]
            )
        ax.set_xscale("log")
        # At least a factor of 1.6 across, so close points spread out.
        pad = max(1.15, (1.6 * low / high) ** 0.5)
        ax.set_xlim(low / pad, high * pad)
        for axis in (
            ax.xaxis.set_major_formatter,
            ax.xaxis.set_minor_formatter,
        ):
            axis(FuncFormatter(_count))
        ax.tick_params(axis="x", which="both", labelsize=8)
        ax.margins(y=0.12)
        ax.grid(True, which="both", alpha=0.3)
    if target is not None:
        handles.append(line)
    if len(axes) > 1:
        # A broken x axis: no empty decades between small and large models.
        axes[0].spines["right"].set_visible(False)
        axes[1].spines["left"].set_visible(False)
        axes[1].tick_params(axis="y", which="both", left=False)
        for ax, x in ((axes[0], 1), (axes[1], 0)):
            ax.plot(
                [x, x],
                [0, 1],
                transform=ax.transAxes,
                color="0.5",
                linestyle=(0, (4, 3)),
                clip_on=False,
            )
    axes[0].set_xlabel(
        f"{xlabel} (log scale"
        + ("; the axis skips the empty range)" if len(axes) > 1 else ")"),
        loc="left",
    )
    axes[0].set_ylabel(ylabel)
    axes[0].set_title(title, loc="left")
    legend = axes[-1].legend(
        handles=handles,
        loc="upper left",
        bbox_to_anchor=(1.04, 1.0),
        borderaxespad=0.0,
        fontsize=8,
        title="model" if groups else None,
        title_fontsize=8,
    )
    legends = [legend]
    if groups:
        legends.append(
            fig.legend(
                handles=[
                    Line2D([], [], color=colors[key], linewidth=5, label=text)
                    for key, text in groups.items()
                ],
                loc="upper left",
                bbox_to_anchor=(0.0, 0.0),
                fontsize=8,
                title="setup",
                title_fontsize=8,
                frameon=False,
            )
        )
    fig.tight_layout()
    for ax, (low, high) in zip(axes, clusters):
        _place_labels(
            fig,
            ax,
            [lb for lb in labels if low <= lb[0] <= high],
            [o for o in obstacles if low <= o[0] <= high],
        )
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    # "tight" with the legends named: they sit outside the axes.
    fig.savefig(path, bbox_inches="tight", bbox_extra_artists=legends)
    plt.close(fig)
    return fig


def plot_accuracy_vs_macs(series, path, title, **kwargs):
    """Accuracy against multiply-adds per sample (log scale), as a PNG.

    The sibling of `plot_accuracy_vs_params`, in its style: the same
    series, read at their `macs` (a list of numbers, like `params`).

    Args:
        series: as for `plot_accuracy_vs_params`, each with `macs`.
        path: the PNG file to write (its folder is created).
        title: the figure's title.
        **kwargs: `groups`, `target`, `ylabel`, as for
            `plot_accuracy_vs_params`.

    Returns:
        The matplotlib `Figure`, saved and closed.

    Raises:
        ImportError: without matplotlib (`pip install matplotlib`, or
            `pip install ".[plots]"` in a clone of the repository).
    """
    return plot_accuracy_vs_params(
        series,
        path,
        title,
        x="macs",
        xlabel="multiply-adds per sample",
        **kwargs,
    )


def _count(value, _=None):
    """A parameter count in a few characters: 80k, 2.4M."""
    if value >= 1e6:
        return f"{value / 1e6:.3g}M"
    if value >= 1e3:
        return f"{value / 1e3:.3g}k"
    return f"{value:.3g}"


def _clusters(params, gap=4.0):
    """`[(low, high)]`: the parameter range, split at its widest gap.

    Split in two where the sorted counts jump by more than `gap` times
    (the teacher against its students), so neither range is squeezed.
    """
    if not params:
        return [(1, 10)]
    jumps = [(params[i + 1] / params[i], i) for i in range(len(params) - 1)]
    if jumps and max(jumps)[0] > gap:
        i = max(jumps)[1]
        return [(params[0], params[i]), (params[i + 1], params[-1])]
    return [(params[0], params[-1])]


def _overlap(a, b):
    width = min(a.x1, b.x1) - max(a.x0, b.x0)
    height = min(a.y1, b.y1) - max(a.y0, b.y0)
    return max(0.0, width) * max(0.0, height)


def _place_labels(fig, ax, labels, obstacles):
    """Annotates each point where its text overlaps nothing drawn.

    Greedy: each label, in turn, takes the first of a ring of offsets
    (growing outward) whose text box overlaps no marker, error bar nor
    label already placed and stays inside the axes; the least
    overlapping one if none is free.
    """
    if not labels:
        return
    from matplotlib.transforms import Bbox

    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    pixels = fig.dpi / 72.0
    taken = []
    for x, y, size, std in obstacles:
        px, py = ax.transData.transform((x, y))
        half = (size / 2 + 2) * pixels
        taken.append(
            Bbox.from_extents(px - half, py - half, px + half, py + half)
        )
        if std:
            _, low = ax.transData.transform((x, y - std))
            _, high = ax.transData.transform((x, y + std))
            taken.append(Bbox.from_extents(px - 4, low, px + 4, high))
    frame = ax.get_window_extent(renderer)
    offsets = []
    for radius in (8, 14, 22, 32, 44, 58):
        diagonal = 0.7 * radius
        offsets += [
            (radius, 0),
            (-radius, 0),
            (diagonal, -diagonal),
            (diagonal, diagonal),
            (-diagonal, -diagonal),
            (-diagonal, diagonal),
            (0, -radius),
            (0, radius),
        ]
    for x, y, text, color in labels:
        best = None
        for dx, dy in offsets:
            ha = "left" if dx > 0 else "right" if dx < 0 else "center"
            va = "bottom" if dy > 0 else "top" if dy < 0 else "center"
            probe = ax.annotate(
                text,
                (x, y),
                xytext=(dx, dy),
                textcoords="offset points",
                ha=ha,
                va=va,
                fontsize=8,
            )
            box = probe.get_window_extent(renderer).expanded(1.05, 1.1)
            probe.remove()
            outside = box.width * box.height - _overlap(box, frame)
            cost = outside + sum(_overlap(box, t) for t in taken)
            if best is None or cost < best[0]:
                best = (cost, dx, dy, ha, va, box)
            if cost == 0:
                break
        _, dx, dy, ha, va, box = best
        far = abs(dx) + abs(dy) > 12
        ax.annotate(
            text,
            (x, y),
            xytext=(dx, dy),
            textcoords="offset points",
            ha=ha,
            va=va,
            fontsize=8,
            color=color,
            arrowprops=(
                {"arrowstyle": "-", "color": color, "lw": 0.6, "shrinkB": 4}
                if far
                else None
            ),
        )
        taken.append(box)
