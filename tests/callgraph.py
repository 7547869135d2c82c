#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The call graph of a program's C files, from its objects' own symbols.

    tests/callgraph.py OBJECT...

A file is named by its object's path below the objects' common directory,
without ".o" (build/dm/log.o and build/log.o are "dm/log" and "log").
For each object, `nm` gives the functions and data it defines (T, D, B, R)
and the symbols it uses but does not define (U).  A use in a.o of a symbol
that b.o defines is an edge a -> b.  Prints every edge, then every cycle
(a strongly connected set of two or more files, with the edges inside it),
and exits 1 if there is a cycle, 0 if the calls run one way.
"""
import os
import subprocess
import sys


def symbols(obj):
    """(defined, undefined) global symbol names of one object file."""
    out = subprocess.run(["nm", "--defined-only", "-g", obj], check=True,
                         capture_output=True, text=True).stdout
    defined = {line.split()[-1] for line in out.splitlines() if line.strip()}
    out = subprocess.run(["nm", "--undefined-only", "-g", obj], check=True,
                         capture_output=True, text=True).stdout
    undefined = {line.split()[-1] for line in out.splitlines() if line.strip()}
    return defined, undefined


def graph(objects):
    """{file: {file it calls: [symbols]}} over the given objects."""
    top = os.path.commonpath([os.path.dirname(os.path.abspath(o)) for o in objects])
    name = {o: os.path.splitext(os.path.relpath(os.path.abspath(o), top))[0] for o in objects}
    syms = {o: symbols(o) for o in objects}
    owner = {}
    for o, (defined, _) in syms.items():
        for s in defined:
            owner[s] = name[o]
    edges = {name[o]: {} for o in objects}
    for o, (_, undefined) in syms.items():
        for s in sorted(undefined):
            if s in owner and owner[s] != name[o]:
                edges[name[o]].setdefault(owner[s], []).append(s)
    return edges


def cycles(edges):
    """Strongly connected components of more than one node (Tarjan)."""
    index, low, stack, on, out = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on.add(v)
        for w in edges.get(v, {}):
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
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(edges):
        if v not in index:
            visit(v)
    return out


def main(argv):
    if len(argv) < 2:
        print(__doc__.strip(), file=sys.stderr)
        return 2
    edges = graph(argv[1:])
    for a in sorted(edges):
        for b in sorted(edges[a]):
            print("%s -> %s: %s" % (a, b, " ".join(edges[a][b])))
    found = cycles(edges)
    for comp in found:
        inside = ["%s -> %s" % (a, b) for a in comp for b in edges[a] if b in comp]
        print("cycle: %s (%s)" % (" ".join(comp), "; ".join(inside)))
    if not found:
        print("no cycle")
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
