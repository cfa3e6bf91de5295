#!/usr/bin/env python
"""Draw the four floors and the imports between them: ``docs/figures/floors.png`` (the picture docs/DESIGN.md opens with).

    python utils/draw_floors.py [--output docs/figures/floors.png]

The graph is read from the source by ``utils/import_graph.py`` (the reader ``tests/test_floors.py``
checks the direction with). Each floor is a band, scripts on top and the model at the bottom; each
box is a module, or a group of small modules (:data:`GROUPS`: a subpackage, the model's layers, the
inference API, ...); an arrow is "imports". Inside a floor, a box stands above the boxes it imports,
so every arrow points down or along its row (an arc: modules that import each other). The boxes and
arrows drawn are written into the PNG as JSON (the ``Description`` text chunk);
``tests/test_floors.py`` compares them with the current code and asks to rerun this script when
they differ.
"""
from __future__ import annotations

import argparse
import json
import struct
import sys
import textwrap
import zlib
from collections import defaultdict
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from import_graph import FLOOR_NAMES, FLOORS, REPO, SCRIPTS, floor_of, module_name, python_files, read_imports  # noqa: E402

OUTPUT = REPO / "docs" / "figures" / "floors.png"
METADATA_KEY = "Description"
# box -> (title, the modules in it; a package name covers its submodules). A module in no group is a box of its own.
GROUPS = {
    "modeling_kgsf.layers": ("layers", ["modeling_kgsf.recommender", "modeling_kgsf.fusion", "modeling_kgsf.graph_encoders",
                                        "modeling_kgsf.transformer", "modeling_kgsf.copy_head"]),
    "modeling_kgsf.processor": ("processor", ["modeling_kgsf.processing_kgsf", "modeling_kgsf.linking_kgsf"]),
    "modeling_kgsf.inference": ("inference API", ["modeling_kgsf.pipeline_kgsf", "modeling_kgsf.hf_pipeline_kgsf",
                                                  "modeling_kgsf.demo_kgsf", "modeling_kgsf.preferences_kgsf"]),
    "modeling_kgsf.baselines": ("baselines/", ["modeling_kgsf.baselines"]),
    "modeling_kgsf.metrics": ("metrics/", ["modeling_kgsf.metrics"]),
    "datasets_scripts.raw": ("raw files", ["datasets_scripts.paths", "datasets_scripts.convert_pickles"]),
    "datasets_scripts.redial": ("ReDial loader", ["datasets_scripts.redial", "datasets_scripts.turn_order",
                                                  "datasets_scripts.recover_unicrs"]),
    "datasets_scripts.converters": ("converters", ["datasets_scripts.convert_crs", "datasets_scripts.convert_unicrs"]),
    "kgsf_cli": ("kgsf_cli/", ["kgsf_cli"]),
    "examples": ("examples/", ["examples"]),
    "benchmarks": ("benchmarks/", ["benchmarks"]),
    "utils": ("utils/", ["utils"]),
}
# the model floor's bottom row, left to right (the rows above follow the boxes they import)
MODEL_ORDER = ["modeling_kgsf.configuration_kgsf", "modeling_kgsf.layers", "modeling_kgsf.generation_kgsf",
               "modeling_kgsf.metrics", "modeling_kgsf.tokenization_kgsf", "modeling_kgsf.processor"]
FLOOR_COLOURS = ("#4e79a7", "#59a14f", "#f28e2b", "#b07aa1")  # model, data, training, scripts


def box_of(module: str) -> str:
    """The box a module is drawn in: its group (the longest matching member), else the module itself."""
    best, length = module, -1
    for box, (_, members) in GROUPS.items():
        for member in members:
            if (module == member or module.startswith(member + ".")) and len(member) > length:
                best, length = box, len(member)
    return best


def graph(root: Path = REPO) -> tuple[dict[str, list[str]], list[tuple[str, str]]]:
    """(box -> its modules, sorted (importing box, imported box) pairs): what the picture shows.

    A package ``__init__`` that imports nothing of the project and that nothing imports (a docstring)
    is left out."""
    imports = read_imports(root)
    pairs = {(box_of(found.source), box_of(found.target)) for found in imports}
    edges = sorted((a, b) for a, b in pairs if a != b)
    linked = {box for edge in edges for box in edge}
    boxes = defaultdict(list)
    for path in python_files(root):
        module = module_name(path)
        box = box_of(module)
        if path.name == "__init__.py" and box == module and box not in linked:
            continue
        boxes[box].append(module)
    return {box: sorted(modules) for box, modules in sorted(boxes.items())}, edges


def describe(boxes: dict[str, list[str]], edges: list[tuple[str, str]]) -> str:
    """The JSON written into the PNG."""
    return json.dumps({"boxes": boxes, "edges": [list(edge) for edge in edges]}, sort_keys=True)


def read_description(png: Path) -> dict | None:
    """The JSON :func:`describe` wrote into ``png`` (its ``Description`` text chunk); None when there is none."""
    data = png.read_bytes()
    if data[:8] != b"\x89PNG\r\n\x1a\n":
        raise ValueError(f"{png} is not a PNG file")
    offset = 8
    while offset + 8 <= len(data):
        length, kind = struct.unpack(">I4s", data[offset:offset + 8])
        body = data[offset + 8:offset + 8 + length]
        offset += 12 + length
        if kind == b"tEXt":
            key, _, text = body.partition(b"\0")
            text = text.decode("latin-1")
        elif kind == b"zTXt":
            key, _, rest = body.partition(b"\0")
            text = zlib.decompress(rest[1:]).decode("latin-1")
        elif kind == b"iTXt":
            key, _, rest = body.partition(b"\0")
            compressed, rest = rest[0], rest[2:]
            _, _, rest = rest.partition(b"\0")  # language tag
            _, _, rest = rest.partition(b"\0")  # translated keyword
            text = (zlib.decompress(rest) if compressed else rest).decode("utf-8")
        else:
            continue
        if key.decode("latin-1") == METADATA_KEY:
            return json.loads(text)
    return None


def _strongly_connected(nodes: list[str], edges: list[tuple[str, str]]) -> dict[str, int]:
    """node -> component id (Tarjan); modules of a floor that import each other share a row."""
    successors = defaultdict(list)
    for a, b in edges:
        successors[a].append(b)
    index, low, stack, on_stack, component = {}, {}, [], set(), {}

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in successors[node]:
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component[member] = index[node]
                if member == node:
                    break

    for node in nodes:
        if node not in index:
            visit(node)
    return component


def rows_of_floor(boxes: list[str], edges: list[tuple[str, str]]) -> list[list[str]]:
    """A floor's boxes in rows, bottom first: a box stands one row above the highest box it imports."""
    inside = [(a, b) for a, b in edges if a in boxes and b in boxes]
    component = _strongly_connected(boxes, inside)
    depth: dict[int, int] = {}

    def level(comp):
        if comp not in depth:
            depth[comp] = 0  # guards the recursion; components form a DAG
            below = [component[b] for a, b in inside if component[a] == comp and component[b] != comp]
            depth[comp] = 1 + max(map(level, below)) if below else 0
        return depth[comp]

    rows = defaultdict(list)
    for box in boxes:
        rows[level(component[box])].append(box)
    return [rows[r] for r in range(max(rows) + 1)] if rows else []


def layout(boxes: dict[str, list[str]], edges: list[tuple[str, str]], width: float) -> dict[str, tuple[float, int]]:
    """box -> (x, row number from the bottom). Rows are spread evenly over ``width``; in each row the boxes
    are ordered by the mean x of the boxes they import on their own floor (the model's bottom row by MODEL_ORDER)."""
    targets = defaultdict(list)
    for a, b in edges:
        if floor_of(a) == floor_of(b):
            targets[a].append(b)
    x: dict[str, float] = {}
    position, row_number = {}, 0
    for floor in range(len(FLOOR_NAMES)):
        for row in rows_of_floor([box for box in boxes if floor_of(box) == floor], edges):
            def key(box):
                placed = [x[target] for target in targets[box] if target in x]
                mean = sum(placed) / len(placed) if placed else width / 2
                return (MODEL_ORDER.index(box) if box in MODEL_ORDER else len(MODEL_ORDER), mean, box)

            ordered = sorted(row, key=key)
            gap = width / len(ordered)
            for i, box in enumerate(ordered):
                x[box] = gap * (i + 0.5)
                position[box] = (x[box], row_number)
            row_number += 1
    return position


def _names(names: list[str]) -> str:
    """``a_x, a_y, a_z`` -> ``a_{x, y, z}`` (and ``{x, y, z}_a``) when the names share a prefix (suffix) at a ``_``."""
    if len(names) > 2:
        prefix, suffix = names[0].split("_", 1)[0] + "_", "_" + names[0].rsplit("_", 1)[-1]
        if all(name.startswith(prefix) and len(name) > len(prefix) for name in names):
            return prefix + "{" + ", ".join(name[len(prefix):] for name in names) + "}"
        if all(name.endswith(suffix) and len(name) > len(suffix) for name in names):
            return "{" + ", ".join(name[:-len(suffix)] for name in names) + "}" + suffix
    return ", ".join(names)


def _label(box: str, modules: list[str]) -> tuple[str, str]:
    """(title, the modules it holds in small print)."""
    if box in GROUPS:
        title, _ = GROUPS[box]
        if floor_of(box) == SCRIPTS:
            names = sorted({module.split(".", 1)[1] for module in modules if "." in module})
            return title, f"{len(names)} scripts" if len(names) > 4 else "\n".join(textwrap.wrap(", ".join(names), 32))
        if title.endswith("/"):  # a subpackage: its modules
            names = sorted({module[len(box) + 1:].split(".")[0] for module in modules if module != box})
        else:
            parent = box.rsplit(".", 1)[0]
            names = sorted(module[len(parent) + 1:] for module in modules)
        return title, "\n".join(textwrap.wrap(_names(names), 32))
    if "." not in box:  # a package's __init__
        return f"{box}/__init__", "public names"
    return box.rsplit(".", 1)[-1], ""


def floor_arrows(edges: list[tuple[str, str]]) -> dict[tuple[int, int], int]:
    """(importing floor, imported floor) -> how many box-to-box arrows go between two floors."""
    counts: dict[tuple[int, int], int] = defaultdict(int)
    for a, b in edges:
        if floor_of(a) != floor_of(b):
            counts[floor_of(a), floor_of(b)] += 1
    return dict(sorted(counts.items()))


def draw(boxes: dict[str, list[str]], edges: list[tuple[str, str]], output: Path) -> None:
    """Bands for the floors, boxes, arrows inside each floor, one arrow per pair of floors (right), and on
    each box a dot in the colour of every higher floor that imports it."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle, FancyArrowPatch, FancyBboxPatch, Rectangle

    width, box_width, box_height, row_height, pad, gap, scale = 20.0, 3.8, 1.25, 1.75, 0.35, 0.3, 0.45
    left, right = 2.9, 3.2  # the floor names; the arrows between floors
    position = layout(boxes, edges, width)
    rows_in_floor = defaultdict(set)
    for box, (_, row) in position.items():
        rows_in_floor[floor_of(box)].add(row)
    folders = defaultdict(list)
    for folder, floor in FLOORS.items():
        folders[floor].append(folder + "/")
    y_of_row, span, y = {}, {}, 0.0
    for floor in range(len(FLOOR_NAMES)):
        rows = sorted(rows_in_floor[floor])
        content = 2 * pad + len(rows) * row_height - (row_height - box_height)
        needed = max(content, 1.0 + 0.42 * len(folders[floor]))  # room for the floor's name and folders
        for i, row in enumerate(rows):
            y_of_row[row] = y + (needed - content) / 2 + pad + box_height / 2 + i * row_height
        span[floor] = (y, y + needed)
        y += needed + gap
    height = y + 0.6
    fig = plt.figure(figsize=((left + width + right) * scale, height * scale))
    ax = fig.add_axes((0, 0, 1, 1))
    ax.set_xlim(-left, width + right)
    ax.set_ylim(0, height)
    ax.axis("off")

    for floor, (bottom, top) in span.items():
        colour = FLOOR_COLOURS[floor]
        ax.add_patch(Rectangle((-left, bottom), left + width, top - bottom, facecolor=colour, alpha=0.09, edgecolor=colour,
                               linewidth=1.2, zorder=0))
        ax.text(-left + 0.2, top - 0.2, f"{floor} {FLOOR_NAMES[floor]}", fontsize=17, fontweight="bold", color=colour,
                va="top", ha="left")
        ax.text(-left + 0.2, top - 0.85, "\n".join(folders[floor]), fontsize=10, color="#333333", va="top", ha="left",
                family="monospace")

    centre = {box: (x, y_of_row[row]) for box, (x, row) in position.items()}
    importers = defaultdict(set)
    for a, b in edges:
        if floor_of(a) != floor_of(b):
            importers[b].add(floor_of(a))
            continue
        (xa, ya), (xb, yb) = centre[a], centre[b]
        colour = FLOOR_COLOURS[floor_of(a)]
        if abs(ya - yb) < 1e-6:  # the same row (modules that import each other): side to side, one line each way
            side, lift = (1, 0.15) if xb > xa else (-1, -0.15)
            start, end = (xa + side * box_width / 2, ya + lift), (xb - side * box_width / 2, yb + lift)
        elif ya > yb:
            start, end = (xa, ya - box_height / 2), (xb, yb + box_height / 2)
        else:  # upward inside a floor cannot happen with rows by depth; drawn red if it ever does
            start, end, colour = (xa, ya + box_height / 2), (xb, yb - box_height / 2), "red"
        ax.add_patch(FancyArrowPatch(start, end, arrowstyle="-|>", mutation_scale=13, color=colour, alpha=0.75,
                                     linewidth=1.3, zorder=2, shrinkA=0, shrinkB=1))

    for box, (cx, cy) in centre.items():
        colour = FLOOR_COLOURS[floor_of(box)]
        ax.add_patch(FancyBboxPatch((cx - box_width / 2, cy - box_height / 2), box_width, box_height,
                                    boxstyle="round,pad=0.02,rounding_size=0.12", facecolor="white", edgecolor=colour,
                                    linewidth=1.8, zorder=3))
        title, small = _label(box, boxes[box])
        lines = small.count("\n") + 1 if small else 0
        top = cy + (0.32 + 0.27 * lines) / 2  # the title (about 0.32 high) and the small lines (0.27 each), centred
        ax.text(cx, top - 0.15, title, ha="center", va="center", fontsize=10.5, fontweight="bold", zorder=4)
        if small:
            ax.text(cx, top - 0.31, small, ha="center", va="top", fontsize=7, color="#444444", zorder=4,
                    linespacing=1.05)
        for i, floor in enumerate(sorted(importers[box], reverse=True)):
            ax.add_patch(Circle((cx + box_width / 2 - 0.16 - 0.27 * i, cy + box_height / 2), 0.11,
                                facecolor=FLOOR_COLOURS[floor], edgecolor="white", linewidth=0.8, zorder=5))

    pairs = floor_arrows(edges)
    for i, ((upper, lower), count) in enumerate(pairs.items()):
        x = width + 0.4 + i * (right - 0.6) / max(len(pairs) - 1, 1)
        top, bottom = sum(span[upper]) / 2, sum(span[lower]) / 2
        colour = FLOOR_COLOURS[upper] if upper > lower else "red"
        ax.add_patch(FancyArrowPatch((x, top), (x, bottom), arrowstyle="-|>", mutation_scale=16, color=colour, linewidth=2.2,
                                     zorder=2, shrinkA=0, shrinkB=0))
        ax.add_patch(Circle((x, top), 0.09, color=colour, zorder=2))
        ax.text(x + 0.1, bottom + 0.15, str(count), fontsize=9.5, color=colour, ha="left", va="bottom")
    ax.text(width + right / 2, height - 0.3, "arrows between\nfloors (count)", ha="center", va="top", fontsize=9,
            color="#333333")

    ax.text(-left + 0.2, height - 0.3, "arrow: imports.  A dot on a box: imported from a higher floor, in that floor's colour. "
            "Generated from the source by utils/draw_floors.py.", ha="left", va="top", fontsize=10, color="#333333")
    output.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(output, dpi=120, bbox_inches="tight",
                metadata={METADATA_KEY: describe(boxes, edges), "Software": "utils/draw_floors.py"})
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--output", type=Path, default=OUTPUT, help="where the PNG goes (default: %(default)s)")
    args = parser.parse_args(argv)
    boxes, edges = graph()
    draw(boxes, edges, args.output)
    print(f"{args.output}: {len(boxes)} boxes, {len(edges)} arrows", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
