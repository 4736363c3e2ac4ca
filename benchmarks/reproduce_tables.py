"""benchmarks/reproduce.py's outputs: tables, summary and plot.

Everything here reads the results JSON (as a dict) only, so the outputs
can be rewritten from recorded results without training
(`python benchmarks/reproduce.py --dataset mnist --render-only`).
"""

import json
import string
from pathlib import Path

import numpy as np
from reproduce_settings import BASELINES
from reproduce_settings import DATASETS
from reproduce_settings import FINE_TUNING
from reproduce_settings import NOT_MEASURED
from reproduce_settings import PAPER_NOTES
from reproduce_settings import TARGETS
from reproduce_settings import changes
from reproduce_settings import describe
from reproduce_state import atomic_write
from reproduce_state import now


def _mean_std(values):
    values = np.asarray(values, dtype="float64")
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return float(values.mean()), std


def rows(state, settings_id):
    """Table rows of one configuration: teacher, classes, baselines."""
    runs = [
        r for r in state["runs"].values() if r["settings_id"] == settings_id
    ]
    if not runs:
        return []
    teacher_id = runs[0]["teacher_id"]
    teachers = [
        t for t in state["teachers"].values() if t["teacher_id"] == teacher_id
    ]
    groups = {}
    for t in teachers:
        groups.setdefault(("teacher", 0, ""), []).append(t)
    for r in runs:
        groups.setdefault((r["kind"], r["n"], r["objective"]), []).append(r)

    def order(key):
        kind, n, objective = key
        rank = {"teacher": 0, "class": 1, "distill": 2, "scratch": 3}[kind]
        return (rank, n, objective != "mse", objective)

    out = []
    teacher_params = teachers[0]["params"] if teachers else None
    for key in sorted(groups, key=order):
        kind, n, objective = key
        members = sorted(groups[key], key=lambda r: r["seed"])
        if kind == "teacher":
            label = "teacher"
        elif kind == "class":
            label = f"class, n = {n} ({objective})"
            if n == 1:
                label += ", = (a) the paper's single student"
        else:
            label = BASELINES[kind]
        params = members[0]["params"]
        mean, std = _mean_std([r["test_accuracy"] for r in members])
        out.append(
            {
                "label": label,
                "kind": kind,
                "n": n,
                "objective": objective,
                "params": params,
                "compression_ratio": (
                    teacher_params / params if teacher_params else None
                ),
                "accuracy_mean": mean,
                "accuracy_std": std,
                "seeds": [r["seed"] for r in members],
                "train_seconds_mean": float(
                    np.mean([r["train_seconds"] for r in members])
                ),
            }
        )
    return out


def targets(dataset, table):
    """Issue #3's targets checked against one configuration's rows."""
    target = TARGETS.get(dataset)
    if target is None or not table:
        return []
    lines = []
    by_key = {(r["kind"], r["n"], r["objective"]): r for r in table}
    for n in target["students"]:
        row = by_key.get(("class", n, "mse"))
        if row is None:
            lines.append(f"n = {n}: not run")
            continue
        acc_ok = row["accuracy_mean"] >= target["accuracy"]
        ratio_ok = row["compression_ratio"] >= target["compression"]
        lines.append(
            f"n = {n}: {row['accuracy_mean']:.2%} "
            f"(target >= {target['accuracy']:.1%}: "
            f"{'met' if acc_ok else 'NOT met'}), "
            f"{row['compression_ratio']:.1f}x (target >= "
            f"{target['compression']:.0f}x: "
            f"{'met' if ratio_ok else 'NOT met'}), "
            f"{len(row['seeds'])} seed(s)"
        )
    if dataset == "mnist":
        cls = by_key.get(("class", 4, "mse"))
        for kind in BASELINES:
            base = by_key.get((kind, 0, ""))
            if cls is None or base is None:
                lines.append(f"n = 4 vs {kind}: not run")
                continue
            beats = cls["accuracy_mean"] > base["accuracy_mean"]
            lines.append(
                f"n = 4 ({cls['params']:,} params) vs {BASELINES[kind]} "
                f"({base['params']:,}): {cls['accuracy_mean']:.2%} vs "
                f"{base['accuracy_mean']:.2%}: "
                f"{'beats' if beats else 'does NOT beat'} it"
            )
    return lines


def figure_keys(state):
    """`{settings_id: letter}` of the configurations in the plot.

    The plot names each configuration by a letter (its id is too long
    for a legend); the Markdown says which id each letter stands for.
    """
    ids = [s for s in state.get("settings", {}) if rows(state, s)]
    letters = string.ascii_uppercase
    return {
        s: letters[i] if i < len(letters) else str(i + 1)
        for i, s in enumerate(ids)
    }


def _setup_text(settings):
    """A configuration in a few words, for the plot's legend."""
    s = settings
    text = (
        f"{'paper' if s['profile'] == 'paper' else 'improved'}, "
        f"{s['samples']:,} samples, teacher {s['teacher_epochs']} / "
        f"students {s['epochs']} epochs"
    )
    if "augment" in s:
        text += f", {s['augment']}"
        text += " (students too)" if s.get("augment_students") else ""
    if "min_student_bottleneck" in s:
        text += f", bottleneck >= {s['min_student_bottleneck']}"
    return text


def plot_name(dataset):
    """The plot's file name."""
    return f"{dataset}_accuracy_vs_params.png"


def write_markdown(state, path):
    """Writes the dataset's tables, one per recorded configuration."""
    dataset = state["dataset"]
    keys = figure_keys(state)
    lines = [
        f"# {dataset}: teacher-class networks vs baselines",
        "",
        f"Written by `benchmarks/reproduce.py` from `{dataset}.json` "
        f"(updated {state.get('updated', now())}); every number comes "
        "from that file. Accuracy: test split, mean +/- sample std over "
        "the listed seeds, after the last epoch. Training time: mean wall "
        "seconds per seed (students + head fine-tuning for a class; the "
        "teacher's own time only on its row), measured on "
        f"{state['machine']['cpu_count']} CPU cores that were shared with "
        "other jobs: times are inflated and only roughly comparable.",
        "",
    ]
    for settings_id, settings in state.get("settings", {}).items():
        table = rows(state, settings_id)
        if not table:
            continue
        lines += [
            f"## Configuration `{settings_id}` "
            f"({keys[settings_id]} in the figure)",
            "",
            describe(settings),
            "",
        ]
        notes = (
            changes(settings)
            if settings["profile"] != "paper"
            else (*PAPER_NOTES, *changes(settings))
        )
        if settings["fine_tune_epochs"]:
            notes = (*notes, FINE_TUNING)
        lines += [f"- {note}" for note in notes] + [""]
        lines += [
            "| model | parameters | compression vs teacher | test "
            "accuracy | seeds | training time (s) |",
            "| --- | ---: | ---: | ---: | --- | ---: |",
        ]
        for r in table:
            ratio = r["compression_ratio"]
            lines.append(
                f"| {r['label']} | {r['params']:,} | "
                f"{'' if ratio is None else f'{ratio:.1f}x'} | "
                f"{r['accuracy_mean']:.2%} +/- {r['accuracy_std']:.2%} | "
                f"{', '.join(str(s) for s in r['seeds'])} | "
                f"{r['train_seconds_mean']:.0f} |"
            )
        unavailable = [
            u
            for u in state.get("unavailable", {}).values()
            if u["settings_id"] == settings_id
        ]
        for u in unavailable:
            lines.append(
                f"| class, n = {u['n']} ({u['objective']}) | not "
                f"available | | {u['reason'][:120]} | {u['seed']} | |"
            )
        met = targets(dataset, table)
        if met:
            lines += ["", "Targets (issue #3):", ""]
            lines += [f"- {t}" for t in met]
        lines.append("")
    if keys:
        lines += [
            "The figure (test accuracy against parameters, "
            f"`docs/results/{plot_name(dataset)}`) letters the "
            "configurations: "
            + "; ".join(
                f"{letter} = configuration `{settings_id}`"
                for settings_id, letter in keys.items()
            )
            + ".",
            "",
        ]
    atomic_write(path, "\n".join(lines) + "\n")
    return lines


def write_summary(out_dir):
    """One line per dataset: measured (from its JSON) or why not."""
    lines = [
        "# Reproduction summary",
        "",
        "Written by `benchmarks/reproduce.py`; details in `<dataset>.md`.",
        "",
        "| dataset | status | n = 4 class | n = 8 class |",
        "| --- | --- | --- | --- |",
    ]
    for dataset in DATASETS:
        if dataset == "digits":
            continue
        path = Path(out_dir) / f"{dataset}.json"
        cells = None
        if path.exists():
            state = json.loads(path.read_text())
            for settings_id in state.get("settings", {}):
                by_key = {
                    (r["kind"], r["n"], r["objective"]): r
                    for r in rows(state, settings_id)
                }
                found = [by_key.get(("class", n, "mse")) for n in (4, 8)]
                if any(found):
                    cells = [
                        "not run"
                        if r is None
                        else f"{r['accuracy_mean']:.2%} at "
                        f"{r['compression_ratio']:.1f}x "
                        f"({len(r['seeds'])} seed(s))"
                        for r in found
                    ]
                    cfg = state["settings"][settings_id]
                    status = (
                        f"measured, configuration `{settings_id}` "
                        f"({cfg['profile']}: {cfg['samples']:,} training "
                        f"samples, teacher {cfg['teacher_epochs']} / "
                        f"students {cfg['epochs']} epochs"
                        + (
                            "; teacher trained with random shifts"
                            if "augment" in cfg
                            else ""
                        )
                        + (
                            "; student bottleneck >= "
                            f"{cfg['min_student_bottleneck']}"
                            if "min_student_bottleneck" in cfg
                            else ""
                        )
                        + ")"
                    )
                    lines.append(
                        f"| {dataset} | {status} | {cells[0]} | {cells[1]} |"
                    )
        if cells is None:
            reason = NOT_MEASURED.get(dataset, "no run recorded")
            lines.append(f"| {dataset} | not measured: {reason} | | |")
    atomic_write(Path(out_dir) / "summary.md", "\n".join(lines) + "\n")


# Markers of the models that are not a class, and their legend names.
_MARKERS = {"teacher": "*", "distill": "s", "scratch": "^"}
_NAMES = {
    "teacher": "teacher",
    "distill": "(b) logit distillation",
    "scratch": "(c) classifier from scratch",
}


def plot_series(state):
    """The plot's series and groups (`figures.plot_accuracy_vs_params`).

    One group (colour) per configuration, named by its letter
    (`figure_keys`); per configuration, one line per objective joining
    its classes in order of n (MSE: filled circles; other objectives:
    open diamonds, dashed), and one point per other model.
    """
    keys = figure_keys(state)
    series, groups = [], {}
    for settings_id, letter in keys.items():
        settings = state["settings"][settings_id]
        groups[letter] = f"{letter}: {_setup_text(settings)}"
        table = rows(state, settings_id)
        objectives = {}
        for r in table:
            if r["kind"] == "class":
                objectives.setdefault(r["objective"], []).append(r)
        for objective, members in objectives.items():
            members.sort(key=lambda r: r["n"])
            series.append(
                {
                    "name": f"class of n students ({objective})",
                    "group": letter,
                    "params": [r["params"] for r in members],
                    "accuracy": [100 * r["accuracy_mean"] for r in members],
                    "std": [100 * r["accuracy_std"] for r in members],
                    "marker": "o" if objective == "mse" else "D",
                    "hollow": objective != "mse",
                    "line": True,
                    "labels": [f"n = {r['n']}" for r in members],
                }
            )
        for r in table:
            if r["kind"] == "class":
                continue
            series.append(
                {
                    "name": _NAMES[r["kind"]],
                    "group": letter,
                    "params": [r["params"]],
                    "accuracy": [100 * r["accuracy_mean"]],
                    "std": [100 * r["accuracy_std"]],
                    "marker": _MARKERS[r["kind"]],
                    "size": 13 if r["kind"] == "teacher" else 7,
                }
            )
    # Legend order: classes, baselines, teacher, whatever the runs' order.
    rank = {"(b)": 1, "(c)": 2, "tea": 3}
    series.sort(key=lambda s: rank.get(s["name"][:3], 0))
    return series, groups


def write_plot(state, path):
    """Test accuracy against parameters (log x), one colour per setup.

    Returns:
        The path written, or None without runs or matplotlib.
    """
    try:
        from teacherclass import figures

        series, groups = plot_series(state)
        if not series:
            return None
        target = TARGETS.get(state["dataset"])
        figures.plot_accuracy_vs_params(
            series,
            path,
            title=f"{state['dataset']}: test accuracy vs parameters",
            groups=groups,
            target=(
                (
                    100 * target["accuracy"],
                    f"target {target['accuracy']:.1%}",
                )
                if target
                else None
            ),
            ylabel="test accuracy (%), mean +/- std over seeds",
        )
    except ImportError as e:
        print(f"no plot: {e}")
        return None
    return Path(path)
