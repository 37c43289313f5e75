"""The docs cannot rot silently: the paths and links they name exist, docs/contract.md lists
every intent, and nothing in the repository points at documents kept outside it."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [*DOCS, ROOT / "README.md", ROOT / "deploy" / "README.md"]
THIS = Path(__file__).resolve()

FENCED = re.compile(r"^```.*?^```", re.DOTALL | re.MULTILINE)
INLINE = re.compile(r"`([^`\n]+)`")
REPO_PATH = re.compile(r"(?:bot|actions|card_service|tests|tools|deploy|docs|web|data)/\S*")
PLACEHOLDER = re.compile(r"<[^>]*>")
LINK = re.compile(r"\]\(([^)#\s]+)(?:#[^)]*)?\)")
# The reference pages by their bare name: outside docs/ they are named with their folder.
PAGE_NAME = re.compile(r"(\S*?)\b(?:domain|contract|rasa-notes|conversations)\.md")
OUTSIDE = ("../" + "shared", "shared/" + "spec")  # split so this file does not match itself
# Paths the docs name that an operator supplies, never kept in git.
SUPPLIED = {"deploy/tls/fullchain.pem"}  # the TLS certificate deploy/docker-compose.yml mounts


def repository_files() -> list[Path]:
    """Tracked files, and new ones not ignored, as they are in the working tree."""
    try:
        listed = subprocess.run(
            ["git", "ls-files", "--cached", "--others", "--exclude-standard", "-z"],
            cwd=ROOT, capture_output=True, check=True).stdout.decode()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    paths = (ROOT / name for name in listed.split("\0") if name)
    return [path for path in paths if path.is_file() and path != THIS]


def backticked_paths(page: Path) -> list[str]:
    text = FENCED.sub("", page.read_text(encoding="utf-8"))
    return [token.rstrip(".,;:)")
            for span in INLINE.findall(text)
            for token in span.split()
            if REPO_PATH.fullmatch(token.rstrip(".,;:)"))]


def exists(path: str) -> bool:
    """A plain path exists; one with a placeholder (`<status>`) matches at least one file."""
    if PLACEHOLDER.search(path):
        return any(ROOT.glob(PLACEHOLDER.sub("*", path).rstrip("/")))
    return (ROOT / path).exists()


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_backticked_path_exists(page: Path) -> None:
    missing = sorted({path for path in backticked_paths(page)
                      if path not in SUPPLIED and not exists(path)})
    assert not missing, f"{page.relative_to(ROOT)} names paths that do not exist: {missing}"


@pytest.mark.parametrize("page", PAGES, ids=lambda page: page.relative_to(ROOT).as_posix())
def test_every_local_link_exists(page: Path) -> None:
    links = [link for link in LINK.findall(page.read_text(encoding="utf-8"))
             if "://" not in link]
    missing = [link for link in links if not (page.parent / link).exists()]
    assert not missing, f"{page.relative_to(ROOT)} links to missing files: {missing}"


def test_the_path_check_sees_paths_and_placeholders() -> None:
    assert exists("bot/rules/statuses.py")
    assert exists("bot/rules/<name>.py")
    assert not exists("bot/rules/no_such_module.py")
    assert not exists("bot/<name>/no_such_module.py")


def test_contract_lists_every_intent() -> None:
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    intents = [next(iter(i)) if isinstance(i, dict) else i for i in domain["intents"]]
    contract = (ROOT / "docs" / "contract.md").read_text(encoding="utf-8")
    unlisted = [intent for intent in intents if f"`{intent}`" not in contract]
    assert not unlisted, f"docs/contract.md does not list the intents {unlisted}"


def test_nothing_points_outside_the_repository() -> None:
    pointing = [path.relative_to(ROOT).as_posix() for path in repository_files()
                if any(mark.encode() in path.read_bytes() for mark in OUTSIDE)]
    assert not pointing, f"these files point outside the repository: {pointing}"


def test_reference_pages_are_named_with_their_folder() -> None:
    """`contract.md` alone would read as a file beside the one naming it; outside docs/ it is
    `docs/contract.md`."""
    docs = ROOT / "docs"
    bare = []
    for path in repository_files():
        if path.parent == docs or path.suffix in (".png", ".lock"):
            continue
        text = path.read_bytes().decode("utf-8", errors="ignore")
        bare += [f"{path.relative_to(ROOT)}: {match.group(0)}"
                 for match in PAGE_NAME.finditer(text) if not match.group(1).endswith("docs/")]
    assert not bare, f"name these pages as docs/<page>: {bare}"
