#!/usr/bin/env python3
"""Fails when the module import graph of a crate has a cycle.

Two graphs are checked for each crate:
- top level: `src/cache.rs` and everything under `src/cache/` is `cache`;
- file level: every file is its own module (`recommender::evaluate`).

An edge A -> B is any path in A that names B: `crate::b::...`,
`super::b::...`, `self::b::...`, or a child module by its bare name, in a
`use` tree or inline, tests included. A path that names a module's own
ancestor (`super::Loop` from `recommender/evaluate.rs`) is not an edge: a
child always reads its parent, and the parent reaching into the child is what
nesting means. A cycle means modules that cannot be read, tested or moved
apart, which is what the layout exists to prevent.

    .ci/check-module-cycles.py [CRATE_SRC_DIR ...]

Defaults to both crates of the workspace. Prints every cycle found and exits
1, or prints one summary line per crate and exits 0.
"""

import pathlib
import re
import sys

IDENT = r"[A-Za-z_][A-Za-z0-9_]*"
INLINE_PATH = re.compile(rf"(?<![A-Za-z0-9_:])((?:crate|super|self)(?:::{IDENT})+|{IDENT}(?:::{IDENT})+)")
USE = re.compile(r"\buse\s+([^;]*);")
MOD_DECL = re.compile(rf"\bmod\s+({IDENT})\s*;")
MOD_BLOCK = re.compile(rf"\bmod\s+({IDENT})\s*\{{")


def blank(text: str) -> str:
    """Comments and string literals blanked out (doc links are not imports)."""
    text = re.sub(r"//[^\n]*", "", text)
    text = re.sub(r"/\*.*?\*/", "", text, flags=re.S)
    text = re.sub(r'r(#*)".*?"\1', '""', text, flags=re.S)
    text = re.sub(r'"(\\.|[^"\\])*"', '""', text, flags=re.S)
    return re.sub(r"'(\\.|[^\\'])'", "' '", text)


def file_module(src: pathlib.Path, file: pathlib.Path) -> tuple[str, ...]:
    rel = file.relative_to(src).with_suffix("")
    parts = rel.parts
    if parts in (("lib",), ("main",)):
        return ()
    if parts[-1] == "mod":
        parts = parts[:-1]
    return tuple(parts)


def use_paths(tree: str) -> list[list[str]]:
    """The paths a `use` tree names: `a::{b, c::{d as e}}` gives a::b, a::c::d."""
    tokens = re.findall(rf"{IDENT}|::|\{{|\}}|,|\*", tree)
    paths: list[list[str]] = []

    def parse(i: int, prefix: list[str]) -> int:
        path = list(prefix)
        while i < len(tokens):
            t = tokens[i]
            if t == "{":
                i += 1
                while i < len(tokens) and tokens[i] != "}":
                    i = parse(i, path)
                    if i < len(tokens) and tokens[i] == ",":
                        i += 1
                return i + 1
            if t in (",", "}"):
                break
            if t == "::":
                i += 1
                continue
            if t == "as":
                i += 2
                continue
            if t == "*":
                i += 1
                continue
            if t != "self":
                path.append(t)
            elif not path:
                path.append(t)
            i += 1
        if len(path) > len(prefix) or (path and path == prefix):
            paths.append(path)
        return i

    i = 0
    while i < len(tokens):
        i = parse(i, [])
        if i < len(tokens) and tokens[i] == ",":
            i += 1
    return paths


def blocks(text: str, module: tuple[str, ...]):
    """(module path, text) of the file's body and each inline `mod x { }`,
    each without the inline modules nested in it."""
    out_text, i, inner = [], 0, []
    while True:
        m = MOD_BLOCK.search(text, i)
        if not m:
            out_text.append(text[i:])
            break
        out_text.append(text[i : m.start()])
        depth, j = 0, m.end() - 1
        while j < len(text):
            depth += {"{": 1, "}": -1}.get(text[j], 0)
            if depth == 0:
                break
            j += 1
        inner.append((module + (m.group(1),), text[m.end() : j]))
        i = j + 1
    yield module, "".join(out_text)
    for sub, body in inner:
        yield from blocks(body, sub)


def resolve(path: list[str], base: tuple[str, ...], children: set[str]) -> tuple[str, ...] | None:
    head, rest = path[0], path[1:]
    if head == "crate":
        at = ()
    elif head in ("super", "self"):
        at = base
        while path and path[0] in ("super", "self"):
            if path[0] == "super":
                at = at[:-1]
            path = path[1:]
        rest = path
    elif head in children:
        at, rest = base, path
    else:
        return None  # an external crate, a type or a variant
    return at + tuple(rest)


def graph(src: pathlib.Path) -> dict[tuple[str, ...], set[tuple[str, ...]]]:
    files = {file_module(src, f): f for f in src.rglob("*.rs")}
    modules = set(files)
    edges: dict[tuple[str, ...], set[tuple[str, ...]]] = {m: set() for m in modules}
    for module, file in files.items():
        text = blank(file.read_text())
        for base, body in blocks(text, module):
            children = set(MOD_DECL.findall(body)) | set(MOD_BLOCK.findall(body))
            found = [p for m in USE.finditer(body) for p in use_paths(m.group(1))]
            outside = USE.sub("", body)
            found += [m.group(1).split("::") for m in INLINE_PATH.finditer(outside)]
            for path in found:
                target = resolve(path, base, children)
                if target is None:
                    continue
                # The longest prefix that is a file of this crate.
                while target and target not in modules:
                    target = target[:-1]
                if not target or target == module[: len(target)]:
                    continue  # the crate root, the module itself or an ancestor
                edges[module].add(target)
    return edges


def top_level(edges):
    top: dict[tuple[str, ...], set[tuple[str, ...]]] = {}
    for node, targets in edges.items():
        if not node:
            continue
        top.setdefault(node[:1], set())
        for t in targets:
            if t[:1] != node[:1]:
                top[node[:1]].add(t[:1])
    for targets in list(top.values()):
        for t in targets:
            top.setdefault(t, set())
    return top


def cycles(edges) -> list[list]:
    found, state, stack = [], {}, []

    def visit(node) -> None:
        state[node] = "open"
        stack.append(node)
        for nxt in sorted(edges[node]):
            if state.get(nxt) == "open":
                found.append(stack[stack.index(nxt) :] + [nxt])
            elif nxt not in state:
                visit(nxt)
        stack.pop()
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node)
    return found


def main() -> int:
    sys.setrecursionlimit(10000)
    root = pathlib.Path(__file__).resolve().parent.parent
    dirs = [pathlib.Path(a) for a in sys.argv[1:]] or [
        root / "src",
        root / "crates" / "scale-governor-core" / "src",
    ]
    status = 0
    for src in dirs:
        files = graph(src)
        name = src.relative_to(root) if src.is_relative_to(root) else src
        for level, edges in (("top-level", top_level(files)), ("file-level", files)):
            found = cycles(edges)
            if found:
                status = 1
                for cycle in found:
                    shown = " -> ".join("::".join(m) or "crate" for m in cycle)
                    print(f"{name}: {level} module cycle: {shown}")
            else:
                count = sum(len(v) for v in edges.values())
                print(f"{name}: {len(edges)} {level} modules, {count} edges, no cycle")
    return status


if __name__ == "__main__":
    sys.exit(main())
