"""The apps' modules never import each other in a cycle (imports inside functions count).

lint-imports' `acyclic_siblings` contract checks the same between sibling packages; this test
also catches a package `__init__` and one of its own modules importing each other, which that
contract, squashing each package into one node, cannot see.
"""

import grimp

APPS = ("core", "teleop", "evaluation")


def test_no_module_of_the_apps_imports_itself_through_others():
    graph = grimp.build_graph(*APPS, "proving_ground")
    modules = {m for m in graph.modules if m.split(".")[0] in APPS}
    cycles = set()
    for importer in modules:
        for imported in graph.find_modules_directly_imported_by(importer):
            if imported not in modules or imported == importer:
                continue
            back = graph.find_shortest_chain(importer=imported, imported=importer)
            if back is not None:
                cycles.add(" -> ".join((importer, *back)))
    assert not cycles, "Import cycles:\n" + "\n".join(sorted(cycles))
