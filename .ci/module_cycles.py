#!/usr/bin/env python3
"""Issue 14: the library's files import each other in one direction.

Builds the graph of the library's modules from the source text and fails
on an import cycle. A module is a file of src/ (lib.rs is the root, not a
module), or a directory of src/ as one unit (sim/, sys/, fs/), except that
fs/real.rs, the seam implemented on the platform (sys/), is its own module
above the seam it implements. A module uses another when its code (comments,
strings and `#[cfg(test)] mod tests` left out) names `crate::other`,
`crate::{other, ...}` or a name the crate root re-exports from `other`
(`pub use other::Name` in lib.rs).

The graph is acyclic, and must stay so: every cycle fails, with no list of
tolerated edges. (The last back-edges, from the protocol's modules to
txfile.rs for the handle's shared state, went when that state moved to
handle.rs, below the protocol.)

    python3 .ci/module_cycles.py [src]     # prints the graph; exit 1 on a cycle
"""
import pathlib
import re
import sys

src = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else "src")


def modules():
    out = {}
    for p in sorted(src.iterdir()):
        if p.suffix == ".rs" and p.stem != "lib":
            out[p.stem] = [p]
        elif p.is_dir() and p.name != "bin":
            out[p.name] = sorted(f for f in p.rglob("*.rs") if f.name != "real.rs" or p.name != "fs")
    if (src / "fs" / "real.rs").exists():
        out["fs::real"] = [src / "fs" / "real.rs"]
    return out


def code(text):
    """The text without comments, string contents and unit-test modules."""
    text = re.sub(
        r"#\[cfg\((?:all\()?test[^\]]*\]\s*(?:(?://[^\n]*|#\[[^\]]*\])\s*)*mod \w+ \{.*",
        "",
        text,
        flags=re.S,
    )
    text = re.sub(r"//[^\n]*", "", text)
    return re.sub(r'"(?:\\.|[^"\\])*"', '""', text)


def root_exports():
    lib = code((src / "lib.rs").read_text())
    names = {}
    for module, items in re.findall(r"pub use (\w+)::\{?([\w, ]+)\}?;", lib):
        for item in items.split(","):
            names[item.strip()] = module
    return names


def uses(text, mods, root):
    found = set()
    for m in re.finditer(r"crate::(\{[^{}]*(?:\{[^{}]*\}[^{}]*)*\}|\w+(?:::\w+)?)", text):
        body = m.group(1)
        if body.startswith("{"):
            paths = [p.strip() for p in re.split(r",(?![^{]*\})", body[1:-1])]
        else:
            paths = [body]
        for path in paths:
            parts = re.findall(r"\w+", path)
            if not parts:
                continue
            two = "::".join(parts[:2])
            if two in mods:
                found.add(two)
            elif parts[0] in mods:
                found.add(parts[0])
            elif parts[0] in root:
                found.add(root[parts[0]])
    return found


def cycles(graph):
    """Strongly connected components with more than one module (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in sorted(graph[v]):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                out.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return out


def main():
    mods = modules()
    root = root_exports()
    graph = {m: set() for m in mods}
    for m, files in mods.items():
        for f in files:
            graph[m] |= uses(code(f.read_text()), mods, root) - {m}
    for m in sorted(graph):
        print(f"{m} -> {', '.join(sorted(graph[m])) or '-'}")
    found = cycles(graph)
    for component in found:
        edges = [f"{a} -> {b}" for a in component for b in sorted(graph[a]) if b in component]
        print(f"module_cycles: import cycle among {', '.join(component)}: {'; '.join(edges)}", file=sys.stderr)
    print(f"module_cycles: {len(graph)} modules; acyclic: {'yes' if not found else 'NO'}")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
