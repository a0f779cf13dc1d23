"""What `cbrun data check` says about class folders of images: the files of each class in
each split, files that are not whole images, sizes and channels from the headers, files a
run skips, and the same file in two places.

The files and their classes are listed as a run lists them (cbrun/config/data/images.py),
and the held-out files are drawn by the same function (split_files)."""

from __future__ import annotations

import hashlib
from collections import Counter, defaultdict
from pathlib import Path

from cbrun.config.data.images import EXTENSIONS, image_problem, list_images, split_files
from cbrun.data.imageheader import header
from cbrun.data.report import EXAMPLES, SPLITS, note

TOP_SIZES = 5


def skipped_files(folder: Path, listed: set[Path]) -> dict:
    """Files under the class folders that a run does not read: hidden ones, and names that
    do not end in an image extension."""
    hidden, other = 0, []
    for path in sorted(folder.rglob("*")):
        if path in listed or not path.is_file():
            continue
        if any(part.startswith(".") for part in path.relative_to(folder).parts):
            hidden += 1
        else:
            other.append(str(path.relative_to(folder)))
    return {"hidden": hidden, "not_images": len(other), "examples": other[:EXAMPLES]}


def images_report(folders: dict[str, tuple[Path, str]], spec, seed: int) -> dict:
    """The report of {split field: (folder, its name as shown)}: `path`, and optionally
    `validation_path` and `test_path`; `spec` says how held-out files are drawn
    (validation_split, test_split, split, shuffle)."""
    from cbrun.data.balance import split_warnings

    root, _ = folders["path"]
    classes, files = list_images(root)
    findings: list[dict] = []
    drawn = bool(spec.validation_split or spec.test_split)
    summary = None
    if drawn and files:
        parts, summary = split_files([f for f, _ in files], [i for _, i in files], spec, seed)
        listed = {name: [(f, classes[i]) for f, i in zip(*parts[name], strict=True)]
                  for name in SPLITS if name == "train" or parts[name][0]}
    else:
        listed = {"train": [(f, classes[i]) for f, i in files]}
    skipped = {"train": skipped_files(root, {f for f, _ in files})} if classes else {}
    shown = {"train": folders["path"][1]}
    for split in SPLITS[1:]:
        if f"{split}_path" in folders:
            folder, shown[split] = folders[f"{split}_path"]
            their_classes, theirs = list_images(folder)
            listed[split] = [(f, their_classes[i]) for f, i in theirs]
            skipped[split] = skipped_files(folder, {f for f, _ in theirs})
            extra = sorted(set(their_classes) - set(classes))
            if extra:
                findings.append(note("classes", (
                    f"{shown[split]} has class folder{'s' if len(extra) > 1 else ''} "
                    f"{', '.join(extra[:EXAMPLES])} that {shown['train']} lacks: the model "
                    "has no output for them, and a run refuses the folders")))
                classes = classes + extra
    if not classes:
        findings.append(note("classes", (
            f"{shown['train']} has no class folders; put each class's images in a folder of "
            f"its own ({shown['train']}/cat/1.png, ...)")))
    counts = {split: [sum(1 for _, c in items if c == name) for name in classes]
              for split, items in listed.items()}
    empty = [name for i, name in enumerate(classes) if not counts["train"][i]]
    if empty:
        findings.append(note("classes", (
            f"class folder{'s' if len(empty) > 1 else ''} {', '.join(empty[:EXAMPLES])} of "
            f"{shown['train']} hold{'' if len(empty) > 1 else 's'} no images "
            f"({', '.join(EXTENSIONS)})")))
    files_report, file_findings = _files(listed, shown)
    findings += file_findings
    if len(listed) > 1:
        import numpy as np

        labels = {split: np.array([c for _, c in items], dtype=object)
                  for split, items in listed.items()}
        findings += [note("split", line) for line in split_warnings(labels, spec, summary)]
    duplicates, dup_findings = _same_files(listed, shown)
    findings += dup_findings
    return {"kind": "images",
            "rows": {split: len(items) for split, items in listed.items()},
            "split": summary,
            "labels": [{"name": None, "kind": "classes", "classes": classes,
                        "counts": counts}] if classes else [],
            "images": {**files_report, "skipped": skipped},
            "duplicates": duplicates, "findings": findings}


def _files(listed: dict[str, list], shown: dict[str, str]) -> tuple[dict, list[dict]]:
    """Corrupt files, and the sizes, channels and formats the headers give."""
    corrupt, sizes, channels, unknown = [], Counter(), Counter(), 0
    for split, items in listed.items():
        for path, _ in items:
            problem = image_problem(path)
            if problem:
                corrupt.append({"split": split, "file": str(path), "problem": problem})
                continue
            found = header(path)
            if found is None:
                unknown += 1
                continue
            sizes[found[:2]] += 1
            channels[found[2]] += 1
    findings = [note("corrupt", f"{item['file']} is {item['problem']}; remove or replace "
                                    "it (a run stops on it)", file=item["file"])
                for item in corrupt]
    if len(sizes) > 1:
        (common, number), total = sizes.most_common(1)[0], sum(sizes.values())
        findings.append(note("sizes", (
            f"the images come in {len(sizes)} sizes ({number} of {total} are {common[0]}x"
            f"{common[1]}): every image is resized to image_size, which stretches those of "
            "another shape")))
    report = {"corrupt": corrupt,
              "sizes": [{"height": h, "width": w, "count": n}
                        for (h, w), n in sizes.most_common(TOP_SIZES)],
              "distinct_sizes": len(sizes),
              "channels": {str(c): n for c, n in sorted(channels.items())},
              "size_unknown": unknown}
    return report, findings


def _same_files(listed: dict[str, list], shown: dict[str, str]) -> tuple[dict, list[dict]]:
    """Files with the same bytes: inside a split, and held-out files that training holds
    too. Only files of equal length are read whole."""
    by_length = defaultdict(list)
    for split, items in listed.items():
        for path, label in items:
            by_length[path.stat().st_size].append((split, path, label))
    by_digest = defaultdict(list)
    for group in by_length.values():
        if len(group) < 2:
            continue
        for split, path, label in group:
            by_digest[hashlib.blake2b(path.read_bytes(), digest_size=16).digest()].append(
                (split, path, label))
    within = {split: {"files": 0, "examples": []} for split in listed}
    across = {split: {"files": 0, "of": len(listed[split]), "examples": []}
              for split in listed if split != "train"}
    conflicts = []
    for group in by_digest.values():
        if len(group) < 2:
            continue
        seen = Counter()
        for split, path, _ in group:
            seen[split] += 1
            if seen[split] == 2:
                within[split]["examples"].append([str(p) for s, p, _ in group if s == split])
            if seen[split] >= 2:
                within[split]["files"] += 1
        train = [p for s, p, _ in group if s == "train"]
        for split, path, _ in group:
            if split != "train" and train:
                across[split]["files"] += 1
                across[split]["examples"].append({"file": str(path), "train": str(train[0])})
        if len({label for _, _, label in group}) > 1:
            conflicts.append([{"split": s, "file": str(p), "label": label}
                              for s, p, label in group])
    findings = []
    for found in (*within.values(), *across.values()):
        found["examples"] = found["examples"][:EXAMPLES]
    for split, found in ((s, f) for s, f in within.items() if f["files"]):
        findings.append(note("duplicates", (
            f"{found['files']} file{'s' if found['files'] > 1 else ''} of {split} "
            f"repeat{'' if found['files'] > 1 else 's'} another {split} file byte for byte "
            f"({'; '.join(' = '.join(group[:3]) for group in found['examples'][:3])})")))
    for split, found in ((s, f) for s, f in across.items() if f["files"]):
        findings.append(note("leakage", (
            f"{found['files']} of the {found['of']} {split} files are also training "
            f"files ({'; '.join(e['file'] + ' = ' + e['train'] for e in found['examples'][:3])}"
            f"): the {split} metrics score them as if unseen")))
    if conflicts:
        shown_groups = "; ".join(" vs ".join(f"{i['file']} ({i['label']})" for i in g[:2])
                                 for g in conflicts[:3])
        findings.append(note("conflict", (
            f"{len(conflicts)} image{'s' if len(conflicts) > 1 else ''} "
            f"appear{'' if len(conflicts) > 1 else 's'} in several class folders "
            f"({shown_groups}): no model can fit both")))
    return {"within": within, "across": across,
            "conflicts": {"groups": len(conflicts), "examples": conflicts[:EXAMPLES]}}, findings
