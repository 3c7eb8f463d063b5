"""`make bench`: run every benchmark module and print its report."""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))
    wanted = sys.argv[1:] or names
    for name in wanted:
        module = importlib.import_module(f"bench.{name}")
        if not hasattr(module, "run"):
            continue
        print(f"\n=== bench.{name}: {module.__doc__.strip().splitlines()[0] if module.__doc__ else ''}", flush=True)
        asyncio.run(module.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
