"""The README stays short and its layout says what is really in the repository.

The layout section is the first fenced block after the `## Layout` heading. Each line that
starts in the first column names a path relative to the repository root (a folder ends
with `/`), then its description; indented lines carry a description on.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
README = REPO / "README.md"
MAX_LINES = 250
# Folders whose subfolders the layout may name as a group, by naming the folder itself.
GROUPS = ("billing/templates/", "billing/static/")


def layout_paths() -> list[str]:
    """The paths the README's layout section names, in order."""
    lines = README.read_text().splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "## Layout"), None)
    assert start is not None, "the README has no '## Layout' section"
    fences = [i for i in range(start + 1, len(lines)) if lines[i].startswith("```")]
    assert len(fences) >= 2, "the layout section has no fenced block"
    block = lines[fences[0] + 1 : fences[1]]
    return [line.split()[0] for line in block if line.strip() and not line[0].isspace()]


def folders_under(top: str) -> list[str]:
    """Every folder under `top` (itself excluded), as `path/` relative to the repository;
    caches (`__pycache__`, dot-folders) left out."""
    found = []
    for path in sorted((REPO / top).rglob("*")):
        parts = path.relative_to(REPO).parts
        if not path.is_dir() or any(p == "__pycache__" or p.startswith(".") for p in parts):
            continue
        found.append("/".join(parts) + "/")
    return found


def tracked_top_level_folders() -> list[str]:
    """The repository's top-level folders that hold a file git tracks."""
    try:
        listed = subprocess.run(
            ["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout
    except (OSError, subprocess.CalledProcessError) as error:
        pytest.skip(f"not a git checkout: {error}")
    return sorted({line.split("/")[0] + "/" for line in listed.splitlines() if "/" in line})


def named(folder: str, paths: list[str]) -> bool:
    """The layout names `folder`, itself or as part of a group it belongs to."""
    return folder in paths or any(folder.startswith(g) and g in paths for g in GROUPS)


def test_the_readme_fits_on_a_few_screens() -> None:
    count = len(README.read_text().splitlines())
    assert count <= MAX_LINES, f"README.md has {count} lines; at most {MAX_LINES}"


def test_every_path_the_layout_names_exists() -> None:
    paths = layout_paths()
    assert paths, "the layout section names no path"
    missing = [p for p in paths if not (REPO / p).exists()]
    not_folders = [p for p in paths if p.endswith("/") and not (REPO / p).is_dir()]
    assert missing == [], f"the layout names paths that do not exist: {missing}"
    assert not_folders == [], f"the layout names these as folders, but they are not: {not_folders}"


def test_every_folder_is_in_the_layout() -> None:
    paths = layout_paths()
    wanted = [
        *tracked_top_level_folders(),
        "billing/",
        *folders_under("billing"),
        "tests/",
        *folders_under("tests"),
    ]
    unnamed = sorted({f for f in wanted if not named(f, paths)})
    assert unnamed == [], (
        "these folders have no line in the README's layout section (add one, "
        f"`path/   what it holds`): {unnamed}"
    )


def test_the_layout_names_each_path_once() -> None:
    paths = layout_paths()
    repeated = sorted({p for p in paths if paths.count(p) > 1})
    assert repeated == [], f"the layout names these more than once: {repeated}"
