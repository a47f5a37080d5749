"""The dependency graph of jobs: parents must exist and edges never close a cycle.

A dependent job runs once every one of its parents has succeeded since its own last trigger. Which
parents have is the child's *progress*, kept with the child's record in the store (Chronos keeps its
edge counters in memory only and loses them on failover). This module holds the edges and the rules;
the planner owns the records.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable


class Graph:
    """Edges parent -> child between job names."""

    def __init__(self) -> None:
        self.parents: dict[str, tuple[str, ...]] = {}
        self.children: dict[str, set[str]] = {}

    def problems(self, child: str, parents: Iterable[str], exists: Callable[[str], bool]) -> list[str]:
        """Why ``child`` cannot have ``parents`` (missing parents, itself, a cycle); [] when it can."""
        errors = []
        parents = list(parents)
        for parent in parents:
            if parent == child:
                errors.append(f"parents: job '{child}' cannot depend on itself")
            elif not exists(parent):
                errors.append(f"parents: parent '{parent}' does not exist")
        below = self.descendants(child)
        for parent in parents:
            if parent in below:
                errors.append(f"parents: '{parent}' depends on '{child}', so '{child}' cannot depend on it "
                              f"(that would be a cycle)")
        return errors

    def descendants(self, name: str) -> set[str]:
        seen: set[str] = set()
        stack = [name]
        while stack:
            for child in self.children.get(stack.pop(), ()):
                if child not in seen:
                    seen.add(child)
                    stack.append(child)
        return seen

    def set_parents(self, child: str, parents: Iterable[str] | None) -> None:
        """Give ``child`` these parents (None or empty: it has none)."""
        for parent in self.parents.pop(child, ()):
            kids = self.children.get(parent)
            if kids is not None:
                kids.discard(child)
                if not kids:
                    del self.children[parent]
        parents = tuple(parents or ())
        if parents:
            self.parents[child] = parents
            for parent in parents:
                self.children.setdefault(parent, set()).add(child)

    def remove(self, name: str) -> None:
        """Forget a job's own edges to its parents (its children are the caller's to re-parent)."""
        self.set_parents(name, None)

    def children_of(self, name: str) -> list[str]:
        return sorted(self.children.get(name, ()))

    def links(self) -> list[tuple[str, str]]:
        return sorted((parent, child) for child, parents in self.parents.items() for parent in parents)


def ready(progress: set[str], parents: Iterable[str]) -> bool:
    """Whether every parent has succeeded since the child's last trigger."""
    parents = tuple(parents)
    return bool(parents) and all(parent in progress for parent in parents)


def reparent(child_parents: Iterable[str], removed: str, removed_parents: Iterable[str] | None) -> list[str]:
    """A child's parents once ``removed`` is deleted: its place goes to its own parents (Chronos)."""
    out = [p for p in child_parents if p != removed]
    for grandparent in removed_parents or ():
        if grandparent not in out:
            out.append(grandparent)
    return out


def csv(nodes: Iterable[tuple[str, str, str]], links: Iterable[tuple[str, str]]) -> str:
    """Chronos's ``/graph/csv``: ``node,<name>,<last state>,<current state>`` rows, then ``link`` rows."""
    rows = [f"node,{name},{last},{current}\n" for name, last, current in nodes]
    rows += [f"link,{parent},{child}\n" for parent, child in links]
    return "".join(rows)


_COLOURS = {"fresh": "white", "success": "palegreen", "failure": "salmon"}


def dot(nodes: Iterable[tuple[str, str, str]], links: Iterable[tuple[str, str]]) -> str:
    """The DAG in Graphviz DOT, each job labelled with its states and coloured by its last outcome."""
    ids: dict[str, int] = {}
    lines = ["digraph G {"]
    for index, (name, last, current) in enumerate(nodes, 1):
        ids[name] = index
        label = f"{name}\\n{last}, {current}".replace('"', '\\"')
        lines.append(f'  {index} [ label = "{label}" style = filled fillcolor = {_COLOURS.get(last, "white")} ];')
    for parent, child in links:
        if parent in ids and child in ids:
            lines.append(f"  {ids[parent]} -> {ids[child]};")
    lines.append("}")
    return "\n".join(lines) + "\n"
