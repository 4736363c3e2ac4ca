"""Figures of a compression report, saved as PNG files (matplotlib)."""

import os

_PLOTS_EXTRA = "pip install teacherclass[plots]"


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
      its chunk), when measured.
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
        ImportError: without matplotlib (`pip install
            teacherclass[plots]`).
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
        fig, ax = plt.subplots(figsize=(5.5, 4))
        # Exports sit on the composed model's point: distinct hollow
        # markers of decreasing size keep every one of them visible.
        markers = "os^Dv<>ph"
        for k, (name, params, acc) in enumerate(points):
            hollow = k >= num_models
            ax.scatter(
                params,
                acc,
                s=max(25, 140 - 25 * k) if hollow else 45,
                marker=markers[k % len(markers)],
                facecolors="none" if hollow else f"C{k}",
                edgecolors=f"C{k}",
                linewidths=1.5,
                label=name,
            )
        ax.set_xscale("log")
        ax.set_xlabel("parameters")
        ax.set_ylabel("accuracy")
        accs = [p[2] for p in points]
        span = max(0.02, max(accs) - min(accs))
        ax.set_ylim(
            max(0.0, min(accs) - 0.3 * span),
            min(1.02, max(accs) + 0.3 * span),
        )
        params = [p[1] for p in points]
        ax.set_xlim(min(params) / 3, max(params) * 3)
        ax.legend(fontsize=8, loc="lower right")
        ax.set_title(
            f"accuracy vs parameters ({report['compression_ratio']:.1f}x "
            "smaller)"
        )
        ax.grid(True, alpha=0.3)
        written.append(_save(fig, plt, directory, "accuracy_vs_params.png"))

    errors = [
        (name.replace("_", " "), m["mse"])
        for name, m in models.items()
        if m.get("mse") is not None
    ]
    if errors:
        fig, ax = plt.subplots(figsize=(5.5, 3.5))
        ax.bar([e[0] for e in errors], [e[1] for e in errors])
        ax.set_ylabel("MSE against its chunk")
        ax.set_title("each student's regression error")
        ax.grid(True, axis="y", alpha=0.3)
        written.append(_save(fig, plt, directory, "student_errors.png"))

    histories = {
        k: _history_dict(v)
        for k, v in (histories or {}).items()
        if _history_dict(v)
    }
    if histories:
        fig, axes = plt.subplots(
            1, len(histories), figsize=(5 * len(histories), 3.5), squeeze=False
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
    ax.legend(lines, [ln.get_label() for ln in lines], fontsize=7)


def _save(fig, plt, directory, name):
    path = os.path.join(directory, name)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
