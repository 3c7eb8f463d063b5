"""`make bench`: run every benchmark module and print its report."""

from __future__ import annotations

import asyncio
import importlib
import logging
import pkgutil
import sys
from pathlib import Path


def main() -> int:
    names = sorted(m.name for m in pkgutil.iter_modules([str(Path(__file__).parent)]) if not m.name.startswith("_"))
    wanted = sys.argv[1:] or names
    # The in-process upstream and clients log each request at INFO; the report is what matters here.
    for noisy in ("httpx", "httpx2", "mcp", "uvicorn", "uvicorn.access"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    for name in wanted:
        module = importlib.import_module(f"bench.{name}")
        if not hasattr(module, "run"):
            continue
        print(f"\n=== bench.{name}: {module.__doc__.strip().splitlines()[0] if module.__doc__ else ''}", flush=True)
        asyncio.run(module.run())
    return 0


if __name__ == "__main__":
    sys.exit(main())
