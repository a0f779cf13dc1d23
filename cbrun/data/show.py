"""The report of `cbrun data check` in the terminal: rich tables, then one `warning:` line
per finding, each naming its column, class, row or file."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

MOST_CLASSES = 30  # classes shown in the terminal


def _number(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)


def _clip(value: Any, width: int = 24) -> str:
    text = _number(value)
    return text if len(text) <= width else text[:width - 1] + "…"


def heading(report: dict) -> list[str]:
    files = report.get("files") or {}
    lines = [f"data check: {report['target']} ({report['source']}"
             + (f": {', '.join(files.values())}" if files else "") + ")"]
    split = report.get("split")
    if split:
        asked = f" ({split['asked']})" if split["asked"] != split["method"] else ""
        fractions = ", ".join(f"{name} {split[name]}" for name in ("validation_split",
                                                                    "test_split")
                              if split[name])
        lines.append(f"split: {split['method']}{asked}, seed {report['seed']}, {fractions}")
    rows = report.get("rows") or {}
    what = "files" if report["kind"] == "images" else "rows"
    lines.append(f"{what}: " + ", ".join(f"{name} {count:,}" for name, count in rows.items()))
    if report.get("read"):
        lines.append(f"read: {report['read']}")
    return lines


def columns_table(columns: list[dict]) -> Table:
    table = Table(title="columns", title_justify="left")
    for name, justify in (("column", "left"), ("kind", "left"), ("use", "left"),
                          ("missing", "right"), ("distinct", "right"), ("min", "right"),
                          ("max / example", "right")):
        table.add_column(name, justify=justify, overflow="fold")
    for info in columns:
        kind = info["kind"] + (" (constant)" if info["constant"] else "")
        missing = info["missing"] + info["nan"]
        table.add_row(info["name"], kind, info["use"], f"{missing:,}" if missing else "",
                      "" if info["distinct"] is None else f"{info['distinct']:,}",
                      _clip(info["min"]),
                      _clip(info["max"] if info["max"] is not None else info["example"]))
    return table


def arrays_table(arrays: list[dict]) -> Table:
    table = Table(title="arrays", title_justify="left")
    for name in ("array", "use", "shape", "dtype", "NaN", "min", "max"):
        table.add_column(name, justify="left" if name in ("array", "use") else "right")
    for info in arrays:
        table.add_row(info["name"], info["use"], "x".join(map(str, info["shape"])),
                      info["dtype"], f"{info['nan']:,}" if info["nan"] else "",
                      _clip(info["min"]), _clip(info["max"]))
    return table


def label_table(label: dict) -> Table:
    if label["kind"] == "classes":
        counts = label["counts"]
        table = Table(title=f"classes of {label['name']!r}" if label["name"] else "classes",
                      title_justify="left")
        table.add_column("class", overflow="fold")
        for split in counts:
            table.add_column(split, justify="right")
        totals = {split: max(1, sum(values)) for split, values in counts.items()}
        shown = range(len(label["classes"]))
        if len(shown) > MOST_CLASSES:  # the most common ones; --json has every class
            shown = sorted(sorted(shown, key=lambda i: -sum(c[i] for c in counts.values()))
                           [:MOST_CLASSES])
        for index in shown:
            table.add_row(str(label["classes"][index]), *[
                f"{counts[split][index]:,} ({counts[split][index] / totals[split]:.0%})"
                for split in counts])
        if len(shown) < len(label["classes"]):
            table.add_row(f"({len(label['classes']) - len(shown):,} more classes)",
                          *["" for _ in counts])
        return table
    table = Table(title=f"label {label['name']!r}", title_justify="left")
    for name in ("split", "rows", "min", "mean", "max"):
        table.add_column(name, justify="left" if name == "split" else "right")
    for split, stats in label["stats"].items():
        table.add_row(split, f"{stats['rows']:,}", _number(stats["min"]),
                      _number(stats["mean"]), _number(stats["max"]))
    return table


def duplicates_table(duplicates: dict, rows: dict[str, int], unit: str) -> Table:
    table = Table(title=f"repeated {unit}", title_justify="left")
    for name in ("split", unit, "repeated", "also in train"):
        table.add_column(name, justify="left" if name == "split" else "right")
    within, across = duplicates["within"], duplicates["across"]
    for split, count in rows.items():
        repeats = within.get(split, {})
        repeats = repeats.get("rows", repeats.get("files", 0))
        leaked = across.get(split)
        table.add_row(split, f"{count:,}", f"{repeats:,}",
                      "" if leaked is None else f"{leaked.get('rows', leaked.get('files')):,}")
    return table


def images_lines(images: dict) -> list[str]:
    lines = []
    sizes = ", ".join(f"{s['height']}x{s['width']} ({s['count']:,})" for s in images["sizes"])
    more = images["distinct_sizes"] - len(images["sizes"])
    if sizes:
        lines.append(f"sizes (height x width): {sizes}" + (f", {more} more" if more > 0 else ""))
    if images["channels"]:
        lines.append("channels: " + ", ".join(f"{c} ({n:,})" for c, n in
                                              images["channels"].items()))
    if images["size_unknown"]:
        lines.append(f"size not in the header: {images['size_unknown']:,} files")
    for split, skipped in images["skipped"].items():
        parts = []
        if skipped["hidden"]:
            parts.append(f"{skipped['hidden']} hidden")
        if skipped["not_images"]:
            parts.append(f"{skipped['not_images']} not images ("
                         + ", ".join(skipped["examples"][:3])
                         + (", ..." if skipped["not_images"] > 3 else "") + ")")
        if parts:
            lines.append(f"skipped in {split}, as a run skips them: {'; '.join(parts)}")
    return lines


def show(report: dict, console: Console) -> None:
    for line in heading(report):
        console.print(line, markup=False)
    if report.get("columns"):
        console.print(columns_table(report["columns"]))
    if report.get("arrays"):
        console.print(arrays_table(report["arrays"]))
    if report.get("images"):
        for line in images_lines(report["images"]):
            console.print(line, markup=False)
    for label in report.get("labels", []):
        console.print(label_table(label))
    duplicates = report.get("duplicates")
    if duplicates:
        unit = "files" if report["kind"] == "images" else "rows"
        console.print(duplicates_table(duplicates, report["rows"], unit))
        compared = duplicates.get("columns")
        if compared:
            console.print(f"(rows compared on: {', '.join(compared)})", markup=False,
                          soft_wrap=True)
