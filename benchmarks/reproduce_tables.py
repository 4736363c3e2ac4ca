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
from reproduce_settings import VARIANTS
from reproduce_settings import changes
from reproduce_settings import describe
from reproduce_settings import resized_students
from reproduce_state import atomic_write
from reproduce_state import now


def _mean_std(values):
    values = np.asarray(values, dtype="float64")
    std = float(values.std(ddof=1)) if len(values) > 1 else 0.0
    return float(values.mean()), std


def score(record):
    """A run's accuracy: on the test split, or on the validation split."""
    value = record.get("test_accuracy")
    return record.get("val_accuracy") if value is None else value


def _compute_cells(members):
    """The compute columns of a row: first seed's, None where missing."""
    first = members[0]
    latency = first.get("latency_ms") or {}
    litert = first.get("litert_bytes") or {}
    return {
        "macs": first.get("macs"),
        "latency_b1_ms": latency.get("1"),
        "latency_b64_ms": latency.get("64"),
        "litert_float_bytes": litert.get("float"),
        "litert_int8_bytes": litert.get("int8"),
    }


def _teacher_compute(teacher_runs, class_runs):
    """The teacher's compute: its own record, or timed beside a class."""
    cells = _compute_cells(teacher_runs)
    if cells["macs"] is None:
        cells["macs"] = next(
            (r["teacher_macs"] for r in class_runs if "teacher_macs" in r),
            None,
        )
    side = next(
        (r["teacher_compute"] for r in class_runs if "teacher_compute" in r),
        None,
    )
    if side is not None:
        cells.update(
            {
                k: v
                for k, v in _compute_cells([side]).items()
                if cells[k] is None
            }
        )
    return cells


def rows(state, settings_id):
    """Table rows of one configuration: teacher, classes, baselines.

    A configuration whose teacher is recorded but no run yet (a CIFAR-10
    run between sittings) has its teacher's row alone. Otherwise the
    teacher's row averages the seeds the configuration ran, not every
    seed its teacher was trained with for other configurations (every
    seed where none of them is recorded).
    """
    runs = [
        r for r in state["runs"].values() if r["settings_id"] == settings_id
    ]
    settings = state.get("settings", {}).get(settings_id, {})
    teacher_id = runs[0]["teacher_id"] if runs else settings.get("teacher_id")
    teachers = [
        t
        for t in state["teachers"].values()
        if teacher_id is not None and t.get("teacher_id") == teacher_id
    ]
    seeds = {r["seed"] for r in runs}
    teachers = [t for t in teachers if t["seed"] in seeds] or teachers
    if not runs and not teachers:
        return []
    groups = {}
    for t in teachers:
        groups.setdefault(("teacher", 0, "", ""), []).append(t)
    for r in runs:
        variant = r.get("variant", "plain" if r["kind"] == "class" else "")
        key = (r["kind"], r["n"], r["objective"], variant)
        groups.setdefault(key, []).append(r)

    def order(key):
        kind, n, objective, variant = key
        rank = {"teacher": 0, "class": 1, "distill": 2, "scratch": 3}[kind]
        variant_rank = VARIANTS.index(variant) if variant in VARIANTS else 0
        return (rank, n, variant_rank, objective != "mse", objective)

    out = []
    teacher_params = teachers[0]["params"] if teachers else None
    class_runs = [r for r in runs if r["kind"] == "class"]
    for key in sorted(groups, key=order):
        kind, n, objective, variant = key
        members = sorted(groups[key], key=lambda r: r["seed"])
        if kind == "teacher":
            label = "teacher"
            cells = _teacher_compute(members, class_runs)
        elif kind == "class":
            label = f"class, n = {n} ({objective})"
            if variant != "plain":
                label = f"class, n = {n} ({objective}, {variant})"
            if n == 1 and variant == "plain":
                label += ", = (a) the paper's single student"
            cells = _compute_cells(members)
        else:
            label = BASELINES[kind]
            cells = _compute_cells(members)
        params = members[0]["params"]
        mean, std = _mean_std([score(r) for r in members])
        out.append(
            {
                "label": label,
                "kind": kind,
                "n": n,
                "objective": objective,
                "variant": variant,
                "params": params,
                **cells,
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
    by_key = {
        (r["kind"], r["n"], r["objective"]): r
        for r in table
        if r["variant"] in ("plain", "")
    }
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
    ids = [
        s
        for s, cfg in state.get("settings", {}).items()
        if cfg.get("split", "test") == "test" and rows(state, s)
    ]
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


def plot_name(dataset, x="params"):
    """A plot's file name: accuracy against `x` ("params" or "macs")."""
    return f"{dataset}_accuracy_vs_{x}.png"


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
        "the listed seeds (no std for a single seed), after the last "
        "epoch. Training time: mean wall seconds per seed (students + head "
        "fine-tuning for a class; the "
        "teacher's own time only on its row), measured on "
        f"{state['machine']['cpu_count']} CPU cores that were shared with "
        "other jobs: times are inflated and only roughly comparable.",
        "",
    ]
    for settings_id, settings in state.get("settings", {}).items():
        table = rows(state, settings_id)
        if not table:
            continue
        where = (
            f"{keys[settings_id]} in the figure"
            if settings_id in keys
            else "validation split, not in the figure"
        )
        lines += [
            f"## Configuration `{settings_id}` ({where})",
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
        split = settings.get("split", "test")
        lines += [
            "| model | parameters | compression vs teacher | "
            "multiply-adds | latency b1 (ms) | latency b64 (ms) | LiteRT "
            f"float | LiteRT int8 | {split} accuracy | seeds | training "
            "time (s) |",
            "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: "
            "| --- | ---: |",
        ]
        for r in table:
            ratio = r["compression_ratio"]
            lines.append(
                f"| {r['label']} | {r['params']:,} | "
                f"{'' if ratio is None else f'{ratio:.1f}x'} | "
                + " | ".join(_compute_text(r))
                + f" | {_accuracy_text(r)} | "
                f"{', '.join(str(s) for s in r['seeds'])} | "
                f"{r['train_seconds_mean']:.0f} |"
            )
        unavailable = [
            u
            for u in state.get("unavailable", {}).values()
            if u["settings_id"] == settings_id
        ]
        for u in unavailable:
            variant = u.get("variant", "plain")
            name = u["objective"] + (
                "" if variant in ("plain", None) else f", {variant}"
            )
            lines.append(
                f"| class, n = {u['n']} ({name}) | not available | | | | | "
                f"| | {u['reason'][:120]} | {u['seed']} | |"
            )
        met = targets(dataset, table)
        if met:
            lines += ["", "Targets (issue #3):", ""]
            lines += [f"- {t}" for t in met]
        lines.append("")
    lines += ablation(state)
    if keys:
        lines += [
            "The figures (test accuracy against parameters, "
            f"`docs/results/{plot_name(dataset)}`, and against "
            "multiply-adds, "
            f"`docs/results/{plot_name(dataset, 'macs')}`, where "
            "recorded) letter the configurations: "
            + "; ".join(
                f"{letter} = configuration `{settings_id}`"
                for settings_id, letter in keys.items()
            )
            + ".",
            "",
        ]
    atomic_write(path, "\n".join(lines) + "\n")
    return lines


def _accuracy_text(row):
    """The mean accuracy, +/- the sample std where there are 2+ seeds."""
    if len(row["seeds"]) < 2:
        return f"{row['accuracy_mean']:.2%}"
    return f"{row['accuracy_mean']:.2%} +/- {row['accuracy_std']:.2%}"


def _compute_text(row):
    """The compute cells of a table row; blank where not measured."""
    macs = row.get("macs")
    cells = ["" if macs is None else f"{macs:,}"]
    for key in ("latency_b1_ms", "latency_b64_ms"):
        value = row.get(key)
        cells.append("" if value is None else f"{value:.3g}")
    for key in ("litert_float_bytes", "litert_int8_bytes"):
        value = row.get(key)
        cells.append("" if value is None else f"{value / 1024:,.0f} KiB")
    return cells


def ablation(state):
    """Markdown lines: the validation probes, each ingredient on and off.

    One table per configuration on the validation split that holds a
    plain class: per n and objective, every variant recorded, which
    ingredients it turns on, its mean validation accuracy and the
    difference to the plain class's. Every probe is listed (not only
    the winners); "best" states the ingredients it chose.
    """
    from reproduce_variants import INGREDIENTS
    from reproduce_variants import SINGLE
    from reproduce_variants import ingredients

    lines = []
    for settings_id, settings in state.get("settings", {}).items():
        if settings.get("split") != "validation":
            continue
        table = [r for r in rows(state, settings_id) if r["kind"] == "class"]
        plain = {
            (r["n"], r["objective"]): r
            for r in table
            if r["variant"] == "plain"
        }
        if not plain:
            continue
        lines += [
            f"## Ablation on the validation split: configuration "
            f"`{settings_id}`",
            "",
            "Validation accuracy (the last 10% of the training samples; "
            "the test split not read), mean over the seeds listed; "
            "vs plain: the difference to the plain class of the same n, "
            "in percentage points.",
            "",
            "| n | variant | objective | "
            + " | ".join(i.replace("_", " ") for i in INGREDIENTS)
            + " | params | multiply-adds | validation accuracy | vs plain "
            "| seeds |",
            "| ---: | --- | --- | "
            + " | ".join(":---:" for _ in INGREDIENTS)
            + " | ---: | ---: | ---: | ---: | --- |",
        ]
        for r in table:
            base = plain.get((r["n"], r["objective"])) or plain.get(
                (r["n"], "mse")
            )
            if r["variant"] == "best":
                chosen = _best_ingredients(state, settings_id, r)
            elif r["variant"] in SINGLE or r["variant"] == "plain":
                chosen = ingredients(r["variant"])
            else:
                chosen = {}
            marks = [
                "?" if i not in chosen else "on" if chosen[i] else "off"
                for i in INGREDIENTS
            ]
            delta = ""
            if base is not None:
                points = 100 * (r["accuracy_mean"] - base["accuracy_mean"])
                delta = f"{points:+.2f}"
            macs = r.get("macs")
            lines.append(
                f"| {r['n']} | {r['variant']} | {r['objective']} | "
                + " | ".join(marks)
                + f" | {r['params']:,} | "
                f"{'' if macs is None else f'{macs:,}'} | "
                f"{r['accuracy_mean']:.2%} | {delta} | "
                f"{', '.join(str(s) for s in r['seeds'])} |"
            )
        lines.append("")
    return lines


def _best_ingredients(state, settings_id, row):
    """The ingredients a "best" run recorded it chose, by name."""
    from reproduce_variants import INGREDIENTS

    for r in state["runs"].values():
        if (
            r["settings_id"] == settings_id
            and r.get("variant") == "best"
            and r["n"] == row["n"]
            and "best_choice" in r
        ):
            on = set(r["best_choice"]["ingredients"])
            return {i: i in on for i in INGREDIENTS}
    return {}


def _summary_row(by_key, column):
    """A column's row, and its mark: a class of n != 4 (the n = 4 class
    has a best column of its own) without a plain run shows its best
    variant's, marked so."""
    kind, n, variant = column
    row = by_key.get(column)
    if row is None and kind == "class" and n != 4 and variant == "plain":
        row = by_key.get((kind, n, "best"))
        return row, "best" if row is not None else ""
    return row, ""


def _summary_cell(row, mark=""):
    if row is None:
        return "not run"
    cell = f"{row['accuracy_mean']:.2%}"
    if row["kind"] == "class" and row.get("compression_ratio"):
        cell += f" at {row['compression_ratio']:.1f}x"
    if mark:
        cell += f", {mark}"
    return cell + f" ({len(row['seeds'])})"


def _summary_config(cfg):
    return (
        f"{cfg['profile']}: {cfg['samples']:,} training samples, teacher "
        f"{cfg['teacher_epochs']} / students {cfg['epochs']} epochs"
        + ("; teacher trained with random shifts" if "augment" in cfg else "")
        + (
            f"; student bottleneck >= {cfg['min_student_bottleneck']}"
            if "min_student_bottleneck" in cfg
            else ""
        )
        + ("; compact students" if cfg.get("compact_students") else "")
        + (
            "; batch-normalized students"
            if cfg.get("student_batch_norm")
            else ""
        )
        + (
            f"; students on the teacher's {cfg['student_input']}"
            if cfg.get("student_input")
            else ""
        )
        + (
            f"; chunks by {cfg['chunk_order']}"
            if cfg.get("chunk_order")
            else ""
        )
        + (
            "; student filters " + ", ".join(resized_students(cfg))
            if resized_students(cfg)
            else ""
        )
        + (
            f"; refinement {cfg['refine_epochs']} epoch(s), baselines "
            f"{cfg['epochs'] + cfg['refine_epochs']} epochs"
            if cfg.get("refine_epochs")
            else ""
        )
    )


def write_summary(out_dir):
    """One line per configuration on the test split, with the baselines.

    Validation-split configurations are the ablations: listed by id, their
    tables are in `<dataset>.md`.
    """
    columns = (
        ("teacher", 0, ""),
        ("class", 4, "plain"),
        ("class", 4, "best"),
        ("class", 1, "plain"),
        ("distill", 0, ""),
        ("scratch", 0, ""),
        ("class", 8, "plain"),
        ("class", 2, "plain"),
    )
    lines = [
        "# Reproduction summary",
        "",
        "Written by `benchmarks/reproduce.py`; details in `<dataset>.md`. "
        "Test accuracy, mean over the seeds (their count in brackets); "
        "classes with their compression against the teacher. The plain "
        "classes use MSE students; *best* switches on the ingredients that "
        "beat plain on the validation split (`<dataset>.md` names them). "
        "(a), (b), (c) are the baselines at the n = 4 class's size and "
        "budget. A class of n = 1, 2 or 8 without a plain run shows its "
        "best variant, marked *best*.",
        "",
        "| dataset | configuration | teacher | n = 4 class | n = 4 class, "
        "best | (a) n = 1 | (b) logit distillation | (c) from scratch | "
        "n = 8 class | n = 2 class |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    ablations = []
    for dataset in DATASETS:
        if dataset == "digits":
            continue
        path = Path(out_dir) / f"{dataset}.json"
        measured = False
        if path.exists():
            state = json.loads(path.read_text())
            for settings_id, cfg in state.get("settings", {}).items():
                found = rows(state, settings_id)
                if not found:
                    continue
                if cfg.get("split") == "validation":
                    ablations.append(f"{dataset} `{settings_id}`")
                    continue
                by_key = {}
                for r in found:
                    objective_free = (r["kind"], r["n"], r["variant"])
                    plain_mse = r["variant"] != "plain" or r["objective"] in (
                        "mse",
                        "",
                    )
                    if plain_mse:
                        by_key.setdefault(objective_free, r)
                cells = [
                    _summary_cell(*_summary_row(by_key, c)) for c in columns
                ]
                measured = True
                lines.append(
                    f"| {dataset} | `{settings_id}` ({_summary_config(cfg)})"
                    f" | " + " | ".join(cells) + " |"
                )
        if not measured:
            reason = NOT_MEASURED.get(dataset, "no run recorded")
            lines.append(
                f"| {dataset} | not measured: {reason} |"
                + " |" * (len(columns))
            )
    if ablations:
        lines += [
            "",
            "Ablations on the validation split (each ingredient on and off): "
            + ", ".join(ablations)
            + ".",
        ]
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
                name = r["objective"]
                if r["variant"] != "plain":
                    name += f", {r['variant']}"
                objectives.setdefault(name, []).append(r)
        for name, members in objectives.items():
            members.sort(key=lambda r: r["n"])
            objective = members[0]["objective"]
            series.append(
                {
                    "name": f"class of n students ({name})",
                    "group": letter,
                    "params": [r["params"] for r in members],
                    "macs": [r["macs"] for r in members],
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
                    "macs": [r["macs"]],
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


def write_plot(state, path, x="params"):
    """Test accuracy against parameters or multiply-adds (log x).

    One colour per setup. With `x="macs"` only the models whose
    multiply-adds are recorded are drawn.

    Returns:
        The path written, or None without runs (with `x="macs"`: without
        any multiply-adds recorded) or without matplotlib.
    """
    try:
        from teacherclass import figures

        series, groups = plot_series(state)
        if x == "macs":
            series = [
                s for s in series if all(m is not None for m in s["macs"])
            ]
            groups = {
                k: v
                for k, v in groups.items()
                if any(s["group"] == k for s in series)
            }
        if not series:
            return None
        target = TARGETS.get(state["dataset"])
        plot = (
            figures.plot_accuracy_vs_macs
            if x == "macs"
            else figures.plot_accuracy_vs_params
        )
        what = "multiply-adds" if x == "macs" else "parameters"
        plot(
            series,
            path,
            title=f"{state['dataset']}: test accuracy vs {what}",
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
