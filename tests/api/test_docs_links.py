"""The README and the pages in docs/ hold together: every relative link and #anchor resolves (the file exists,
the anchor is a heading's slug as GitHub makes it), the README links every page, and every `docs/...` path
the code names (an error message, a comment, the Makefile) exists. Moving a section breaks a link; this says
which one."""

from __future__ import annotations

import os
import re
from pathlib import Path

from apitest import ROOT

PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
SKIP_DIRS = {".git", ".venv", ".hosts", "test_artifacts", "demo_output", ".comfy_host", "__pycache__", "node_modules"}
CODE_SUFFIXES = {".py", ".js", ".sh", ".toml", ".txt", ".ini", ".cfg"}
CODE_NAMES = {"Makefile", "run"}   # run: .ci/run

FENCE = re.compile(r"^\s*(```|~~~)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
# [text](target) and ![alt](target); a target may carry a "title" after a space.
MD_LINK = re.compile(r"!?\[(?:[^\]\[]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
HTML_LINK = re.compile(r"<(?:img|a)\b[^>]*?\b(?:src|href)=\"([^\"]+)\"", re.I)
HTML_ANCHOR = re.compile(r"<a\b[^>]*?\b(?:name|id)=\"([^\"]+)\"", re.I)
# A docs/ path as the code names it: not part of a longer path (web/docs/..., a URL's /docs/).
DOCS_PATH = re.compile(r"(?<![\w/.-])docs/[\w./-]*\w")


def prose(path: Path) -> str:
    """The page with fenced code blocks and inline code spans blanked (a link's text may run over a line
    break; line numbers stay as they were)."""
    lines, fenced = [], False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            line = ""
        lines.append("" if fenced else line)
    return re.sub(r"`[^`\n]*(?:\n[^`\n]+)*`", lambda m: re.sub(r"[^\n]", " ", m.group(0)), "\n".join(lines))


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: the rendered text, lower case, punctuation but '-' and '_' dropped,
    spaces made hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)   # a link shows its text
    text = re.sub(r"<[^>]+>", "", text).replace("`", "").replace("*", "")
    return re.sub(r"[^\w\- ]", "", text.strip().lower()).replace(" ", "-")


def anchors(path: Path) -> set[str]:
    found: set[str] = set()
    seen: dict[str, int] = {}
    fenced = False
    for line in path.read_text(encoding="utf-8").splitlines():
        if FENCE.match(line):
            fenced = not fenced
            continue
        if fenced:
            continue
        found.update(HTML_ANCHOR.findall(line))
        match = HEADING.match(line)
        if match:
            base = slug(match.group(2))
            count = seen.get(base, 0)
            seen[base] = count + 1
            found.add(base if count == 0 else f"{base}-{count}")   # GitHub numbers repeated headings
    return found


def links(path: Path):
    text = prose(path)
    for match in [*MD_LINK.finditer(text), *HTML_LINK.finditer(text)]:
        yield text.count("\n", 0, match.start()) + 1, match.group(1)


def broken_links(page: Path) -> list[str]:
    problems = []
    for number, target in links(page):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I):   # http:, https:, mailto:
            continue
        where = f"{page.relative_to(ROOT)}:{number}: {target}"
        file_part, _, anchor = target.partition("#")
        linked = (page.parent / file_part).resolve() if file_part else page
        if not linked.exists():
            problems.append(f"{where}: {linked.relative_to(ROOT) if linked.is_relative_to(ROOT) else linked} "
                            "does not exist")
            continue
        if anchor:
            if linked.suffix != ".md":
                problems.append(f"{where}: an anchor into a file that is not Markdown")
            elif anchor not in anchors(linked):
                problems.append(f"{where}: no heading in {linked.relative_to(ROOT)} has the anchor #{anchor} "
                                f"(its anchors: {', '.join(sorted(anchors(linked)))})")
    return problems


def test_every_link_in_the_readme_and_docs_resolves():
    assert len(PAGES) > 1, "docs/ has no pages"
    problems = [problem for page in PAGES for problem in broken_links(page)]
    assert not problems, "broken links:\n" + "\n".join(problems)


def test_the_readme_links_every_docs_page():
    linked = {(ROOT / target.partition("#")[0]).resolve() for _, target in links(ROOT / "README.md")}
    missing = [page.relative_to(ROOT).as_posix() for page in PAGES[1:] if page.resolve() not in linked]
    assert not missing, f"the README links no path to: {', '.join(missing)}"


def code_files():
    for folder, dirs, files in os.walk(ROOT):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in files:
            path = Path(folder) / name
            if path.suffix in CODE_SUFFIXES or name in CODE_NAMES:
                yield path


def test_every_docs_path_named_in_code_or_pages_exists():
    named: list[str] = []
    for path in [*code_files(), *PAGES]:
        for number, line in enumerate(path.read_text(encoding="utf-8", errors="replace").splitlines(), 1):
            named += [f"{path.relative_to(ROOT)}:{number}: {m}" for m in DOCS_PATH.findall(line)
                      if not (ROOT / m).exists()]
    assert not named, "docs/ paths that do not exist:\n" + "\n".join(named)


def test_slugs_are_githubs():
    # GitHub's rule on headings of the kinds these pages have: code spans, parentheses, a colon, a link,
    # underscores (kept).
    assert slug("Checking the emulator against the real service (`make probe`)") == \
        "checking-the-emulator-against-the-real-service-make-probe"
    assert slug("The client (`api/`), for scripts") == "the-client-api-for-scripts"
    assert slug("Development: tests, hosts, layout") == "development-tests-hosts-layout"
    assert slug("WAN_STATE_DIR and the [state](x.md) folder") == "wan_state_dir-and-the-state-folder"
