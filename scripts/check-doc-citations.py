#!/usr/bin/env python3
"""Checks that lora-verify cites only documents it ships.

Every comment, test, script and page must point at the repository's own docs: a cited
`docs/NAME.md` must exist, a cited `docs/NAME.md#anchor` must be a heading of that page, a
cited `docs/NAME.md §N` must be a section of it, and a relative Markdown link in README.md or
docs/*.md must resolve (file and anchor). Documents kept outside the repository (notes beside
it, design documents of other projects) are not citations: any mention of their names fails.

usage: check-doc-citations.py [ROOT]     exit 0 all citations resolve, 1 not (each listed)
       check-doc-citations.py --self-test  checks that the checker catches each kind of fault
Standard library only."""
import os
import re
import sys
import tempfile

# Where citations live. Generated data (data/, reports/, corpus/) cites nothing.
SCAN_DIRS = ("src", "tests", "fuzz", "python", "tools", "scripts", "bench", "examples", "packaging", ".ci", "docs")
SCAN_FILES = ("README.md", "CMakeLists.txt", "pyproject.toml", "setup.py")
SKIP_DIRS = {"__pycache__", ".git", "corpus", "build"}
TEXT_SUFFIXES = {".cpp", ".h", ".hpp", ".c", ".py", ".pyi", ".sh", ".md", ".txt", ".cmake", ".toml", ".cfg", ".json",
                 ".yml", ".yaml", ".1", ".options", ".dict", ""}

# Names of documents that are not part of the repository, and what to cite instead.
OUTSIDE = [
    ("shared/docs", "a folder of documents outside the repository"),
    ("flux-lora-formats.md", "a document outside the repository (cite docs/formats.md#…)"),
    ("flux2-and-variants.md", "a document outside the repository (cite docs/formats.md#…)"),
    ("facts doc", "an unnamed document (cite docs/formats.md#…)"),
]
# docs/NAME.md, optionally followed by #anchor or " §N[.M]".
CITATION = re.compile(r"(?<![\w/.-])docs/([A-Za-z0-9_.-]+?\.md)(?:#([A-Za-z0-9_-]+)|\s+§(\d+(?:\.\d+)*))?")
# A relative Markdown link: [text](target) whose target is a .md file and/or an anchor.
MD_LINK = re.compile(r"\]\((?!https?:|mailto:)([^)\s#]*\.md)?(?:#([^)\s]+))?\)")
HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
FENCE = re.compile(r"^\s*(```|~~~)")


def slug(heading):
    """The anchor GitHub gives a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text only
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def headings(path, cache={}):
    """(anchors, heading texts) of a Markdown file; headings inside code fences do not count."""
    if path not in cache:
        anchors, texts, seen, fenced = set(), [], {}, False
        with open(path, encoding="utf-8") as f:
            for line in f:
                if FENCE.match(line):
                    fenced = not fenced
                    continue
                m = None if fenced else HEADING.match(line)
                if not m:
                    continue
                base = slug(m.group(2))
                n = seen.get(base, 0)
                seen[base] = n + 1
                anchors.add(base if n == 0 else f"{base}-{n}")
                texts.append(m.group(2))
        cache[path] = (anchors, texts)
    return cache[path]


def text_files(root, self_path):
    for d in SCAN_DIRS:
        top = os.path.join(root, d)
        for dirpath, dirnames, filenames in os.walk(top):
            dirnames[:] = sorted(n for n in dirnames if n not in SKIP_DIRS and not n.startswith("build"))
            for name in sorted(filenames):
                path = os.path.join(dirpath, name)
                if os.path.splitext(name)[1] in TEXT_SUFFIXES and os.path.realpath(path) != self_path:
                    yield path
    for name in SCAN_FILES:
        path = os.path.join(root, name)
        if os.path.isfile(path):
            yield path


def check_target(root, base_dir, rel_file, anchor, section, where, problems):
    path = os.path.normpath(os.path.join(base_dir, rel_file))
    shown = os.path.relpath(path, root)
    if not path.startswith(os.path.join(root, "")) or not os.path.isfile(path):
        problems.append(f"{where}: cites {shown}, which is not in the repository")
        return
    if not path.endswith(".md") or not (anchor or section):
        return
    anchors, texts = headings(path)
    if anchor and anchor not in anchors:
        problems.append(f"{where}: cites {shown}#{anchor}, but {shown} has no heading with that anchor")
    if section and not any(re.search(rf"§{re.escape(section)}(?![\d.]*\d)", t) for t in texts):
        problems.append(f"{where}: cites {shown} §{section}, but {shown} has no heading §{section}")


def check(root):
    root = os.path.realpath(root)
    self_path = os.path.realpath(__file__)
    problems = []
    for path in text_files(root, self_path):
        try:
            with open(path, encoding="utf-8") as f:
                lines = f.read().split("\n")
        except (UnicodeDecodeError, OSError):
            continue  # binary or unreadable: cites nothing
        rel = os.path.relpath(path, root)
        is_markdown = path.endswith(".md")
        fenced = False
        for number, line in enumerate(lines, 1):
            where = f"{rel}:{number}"
            for name, what in OUTSIDE:
                if name in line:
                    problems.append(f"{where}: names {name}: {what}")
            for m in CITATION.finditer(line):
                check_target(root, root, os.path.join("docs", m.group(1)), m.group(2), m.group(3), where, problems)
            if not is_markdown:
                continue
            if FENCE.match(line):
                fenced = not fenced
            if fenced:
                continue
            for m in MD_LINK.finditer(line):
                target, anchor = m.group(1), m.group(2)
                if target:
                    check_target(root, os.path.dirname(path), target, anchor, None, where, problems)
                elif anchor and anchor not in headings(path)[0]:
                    problems.append(f"{where}: links #{anchor}, but {rel} has no heading with that anchor")
    return problems


def self_test():
    """A small tree with one fault of each kind, and citations that are fine."""
    with tempfile.TemporaryDirectory() as root:
        files = {
            "docs/good.md": "# Good page\n\n## Fused row ranges\n\n## §4 Facts\n\n```\n# not a heading\n```\n"
                            "[ok](good.md#fused-row-ranges) [ok](#4-facts) [bad](#nowhere) [bad](gone.md)\n",
            "src/a.cpp": "// rows: docs/good.md#fused-row-ranges, docs/good.md §4, docs/good.md\n"
                         "// see ../shared/docs/x.md\n"
                         "// flux-lora-" "formats.md §1 and flux2-and-" "variants.md §2\n"
                         "// docs/missing.md and docs/good.md#no-such-anchor and docs/good.md §7\n"
                         "// the facts " "doc §3\n",
            "README.md": "[fine](docs/good.md#4-facts) [broken](docs/good.md#not-a-heading)\n",
        }
        for rel, text in files.items():
            os.makedirs(os.path.join(root, os.path.dirname(rel)), exist_ok=True)
            with open(os.path.join(root, rel), "w", encoding="utf-8") as f:
                f.write(text)
        problems = check(root)
        expected = [
            "docs/good.md:10: links #nowhere",
            "docs/good.md:10: cites docs/gone.md",
            "src/a.cpp:2: names shared/docs",
            "src/a.cpp:3: names flux-lora-" "formats.md",
            "src/a.cpp:3: names flux2-and-" "variants.md",
            "src/a.cpp:4: cites docs/missing.md",
            "src/a.cpp:4: cites docs/good.md#no-such-anchor",
            "src/a.cpp:4: cites docs/good.md §7",
            "src/a.cpp:5: names facts " "doc",
            "README.md:1: cites docs/good.md#not-a-heading",
        ]
        missing = [e for e in expected if not any(p.startswith(e) for p in problems)]
        extra = [p for p in problems if not any(p.startswith(e) for e in expected)]
        for e in missing:
            print(f"self-test: not caught: {e}")
        for p in extra:
            print(f"self-test: false alarm: {p}")
        if missing or extra:
            return 1
        print(f"self-test: all {len(expected)} faults caught, no false alarm")
        return 0


def main(argv):
    if argv[1:] == ["--self-test"]:
        return self_test()
    if len(argv) > 2 or (len(argv) == 2 and argv[1].startswith("-")):
        print(__doc__, file=sys.stderr)
        return 2
    root = argv[1] if len(argv) == 2 else os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
    problems = check(root)
    for p in problems:
        print(p)
    if problems:
        print(f"{len(problems)} citation(s) point outside the repository or nowhere", file=sys.stderr)
        return 1
    print("every cited document is in the repository and every cited anchor exists")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
