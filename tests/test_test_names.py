"""The test suite's own layout: pytest imports test files by their base name (the test folders are not packages),
so two test files with one name in different folders fail collection for whichever comes second."""

from collections import defaultdict
from pathlib import Path


def test_no_two_test_files_share_a_name_outside_packages():
    tests = Path(__file__).parent
    by_name = defaultdict(list)
    for path in tests.rglob("test_*.py"):
        if not (path.parent / "__init__.py").exists():
            by_name[path.name].append(str(path.relative_to(tests)))
    assert {name: paths for name, paths in by_name.items() if len(paths) > 1} == {}
