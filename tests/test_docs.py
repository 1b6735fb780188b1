"""The docs stay true: docs/rules.md is what the catalogue generates, and no relative link is broken.

No database: these read files only.
"""

from __future__ import annotations

import difflib
import re
from pathlib import Path

import pytest

from mita_integrity.check.rule_registry import ALL_RULES
from mita_integrity.repair.rule_reference import anchor, reference_markdown

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
RULES_MD = DOCS / "rules.md"
REGENERATE = "python -m mita_integrity.repair.rule_reference > docs/rules.md"

# The guides the index and the operations guide link to; a missing one is a broken link, not a skip.
GUIDES = ("README.md", "rules.md", "configuration.md", "operations.md", "deployment.md", "poolers.md", "replicas.md",
          "faults.md", "least-privilege.md", "roles.sql")

FENCE = re.compile(r"^(```|~~~).*?^\1", re.MULTILINE | re.DOTALL)
CODE_SPAN = re.compile(r"`[^`\n]*`")
LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted(DOCS.rglob("*.md"))]


def links(text: str) -> list[str]:
    """Gives the targets of the inline links of a Markdown text, code blocks and code spans left out."""
    prose = CODE_SPAN.sub("", FENCE.sub("", text))
    return LINK.findall(prose)


def anchors(path: Path) -> set[str]:
    """Gives the fragments GitHub makes for the headings of a Markdown file (repeats get -1, -2…)."""
    seen: dict[str, int] = {}
    out = set()
    for heading in HEADING.findall(FENCE.sub("", path.read_text(encoding="utf-8"))):
        slug = anchor(re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading))
        out.add(f"{slug}-{seen[slug]}" if slug in seen else slug)
        seen[slug] = seen.get(slug, 0) + 1
    return out


def test_rules_md_is_generated_from_the_catalogue() -> None:
    expected = reference_markdown()
    actual = RULES_MD.read_text(encoding="utf-8") if RULES_MD.exists() else ""
    if actual != expected:
        diff = "".join(list(difflib.unified_diff(
            actual.splitlines(keepends=True), expected.splitlines(keepends=True),
            "docs/rules.md", "generated", n=1))[:40])
        pytest.fail(f"docs/rules.md differs from the catalogue; regenerate it with:\n    {REGENERATE}\n{diff}")


def test_every_rule_code_is_documented() -> None:
    text = RULES_MD.read_text(encoding="utf-8")
    missing = [r.code for r in ALL_RULES if not re.search(rf"^### {r.code} {re.escape(r.name)}$", text, re.MULTILINE)]
    assert not missing, f"docs/rules.md has no section for {missing}; run: {REGENERATE}"


@pytest.mark.parametrize("name", GUIDES)
def test_every_guide_exists(name: str) -> None:
    assert (DOCS / name).is_file(), f"docs/{name} is listed in docs/README.md but does not exist"


def test_the_index_lists_every_doc() -> None:
    index = set(links((DOCS / "README.md").read_text(encoding="utf-8")))
    documents = {p.relative_to(DOCS).as_posix() for p in DOCS.rglob("*.md")} - {"README.md"}
    unlisted = sorted(d for d in documents if d not in index)
    assert not unlisted, f"docs/README.md does not link to {unlisted}"


@pytest.mark.parametrize("path", markdown_files(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_relative_links_point_to_existing_files(path: Path) -> None:
    broken = []
    for target in links(path.read_text(encoding="utf-8")):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):  # http:, https:, mailto:…
            continue
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target} (no such file)")
        elif fragment and dest.suffix == ".md" and fragment not in anchors(dest):
            broken.append(f"{target} (no heading #{fragment} in {dest.relative_to(ROOT)})")
    assert not broken, f"{path.relative_to(ROOT)}: broken links: {broken}"
