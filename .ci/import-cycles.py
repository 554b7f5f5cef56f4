#!/usr/bin/env python3
"""Finds import circles between the source files of a crate.

An edge a.rs -> b.rs is any path in a.rs (a `use` line or a path in the code, comments left
out) that starts with `crate::`, `super::`, `self::` or the name of a child module and resolves
to an item of b.rs (the longest module prefix of the path that is a file). A module's `mod x;` declaration is not an
edge, and neither (unless `--strict`) is a path from a module into its own children: a `mod.rs`
that declares and re-exports its children is their facade, and a child may use what its parent
defines without forming a circle with it. Prints every cycle (as strongly connected components
of more than one file) and exits 1 if there is one.

    .ci/import-cycles.py src signaling/src
    .ci/import-cycles.py --strict --under src/server src   # parents and children count too,
                                                            # among the files under src/server
    .ci/import-cycles.py --ignore src/admin src             # leave a folder out of the check
"""
import os
import re
import sys


def module_files(root):
    """{module path tuple: file} for a crate rooted at `root` (lib.rs or main.rs = ())."""
    mods = {}
    for dirpath, _, files in os.walk(root):
        for f in files:
            if not f.endswith(".rs"):
                continue
            rel = os.path.relpath(os.path.join(dirpath, f), root)
            parts = rel[:-3].split(os.sep)
            if parts[-1] in ("mod", "lib", "main"):
                parts = parts[:-1]
            mods[tuple(parts)] = os.path.join(dirpath, f)
    return mods


def strip_comments(src):
    src = re.sub(r"/\*.*?\*/", "", src, flags=re.S)
    out = []
    for line in src.split("\n"):
        i = line.find("//")
        # Good enough: `//` inside a string literal of a path-bearing line is rare.
        out.append(line if i < 0 else line[:i])
    return "\n".join(out)


def expand(tree):
    """`a::{b, c::{d, e}}` -> ['a::b', 'a::c::d', 'a::c::e']."""
    tree = tree.strip()
    depth, start = 0, None
    for i, ch in enumerate(tree):
        if ch == "{":
            if depth == 0:
                start = i
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                prefix, inner, rest = tree[:start], tree[start + 1 : i], tree[i + 1 :]
                items, d, cur = [], 0, ""
                for c in inner:
                    if c == "," and d == 0:
                        items.append(cur)
                        cur = ""
                        continue
                    d += c == "{"
                    d -= c == "}"
                    cur += c
                items.append(cur)
                outs = []
                for it in items:
                    if it.strip():
                        outs += expand(prefix + it.strip() + rest)
                return outs
    return [tree]


def resolve(path, here, mods):
    """The module tuple a path names from module `here`, or None if it leaves the crate."""
    parts = [p.strip() for p in path.split("::") if p.strip()]
    parts = [re.split(r"\s+as\s+", p)[0] for p in parts]
    if not parts:
        return None
    if parts[0] == "crate":
        base, rest = [], parts[1:]
    elif parts[0] in ("super", "self"):
        base = list(here)
        rest = parts
        while rest and rest[0] in ("super", "self"):
            if rest[0] == "super":
                base = base[:-1]
            rest = rest[1:]
    elif tuple(here) + (parts[0],) in mods:
        # A path relative to a child module of this one (`use conn::X`, `session::run()`).
        base, rest = list(here), parts
    else:
        return None
    best = tuple(base)
    cur = list(base)
    for p in rest:
        cur.append(p)
        if tuple(cur) in mods:
            best = tuple(cur)
        else:
            break
    return best if best in mods else None


def strip_inline_modules(src):
    """Drops inline `mod x { ... }` blocks (in practice `#[cfg(test)] mod tests`): their
    `super::` is the file's own module, and tests are not part of the dependency graph."""
    out, i = [], 0
    for m in re.finditer(r"\bmod\s+\w+\s*\{", src):
        if m.start() < i:
            continue
        depth, j = 0, m.end() - 1
        while j < len(src):
            depth += src[j] == "{"
            depth -= src[j] == "}"
            if depth == 0:
                break
            j += 1
        out.append(src[i : m.start()])
        i = j + 1
    out.append(src[i:])
    return "".join(out)


def edges_of(mod, file, mods):
    src = strip_inline_modules(strip_comments(open(file, encoding="utf-8").read()))
    found = set()
    for m in re.finditer(r"\buse\s+([^;]+);", src):
        for p in expand(m.group(1)):
            t = resolve(p, mod, mods)
            if t is not None:
                found.add(t)
    for m in re.finditer(r"(?<![:\w])((?:[a-z_][a-z0-9_]*)(?:::[A-Za-z_][A-Za-z0-9_]*)+)", src):
        t = resolve(m.group(1), mod, mods)
        if t is not None:
            found.add(t)
    found.discard(mod)
    return found


def sccs(graph):
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in graph.get(v, ()):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            out.append(comp)

    sys.setrecursionlimit(10000)
    for v in graph:
        if v not in index:
            visit(v)
    return out


def main(args):
    strict = "--strict" in args
    under = None
    if "--under" in args:
        i = args.index("--under")
        under = os.path.normpath(args[i + 1])
        args = args[:i] + args[i + 2 :]
    ignored = []
    while "--ignore" in args:
        i = args.index("--ignore")
        ignored.append(os.path.normpath(args[i + 1]))
        args = args[:i] + args[i + 2 :]
    roots = [a for a in args if a != "--strict"] or ["src"]
    bad = False
    for root in roots:
        mods = module_files(root)
        graph = {m: edges_of(m, f, mods) for m, f in mods.items()}
        if not strict:
            graph = {m: {t for t in e if t[: len(m)] != m} for m, e in graph.items()}
        if under:
            keep = {m for m, f in mods.items() if os.path.normpath(f).startswith(under + os.sep) or os.path.normpath(f) == under}
            graph = {m: e & keep for m, e in graph.items() if m in keep}
        if ignored:
            gone = {m for m, f in mods.items() if any(os.path.normpath(f).startswith(d + os.sep) for d in ignored)}
            graph = {m: e - gone for m, e in graph.items() if m not in gone}
        n = sum(len(v) for v in graph.values())
        cycles = [c for c in sccs(graph) if len(c) > 1]
        for c in cycles:
            bad = True
            names = sorted(os.path.relpath(mods[m]) for m in c)
            print(f"import circle in {root}: " + " <-> ".join(names))
            for m in c:
                for t in sorted(graph[m] & set(c)):
                    print(f"    {os.path.relpath(mods[m])} -> {os.path.relpath(mods[t])}")
        print(f"{root}: {len(mods)} files, {n} edges, {len(cycles)} circles")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
