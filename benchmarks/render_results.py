"""Renders docs/results.md from the JSON the benchmarks write.

Reads every `benchmarks/results/*.json` present (and the Markdown table a
benchmark writes next to its JSON, `<name>.md`, where there is one), and
writes one page
that quotes each result with the machine and date it was measured on.
Nobody types a number into the page: rerun this script after a benchmark.
MkDocs also runs it as a hook (see `mkdocs.yml`), so a built site always
shows the JSON as it is.

Run: python benchmarks/render_results.py [--results DIR] [--out FILE]
"""

import argparse
import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
OUT = ROOT / "docs" / "results.md"
FIGURES = ROOT / "docs" / "results"

_HEADER = """# Results

Every number on this page is read from the JSON files in
`benchmarks/results/`, written by the scripts in `benchmarks/`, and rendered
by `benchmarks/render_results.py`. Each section names the machine and date
of its measurement. Times measured on a shared machine are inflated by the
other jobs it runs.
"""


def _machine(data):
    machine = data.get("machine") or {}
    parts = [machine.get("processor") or machine.get("platform") or "unknown"]
    if machine.get("cpu_count"):
        parts.append(f"{machine['cpu_count']} CPUs")
    devices = [d for d in machine.get("devices", []) if "CPU" not in d]
    if devices:
        parts.append(", ".join(devices))
    text = ", ".join(parts)
    if machine.get("platform") and machine.get("processor"):
        text += f" ({machine['platform']})"
    return text


def _versions(data):
    versions = data.get("versions") or {}
    return ", ".join(f"{k} {v}" for k, v in versions.items())


def _run_dates(data):
    """The dates of a file's appended runs (`data["runs"]`), sorted."""
    runs = data.get("runs")
    if not isinstance(runs, list):
        return []
    return sorted(
        r["date"] for r in runs if isinstance(r, dict) and r.get("date")
    )


def _provenance(data, script):
    date = data.get("updated") or data.get("date") or "unknown date"
    dates = _run_dates(data)
    if len(set(dates)) > 1:
        # Runs appended over days: the top level is the last writer's.
        lines = [
            f"Runs dated {dates[0]} to {dates[-1]}, by `{script}`. The "
            f"last write was on {_machine(data)}, {date}; a run's own "
            "machine and versions are in its row where it recorded them "
            "(earlier runs did not)."
        ]
    else:
        lines = [f"Measured on {_machine(data)}, {date}, by `{script}`."]
    if _versions(data):
        lines.append(f"Versions: {_versions(data)}.")
    note = (data.get("machine") or {}).get("note") or data.get("note")
    if note:
        lines.append(f"Note: {note}.")
    return " ".join(lines)


def _fmt(value):
    if isinstance(value, float):
        return f"{value:,.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _throughput(name, data):
    config = data.get("config") or {}
    lines = [
        f"## Students in one pass ({name})",
        "",
        "Student-samples per second (one student seeing one sample) when "
        "training all students in one pass (`fit_students`) against one "
        "`fit` per student, same towers and data, measured side by side; "
        "each way's `steps_per_execution` is in the settings (this older "
        "format ran the reference at Keras' default of 1).",
        "",
        "| way | samples / s |",
        "| --- | ---: |",
        "| one `fit` per student (reference) | "
        f"{_fmt(data['reference_samples_per_second'])} |",
        "| `fit_students`, one pass | "
        f"{_fmt(data['one_pass_samples_per_second'])} |",
        f"| **ratio** | **{data['ratio']:.2f}x** |",
        "",
    ]
    if config:
        settings = ", ".join(f"{k}: {_fmt(v)}" for k, v in config.items())
        lines += [f"Settings: {settings}.", ""]
    lines += [_provenance(data, "benchmarks/students_throughput.py"), ""]
    return lines


def _three_ways(name, data):
    """students_throughput with (a), (b), (c) at each steps_per_execution."""
    labels = {
        "a": "(a) one `fit` per student",
        "b": "(b) multi-output Keras model",
        "c": "(c) `fit_students`",
    }
    lines = [
        f"## Students in one pass ({name})",
        "",
        "Student-samples per second (one student seeing one sample): (a) one "
        "`fit` per student, (b) one functional model with the towers as "
        "outputs and a dict of MSE losses, (c) `fit_students`; same towers, "
        "initial weights, cached targets, batch, precision, epochs and "
        "`steps_per_execution`, side by side in one process. Medians over "
        "rounds, with the range.",
        "",
        "| steps per execution | way | samples / s | min - max |",
        "| ---: | --- | ---: | ---: |",
    ]
    for s in data["settings"]:
        for way, label in labels.items():
            r = s["samples_per_second"][way]
            lines.append(
                f"| {s['steps_per_execution']} | {label} | "
                f"{_fmt(r['median'])} | {_fmt(r['min'])} - {_fmt(r['max'])} |"
            )
    lines += ["", "| steps per execution | (c) / (a) | (c) / (b) |"]
    lines.append("| ---: | ---: | ---: |")
    for s in data["settings"]:
        a, b = s["ratio"], s["peer_ratio"]
        lines.append(
            f"| {s['steps_per_execution']} | **{a['median']:.2f}x** "
            f"({a['min']:.2f}-{a['max']:.2f}) | **{b['median']:.2f}x** "
            f"({b['min']:.2f}-{b['max']:.2f}) |"
        )
    config = data.get("config") or {}
    settings = ", ".join(f"{k}: {_cell(v)}" for k, v in config.items())
    lines += ["", f"Settings: {settings}."]
    lines += [
        f"Teacher passes per sample: 1 in every way; peak RSS "
        f"{_fmt(data.get('peak_rss_mb', 0.0))} MB.",
        "",
        _provenance(data, "benchmarks/students_throughput.py"),
        "",
    ]
    return lines


def _latency(name, data):
    """inference_latency: per model, every variant at each batch size."""
    lines = [
        f"## Inference latency ({name})",
        "",
        "Median milliseconds per call (interquartile range) of the teacher, "
        "the composed model unfused and fused (`teacherclass.fusion`), and "
        "int8 LiteRT files (and, for CIFAR-10, the single classifier of "
        "baselines (b) and (c) at the class's size), side by side in one "
        "process. Fusion's gain is unfused / fused latency: below 1 it "
        "loses.",
        "",
    ]
    for model, r in data["models"].items():
        batches = list(next(iter(r["latency"].values())))
        lines += [
            f"### {model}",
            "",
            f"Weights: {r['weights']}. `fuse(mode='auto')` chose "
            f"`{r['auto']['mode']}`.",
            "",
            "| variant | params | "
            + " | ".join(f"batch {b} ms" for b in batches)
            + " |",
            "| --- | ---: | " + " | ".join("---:" for _ in batches) + " |",
        ]
        for variant, per in r["latency"].items():
            cells = [
                f"{per[b]['median_ms']:.3f} "
                f"({per[b]['p25_ms']:.3f}-{per[b]['p75_ms']:.3f})"
                for b in batches
            ]
            params = (
                _fmt(r["params"][variant]) if variant in r["params"] else "-"
            )
            lines.append(
                f"| {variant} | {params} | " + " | ".join(cells) + " |"
            )
        lines += ["", "| batch | fusion gain | composed / teacher |"]
        lines.append("| ---: | --- | --- |")
        for b in batches:
            gains = ", ".join(
                f"{k} {v:.2f}x" for k, v in r["fusion_gain"][b].items()
            )
            others = "".join(
                f", {key.removesuffix('_over_teacher')} {v[b]:.2f}"
                for key, v in r.items()
                if key.endswith("_over_teacher")
                and key
                not in ("composed_over_teacher", "best_fused_over_teacher")
            )
            lines.append(
                f"| {b} | {gains} | unfused "
                f"{r['composed_over_teacher'][b]:.2f}, best fused "
                f"({r['fastest_mode'][b]}) "
                f"{r['best_fused_over_teacher'][b]:.2f}{others} |"
            )
        lines.append("")
    lines += [_provenance(data, "benchmarks/inference_latency.py"), ""]
    return lines


def _demote(markdown, levels=2):
    """Headings of an embedded page move down, below this page's."""
    return re.sub(
        r"^(#+) ",
        lambda m: "#" * min(6, len(m.group(1)) + levels) + " ",
        markdown,
        flags=re.M,
    )


def _reproduce(name, data, results_dir, figures_dir):
    dataset = data.get("dataset", name)
    lines = [f"## Reproduction: {dataset}", ""]
    table = Path(results_dir) / f"{name}.md"
    if table.is_file():
        lines += [_demote(table.read_text().strip()), ""]
    else:
        lines += [
            f"{len(data.get('runs') or {})} runs recorded; "
            f"`benchmarks/reproduce.py` writes their tables to `{name}.md`.",
            "",
        ]
    for x, what in (("params", "parameters"), ("macs", "multiply-adds")):
        figure = Path(figures_dir) / f"{dataset}_accuracy_vs_{x}.png"
        if figure.is_file():
            lines += [
                f"![{dataset}: accuracy against {what}](results/{figure.name})",
                "",
            ]
    lines += [_provenance(data, "benchmarks/reproduce.py"), ""]
    return lines


def _cell(value):
    if isinstance(value, (list, tuple)):
        return ", ".join(_fmt(v) for v in value)
    return _fmt(value)


def _rows_table(rows):
    """A Markdown table of a list of flat dicts (one column per key).

    A row's own `machine` and `versions` (a run that recorded its
    environment) are written as the provenance line writes them.
    """
    rows = [
        {
            **row,
            **({"machine": _machine(row)} if "machine" in row else {}),
            **({"versions": _versions(row)} if "versions" in row else {}),
        }
        for row in rows
    ]
    keys = []
    for row in rows:
        keys += [k for k in row if k not in keys]
    lines = ["| " + " | ".join(keys) + " |"]
    lines.append("| " + " | ".join("---" for _ in keys) + " |")
    for row in rows:
        lines.append(
            "| " + " | ".join(_cell(row.get(k, "")) for k in keys) + " |"
        )
    return lines


def _generic(name, data, results_dir):
    """A benchmark's own Markdown table if it wrote one, else its JSON.

    From the JSON: the configuration, every list of runs as a table, and
    the scalars (top-level or one level down).
    """
    benchmark = data.get("benchmark", name)
    # A script that writes more than one file names itself in each.
    script = data.get("script") or f"benchmarks/{benchmark}.py"
    lines = [f"## {benchmark} ({name})", ""]
    table = Path(results_dir) / f"{name}.md"
    if table.is_file():
        lines += [_demote(table.read_text().strip()), ""]
        lines += [_provenance(data, script), ""]
        return lines
    config = data.get("config")
    if isinstance(config, dict) and config:
        settings = "; ".join(f"{k}: {_cell(v)}" for k, v in config.items())
        lines += [f"Settings: {settings}.", ""]
    for key, value in data.items():
        if (
            isinstance(value, list)
            and value
            and all(isinstance(r, dict) for r in value)
        ):
            lines += [f"{key}:", "", *_rows_table(value), ""]
    skip = (
        "benchmark",
        "script",
        "date",
        "updated",
        "created",
        "config",
        "note",
    )
    scalars = {}
    for k, v in data.items():
        if k in skip or k in ("machine", "versions"):
            continue
        if isinstance(v, (int, float, str)) and not isinstance(v, bool):
            scalars[k] = v
        elif isinstance(v, dict) and all(
            isinstance(x, (int, float, str)) and not isinstance(x, bool)
            for x in v.values()
        ):
            scalars.update({f"{k}: {sub}": x for sub, x in v.items()})
    if scalars:
        lines += ["| key | value |", "| --- | ---: |"]
        lines += [f"| {k} | {_fmt(v)} |" for k, v in scalars.items()]
        lines.append("")
    lines += [_provenance(data, script), ""]
    return lines


def render(results_dir=RESULTS, figures_dir=FIGURES):
    """The results page, as Markdown, from the JSON in `results_dir`.

    Args:
        results_dir: the folder holding the benchmarks' JSON files.
        figures_dir: the folder of figures referenced from the page.

    Returns:
        The page's text.
    """
    results_dir = Path(results_dir)
    lines = [_HEADER]
    paths = sorted(results_dir.glob("*.json")) if results_dir.is_dir() else []
    summary = results_dir / "summary.md"
    if summary.is_file():
        lines += ["## Summary", "", _demote(summary.read_text().strip()), ""]
    if not paths:
        lines += [
            "No results yet: run a script in `benchmarks/`, then "
            "`python benchmarks/render_results.py`.",
            "",
        ]
    for path in paths:
        try:
            data = json.loads(path.read_text())
        except (OSError, json.JSONDecodeError) as e:
            lines += [f"## {path.stem}", "", f"Unreadable: {e}.", ""]
            continue
        name = path.stem
        if (
            data.get("benchmark") == "students_throughput"
            and "settings" in data
        ):
            lines += _three_ways(name, data)
        elif data.get("benchmark") == "students_throughput" and "ratio" in data:
            lines += _throughput(name, data)
        elif data.get("benchmark") == "inference_latency":
            lines += _latency(name, data)
        elif data.get("benchmark") == "reproduce":
            lines += _reproduce(name, data, results_dir, figures_dir)
        else:
            lines += _generic(name, data, results_dir)
    return "\n".join(lines).rstrip() + "\n"


def write(out=OUT, results_dir=RESULTS, figures_dir=FIGURES):
    """Writes the page if its text changed; returns True if it did."""
    text = render(results_dir, figures_dir)
    out = Path(out)
    if out.is_file() and out.read_text() == text:
        return False
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(text)
    return True


def on_page_read_source(page, config, **kwargs):
    """MkDocs hook: the results page is rendered from the JSON at build."""
    if page.file.src_uri == "results.md":
        return render()
    return None


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", default=str(RESULTS))
    parser.add_argument("--out", default=str(OUT))
    args = parser.parse_args()
    changed = write(args.out, args.results)
    print(f"{'wrote' if changed else 'unchanged:'} {args.out}")


if __name__ == "__main__":
    main()
