"""Citations of the design document point at sections that exist, and the code cites no file outside the repository."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DESIGN = ROOT / "docs" / "design.md"
CITING = [p for p in (ROOT / "src").rglob("*") if p.suffix in (".py", ".yaml")] + sorted((ROOT / "tests").glob("*.py"))


def test_every_design_citation_names_an_existing_section():
    sections = set(re.findall(r"^##+ (\d+(?:\.\d+)*)\.? ", DESIGN.read_text(), re.MULTILINE))
    assert {"4", "4.4", "8"} <= sections, f"section headings not found in {DESIGN}: {sorted(sections)}"
    cited = {
        (path.relative_to(ROOT), number)
        for path in CITING
        for number in re.findall(r"docs/design\.md §(\d+(?:\.\d+)*)", path.read_text())
    }
    assert cited, "no citations of docs/design.md found: is the pattern still right?"
    missing = sorted(f"{path}: §{number}" for path, number in cited if number not in sections)
    assert not missing, f"citations of sections that docs/design.md does not have: {missing}"


def test_no_citation_of_a_design_file_outside_the_repository():
    this = Path(__file__).resolve()
    stray = sorted(str(p.relative_to(ROOT)) for p in CITING if p != this and "DESIGN.md" in p.read_text())
    assert not stray, f"these files cite DESIGN.md, which is not in the repository; cite docs/design.md: {stray}"
