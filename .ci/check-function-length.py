#!/usr/bin/env python3
"""Fails when a function in the workspace's sources is longer than a limit.

A long function mixes steps that deserve names; the limit keeps each one
short enough to read, test and review on its own. Counted: every `fn` with a
body in `src/` and `crates/*/src/` (tests beside their modules included),
from the line of `fn` to the line of its closing brace.

    .ci/check-function-length.py [--max N] [--top K] [DIR ...]

Defaults: 120 lines, both crates' `src/`. Prints each function over the
limit and exits 1, or prints the longest one and exits 0; `--top K` lists
the K longest.
"""

import argparse
import pathlib
import re
import sys

FN = re.compile(r"\bfn\s+([A-Za-z_][A-Za-z0-9_]*)")


def blank_out(text: str) -> str:
    """Comments, strings and char literals replaced by spaces, newlines kept,
    so their braces do not count and line numbers stay right."""
    out = []
    i, n = 0, len(text)
    while i < n:
        ch = text[i]
        if text.startswith("//", i):
            j = text.find("\n", i)
            j = n if j < 0 else j
            out.append(" " * (j - i))
            i = j
        elif text.startswith("/*", i):
            j = text.find("*/", i + 2)
            j = n if j < 0 else j + 2
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif ch == "r" and re.match(r'r#*"', text[i:]) and not (i and (text[i - 1].isalnum() or text[i - 1] == "_")):
            hashes = re.match(r"r(#*)\"", text[i:]).group(1)
            end = '"' + hashes
            j = text.find(end, i + len(hashes) + 2)
            j = n if j < 0 else j + len(end)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif ch == '"':
            j = i + 1
            while j < n and text[j] != '"':
                j += 2 if text[j] == "\\" else 1
            j = min(j + 1, n)
            out.append(re.sub(r"[^\n]", " ", text[i:j]))
            i = j
        elif ch == "'":
            # A char literal ('{', '\n', '\u{202e}'), not a lifetime ('a).
            m = re.match(r"'(\\u\{[0-9a-fA-F]+\}|\\.|[^\\'])'", text[i:])
            if m:
                out.append(" " * len(m.group(0)))
                i += len(m.group(0))
            else:
                out.append(ch)
                i += 1
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def functions(path: pathlib.Path):
    """(name, first line, line count) of every function with a body."""
    text = blank_out(path.read_text())
    for match in FN.finditer(text):
        # The body opens at the first `{` after the signature, unless a `;`
        # comes first (a trait method or foreign item without a body).
        i = match.end()
        depth_paren = 0
        while i < len(text):
            ch = text[i]
            if ch in "([<":
                depth_paren += 1
            elif ch in ")]>":
                depth_paren = max(0, depth_paren - 1)
            elif ch == ";" and depth_paren == 0:
                i = -1
                break
            elif ch == "{" and depth_paren == 0:
                break
            i += 1
        if i < 0 or i >= len(text):
            continue
        depth, j = 0, i
        while j < len(text):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    break
            j += 1
        first = text.count("\n", 0, match.start()) + 1
        last = text.count("\n", 0, j) + 1
        yield match.group(1), first, last - first + 1


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--max", type=int, default=120)
    parser.add_argument("--top", type=int, default=0)
    parser.add_argument("dirs", nargs="*")
    args = parser.parse_args()
    root = pathlib.Path(__file__).resolve().parent.parent
    dirs = [pathlib.Path(d) for d in args.dirs] or [root / "src", *sorted((root / "crates").glob("*/src"))]
    found = []
    for d in dirs:
        for file in sorted(d.rglob("*.rs")):
            shown = file.relative_to(root) if file.is_relative_to(root) else file
            for name, line, length in functions(file):
                found.append((length, f"{shown}:{line}", name))
    found.sort(reverse=True)
    for length, where, name in found[: args.top]:
        print(f"{length:5} {where} {name}")
    over = [f for f in found if f[0] > args.max]
    for length, where, name in over:
        print(f"{where}: fn {name} is {length} lines, more than {args.max}: split it into named steps")
    if over:
        return 1
    if found:
        length, where, name = found[0]
        print(f"check-function-length: {len(found)} functions, the longest {length} lines ({name}, {where}), limit {args.max}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
