"""The package's folders follow the pipeline, and imports point down it: the order, in one place.

Every import is counted: module level, inside functions and under ``TYPE_CHECKING``.
"""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "text2sign"

# The allowed order, top to bottom. A module may import its own stage and any stage on a lower
# line; never a stage on a higher line, nor a sibling on its own line. Every module of the
# package belongs to exactly one stage (the longest prefix wins). README "Module map" says the
# same in words.
LAYERS: tuple[dict[str, tuple[str, ...]], ...] = (
    {"entry": ("text2sign.__main__", "text2sign.cli", "text2sign.doctor")},
    {"study": ("text2sign.study",), "training": ("text2sign.training",)},
    {"evaluation": ("text2sign.evaluation",)},
    {"run": ("text2sign.run",), "pose": ("text2sign.pose",)},
    {"models": ("text2sign.models",), "data": ("text2sign.data",)},
    {"config": ("text2sign.config", "text2sign.config_docs", "text2sign.presets")},
    {"metrics": ("text2sign.metrics",), "runtime": ("text2sign.runtime",)},
    {"base": ("text2sign", "text2sign.errors", "text2sign.atomic")},  # text2sign: __version__
)


def modules(package: Path = PACKAGE) -> dict[str, Path]:
    """Dotted module name → file, for every ``.py`` file under ``package``."""
    out = {}
    for p in package.rglob("*.py"):
        name = ".".join(p.relative_to(package.parent).with_suffix("").parts)
        out[name.removesuffix(".__init__")] = p
    return out


def imports(path: Path, known: set[str], root: str = "text2sign") -> set[str]:
    """The modules of ``known`` that ``path`` imports, at any depth."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(root):
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}
        elif isinstance(node, ast.Import):
            names |= {a.name for a in node.names if a.name.startswith(root)}
    return names & known


def graph(package: Path = PACKAGE, root: str = "text2sign") -> dict[str, set[str]]:
    mods = modules(package)
    return {m: {d for d in imports(p, set(mods), root) if d != m} for m, p in mods.items()}


def cycles(g: dict[str, set[str]]) -> list[str]:
    """Every import circle found by a depth-first walk, as 'a → b → a'."""
    state: dict[str, int] = {}
    found = []

    def visit(m: str, stack: list[str]) -> None:
        state[m] = 1
        for d in sorted(g[m]):
            if state.get(d) == 1:
                found.append(" → ".join([*stack[stack.index(d) :], d]))
            elif d not in state:
                visit(d, [*stack, d])
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m, [m])
    return found


def stage_of(module: str, layers=LAYERS) -> tuple[int, str] | None:
    """(line in ``layers``, stage name) of the longest prefix that holds ``module``."""
    best = None
    for level, stages in enumerate(layers):
        for stage, prefixes in stages.items():
            for prefix in prefixes:
                if module == prefix or module.startswith(prefix + "."):
                    if best is None or len(prefix) > best[0]:
                        best = (len(prefix), level, stage)
    return None if best is None else best[1:]


def violations(g: dict[str, set[str]], layers=LAYERS, root: str = "text2sign") -> list[str]:
    out = []
    for m, deps in sorted(g.items()):
        here = stage_of(m, layers)
        for d in sorted(deps):
            there = stage_of(d, layers)
            if here is None or there is None or d == root:
                continue
            if there[0] < here[0]:
                out.append(f"{m} ({here[1]}) imports {d} ({there[1]}), a stage above it")
            elif there[0] == here[0] and there[1] != here[1]:
                out.append(f"{m} ({here[1]}) imports {d} ({there[1]}), a sibling stage")
    return out


def test_the_package_has_no_import_cycle():
    """A circle anywhere in text2sign fails, named (collect, report and stats_table once imported
    each other)."""
    assert not cycles(graph())


def test_every_module_belongs_to_a_stage():
    """A new module must be placed: only the three named modules fall to 'base' by default."""
    base = LAYERS[-1]["base"]
    unplaced = [
        m for m in modules() if stage_of(m) is None or (stage_of(m)[1] == "base" and m not in base)
    ]
    assert not unplaced, f"add these to a stage of LAYERS: {unplaced}"


def test_no_stage_imports_a_stage_above_it():
    assert not violations(graph())


def test_the_checks_fail_on_a_circle_and_on_an_import_up_the_pipeline():
    """The checks above can fail: a made-up graph with an upward import and a circle."""
    g = {
        "text2sign.run.rundir": {"text2sign.training.train"},  # run → training: up
        "text2sign.training.train": {"text2sign.run.rundir", "text2sign.study.collect"},
        "text2sign.study.collect": set(),
    }
    assert cycles(g) == ["text2sign.run.rundir → text2sign.training.train → text2sign.run.rundir"]
    assert violations(g) == [
        "text2sign.run.rundir (run) imports text2sign.training.train (training), a stage above it",
        "text2sign.training.train (training) imports text2sign.study.collect (study), a sibling stage",
    ]


def test_records_never_import_what_is_computed_from_them():
    """Records → statistics → tables/report, never back."""
    g = graph()
    assert (
        "text2sign.study.collect" not in g["text2sign.study.report"] | g["text2sign.study.tables"]
    )
    assert g["text2sign.study.records"].isdisjoint(
        {"text2sign.study.comparison", "text2sign.study.tables", "text2sign.study.report",
         "text2sign.study.collect"}
    )  # fmt: skip
