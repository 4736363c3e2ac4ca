"""benchmarks/reproduce.py's class variants and the rule that picks "best".

A variant is a named combination of ingredients, each a change to the
plain class of issue 13:

- `head_aware`: students scored through the teacher's frozen head
  (`fit_students(loss="head_aware")`) beside the chunk MSE;
- `conditioning`: standardized targets and variance-balanced chunks
  (`TeacherClass(conditioning="standardize", balance_chunks=True)`);
- `augment_students`: students trained on the teacher's own random
  augmentation (`fit_students(augment=...)`, consistent teaching);
- `refine`: the composed model trained end to end after composing
  (`TeacherClass.refine`) for the configuration's `refine_epochs`.

Variants other than `plain` and `best` switch on one ingredient each, so
`--split validation --variant plain head_aware conditioned augmented
refined` is the ablation. `best` switches on every ingredient whose
variant beat `plain` on the validation split (`choose_best`, `RULE`).

Whether the library offers an ingredient is checked by feature
(`missing`), so this runs against a library with or without it: a missing
one is recorded as unavailable, not fatal.
"""

import inspect

import numpy as np

from teacherclass import TeacherClass
from teacherclass import objectives

INGREDIENTS = ("head_aware", "conditioning", "augment_students", "refine")

# The ingredient each single-change variant switches on.
SINGLE = {
    "head_aware": "head_aware",
    "conditioned": "conditioning",
    "augmented": "augment_students",
    "refined": "refine",
}

RULE = (
    "an ingredient is on in `best` when its single-change variant's mean "
    "validation accuracy over the recorded seeds is strictly above the "
    "plain class's (same n and objective, same configuration on the "
    "validation split); ties, and ingredients never probed, stay off"
)


def ingredients(variant):
    """The ingredients of a variant other than "best", as a dict."""
    on = {SINGLE[variant]} if variant in SINGLE else set()
    return {name: name in on for name in INGREDIENTS}


def objective_of(variant_ingredients, objective):
    """The objective a class trains with: head_aware or the one given."""
    return "head_aware" if variant_ingredients["head_aware"] else objective


def _parameters(function):
    return inspect.signature(function).parameters


def missing(variant_ingredients):
    """Why the library cannot run these ingredients, or None if it can."""
    reasons = []
    if variant_ingredients["head_aware"] and not hasattr(
        objectives, "HeadAware"
    ):
        reasons.append("teacherclass.objectives has no HeadAware")
    if variant_ingredients["conditioning"] and not {
        "conditioning",
        "balance_chunks",
    } <= set(_parameters(TeacherClass.__init__)):
        reasons.append("TeacherClass takes no conditioning= / balance_chunks=")
    if variant_ingredients["augment_students"] and "augment" not in (
        _parameters(TeacherClass.fit_students)
    ):
        reasons.append("TeacherClass.fit_students takes no augment=")
    if variant_ingredients["refine"] and not hasattr(TeacherClass, "refine"):
        reasons.append("TeacherClass has no refine()")
    if not reasons:
        return None
    return "library API missing: " + "; ".join(reasons)


def _accuracy(run):
    return run.get("val_accuracy")


def choose_best(state, validation_id, n, objective, refine_epochs):
    """The ingredients of "best" and the evidence, by `RULE`.

    Args:
        state: the results dict (`reproduce_state.State.data`).
        validation_id: the settings id of the configuration on the
            validation split whose probes decide.
        n: the class size.
        objective: the objective of the plain class compared against.
        refine_epochs: the configuration's refinement epochs; without
            them refinement stays off.

    Returns:
        `(ingredients, choice)`: the dict of `ingredients`, and a record
        of the decision for the results JSON: the rule, the validation
        configuration, and each variant's mean validation accuracy and
        seeds.

    Raises:
        ValueError: when the validation configuration has no plain class
            of this n and objective to compare against.
    """
    probes = {}
    for run in state.get("runs", {}).values():
        if (
            run.get("settings_id") != validation_id
            or run.get("kind") != "class"
            or run.get("n") != n
            or _accuracy(run) is None
        ):
            continue
        variant = run.get("variant", "plain")
        wanted = (
            objective_of(ingredients(variant), objective)
            if variant in SINGLE or variant == "plain"
            else None
        )
        if run.get("objective") != wanted:
            continue
        probes.setdefault(variant, []).append(run)
    if "plain" not in probes:
        raise ValueError(
            "--variant best needs the validation probes first: run "
            "--split validation --variant plain head_aware conditioned "
            "augmented refined with the same other flags. Received: no "
            f"plain class n = {n} ({objective}) in configuration "
            f"{validation_id}"
        )
    evidence = {
        variant: {
            "val_accuracy_mean": float(np.mean([_accuracy(r) for r in runs])),
            "seeds": sorted(r["seed"] for r in runs),
        }
        for variant, runs in probes.items()
        if variant != "best"
    }
    plain = evidence["plain"]["val_accuracy_mean"]
    chosen = {name: False for name in INGREDIENTS}
    for variant, ingredient in SINGLE.items():
        if variant not in evidence:
            continue
        if ingredient == "refine" and not refine_epochs:
            continue
        chosen[ingredient] = evidence[variant]["val_accuracy_mean"] > plain
    choice = {
        "rule": RULE,
        "validation_settings_id": validation_id,
        "evidence": evidence,
        "ingredients": [k for k, v in chosen.items() if v],
    }
    return chosen, choice
