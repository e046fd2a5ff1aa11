#!/usr/bin/env python3
"""Fails when the module import graph of a crate has a cycle.

Nodes are the top-level modules of each crate (`src/cache.rs` and everything
under `src/cache/` is `cache`); an edge A -> B is any `crate::B` path written
in A, tests included. A cycle means two modules cannot be read, tested or
moved apart, which is what the crate layout exists to prevent.

    .ci/check-module-cycles.py [CRATE_SRC_DIR ...]

Defaults to both crates of the workspace. Prints every cycle found and exits
1, or prints one summary line per crate and exits 0.
"""

import pathlib
import re
import sys

USE_CRATE = re.compile(r"\bcrate::(\{|[a-z_][a-z0-9_]*)")


def top_module(src: pathlib.Path, file: pathlib.Path) -> str | None:
    rel = file.relative_to(src)
    if rel.parts[0] in ("lib.rs", "main.rs"):
        return None
    return rel.parts[0].removesuffix(".rs")


def braced_names(text: str, start: int) -> list[str]:
    """Top-level names inside the `{...}` that opens at `start`."""
    # Only the first path segment of each item counts: `{cache::{self,
    # Cache}, engine::Outcome}` names `cache` and `engine`.
    first = []
    segment_start = True
    depth = 0
    token = ""
    for ch in text[start:]:
        if ch == "{":
            depth += 1
            if depth == 1:
                segment_start = True
            continue
        if ch == "}":
            depth -= 1
            if depth == 0:
                break
            continue
        if depth != 1:
            continue
        if ch.isalnum() or ch == "_":
            token += ch
            continue
        if token and segment_start:
            first.append(token)
            segment_start = False
        token = ""
        if ch == ",":
            segment_start = True
    return first


def graph(src: pathlib.Path) -> dict[str, set[str]]:
    modules = {
        top_module(src, f)
        for f in src.rglob("*.rs")
        if top_module(src, f) is not None
    }
    edges: dict[str, set[str]] = {m: set() for m in modules}
    for file in src.rglob("*.rs"):
        module = top_module(src, file)
        if module is None:
            continue
        # Comments (doc links included) are not imports.
        text = re.sub(r"//[^\n]*", "", file.read_text())
        for match in USE_CRATE.finditer(text):
            if match.group(1) == "{":
                targets = braced_names(text, match.start(1))
            else:
                targets = [match.group(1)]
            for target in targets:
                if target in modules and target != module:
                    edges[module].add(target)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    found, state, stack = [], {}, []

    def visit(node: str) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt):] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def main() -> int:
    root = pathlib.Path(__file__).resolve().parent.parent
    dirs = [pathlib.Path(a) for a in sys.argv[1:]] or [
        root / "src",
        root / "crates" / "scale-governor-core" / "src",
    ]
    status = 0
    for src in dirs:
        edges = graph(src)
        found = cycles(edges)
        name = src.relative_to(root) if src.is_relative_to(root) else src
        if found:
            status = 1
            for cycle in found:
                print(f"{name}: module cycle: {' -> '.join(cycle)}")
        else:
            count = sum(len(v) for v in edges.values())
            print(f"{name}: {len(edges)} modules, {count} edges, no cycle")
    return status


if __name__ == "__main__":
    sys.exit(main())
