"""The package's shape: two halves that never import each other over a shared floor, floors
inside the storehouse that only import down, no import cycle, and storehouse paths joined
only by the storehouse's layout.

Every import counts, a function-local one too: hiding an arrow in a function does not
remove it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGE = REPO / "alert_pipeline"

#: The floors, lowest first: a module may import its own floor's modules and lower floors'.
#: A name is a module or a package prefix (the longest prefix decides).
FLOORS: list[tuple[str, ...]] = [
    ("alert_pipeline", "alert_pipeline.durable", "alert_pipeline.errors", "alert_pipeline.masking",
     "alert_pipeline.exitcodes", "alert_pipeline.settings", "alert_pipeline.kafka_settings",
     "alert_pipeline.quarantine", "alert_pipeline.steps"),
    ("alert_pipeline.consumer", "alert_pipeline.storehouse.layout", "alert_pipeline.storehouse.backend",
     "alert_pipeline.storehouse.slots", "alert_pipeline.storehouse.collector"),
    ("alert_pipeline.report", "alert_pipeline.storehouse.fink", "alert_pipeline.storehouse.messengers",
     "alert_pipeline.storehouse.galaxies"),
    ("alert_pipeline.storehouse.kinds",),
    ("alert_pipeline.storehouse.enrich", "alert_pipeline.storehouse.fink.build", "alert_pipeline.storehouse.fink.workers",
     "alert_pipeline.storehouse.messengers.formats", "alert_pipeline.storehouse.messengers.load",
     "alert_pipeline.storehouse.messengers.gcn"),
    ("alert_pipeline.storehouse.builder", "alert_pipeline.storehouse"),
    ("alert_pipeline.example_config",),
]
#: The two halves: neither imports the other (the report reads the consumer's output, so it
#: stands on the consumer half; the example configuration shows both).
HALVES = {"alert_pipeline.consumer": "alert_pipeline.storehouse", "alert_pipeline.storehouse": "alert_pipeline.consumer"}


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The package modules ``name`` imports, anywhere in it."""
    package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1] + ([base] if base else []))
            found.add(base)
            found |= {f"{base}.{alias.name}" for alias in node.names if f"{base}.{alias.name}" in known}
    return {item for item in found if item in known and item != name}


def _floor(name: str) -> int:
    best, level = "", -1
    for number, names in enumerate(FLOORS):
        for prefix in names:
            if (name == prefix or name.startswith(prefix + ".")) and len(prefix) > len(best):
                best, level = prefix, number
    assert level >= 0, f"{name} is on no floor: add it to FLOORS"
    return level


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {name: _imports(name, path, set(modules)) for name, path in modules.items()}


def test_every_import_points_down_a_floor_or_along_it():
    up = [f"{name} (floor {_floor(name)}) imports {target} (floor {_floor(target)})"
          for name, targets in _graph().items() for target in sorted(targets)
          if _floor(target) > _floor(name) and not name.startswith(target + ".")]
    assert not up, "\n".join(up)


def test_the_halves_never_import_each_other():
    crossing = [f"{name} imports {target}" for name, targets in _graph().items() for target in targets
                for half, other in HALVES.items()
                if (name == half or name.startswith(half + ".")) and (target == other or target.startswith(other + "."))
                and target != "alert_pipeline.storehouse" or False]
    floor = [f"{name} imports {target}" for name, targets in _graph().items() if _floor(name) == 0
             for target in targets if _floor(target) > 0]
    assert not crossing and not floor, "\n".join(crossing + floor)


def test_there_is_no_import_cycle():
    graph = _graph()
    # a package's __init__ importing its own modules is not a cycle of the modules it names
    edges = {name: {t for t in targets if not (t.startswith(name + ".") and _modules()[name].name == "__init__.py")}
             for name, targets in graph.items()}
    state: dict[str, int] = {}
    cycles: list[list[str]] = []

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for target in sorted(edges[node]):
            if state.get(target) == 1:
                cycles.append(trail[trail.index(target):] + [target] if target in trail else [node, target])
            elif target not in state:
                visit(target, trail + [target])
        state[node] = 2

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert not cycles, "\n".join(" → ".join(cycle) for cycle in cycles)


#: A storehouse file name joined by hand: the layout's names in a path literal.
HAND_JOINED = re.compile(r"""os\.path\.join\([^)]*["'](index\.json|roster\.json|state|quarantine|catalogues|site)["']"""
                         r"""|["']/?(index|roster)\.json["']""")


def test_storehouse_paths_are_joined_only_by_the_layout():
    layout = PACKAGE / "storehouse" / "layout.py"
    joined = [f"{path.relative_to(REPO)}:{number}: {line.strip()}"
              for path in sorted(PACKAGE.rglob("*.py")) if path != layout
              for number, line in enumerate(path.read_text().splitlines(), 1)
              if HAND_JOINED.search(line) and not line.lstrip().startswith("#")]
    wrapper = (REPO / "run_lsst_consumer.sh").read_text() + (PACKAGE / "steps.sh").read_text()
    assert not joined, "\n".join(joined)
    assert "/index.json" not in wrapper and "/roster.json" not in wrapper


def test_the_layout_test_sees_a_hand_joined_path():
    """The pattern above finds what it is for (else the test above proves nothing)."""
    assert HAND_JOINED.search('read(os.path.join(store.directory, "roster.json"))')
    assert HAND_JOINED.search('os.path.join(storehouse, "state", "x.json")')
    assert not HAND_JOINED.search('layout.roster(kind)')
