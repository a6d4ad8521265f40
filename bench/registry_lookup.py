"""Model lookups with many stored checkpoints: get_spec now vs the folder sync every lookup used to run.

    python -m bench.registry_lookup [--checkpoints 300]

Stores N small checkpoints (copies of one SmallCNN state, each with its manifest) in a temporary data folder,
then times, in one run: get_spec of a known checkpoint (a dictionary lookup since issue 14), the folder sync
that get_spec ran on every call before (one listing of the folder and its manifests), and list_models (which
still syncs, so a listing shows what another process stored). Prints the ratio.
"""
from __future__ import annotations

import argparse
import json
import os
import tempfile
from pathlib import Path

from bench.compare_queries import best_of


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoints", type=int, default=300)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["IMGLAB_DATA_DIR"] = tmp
        from safetensors.torch import save

        from core.config import get_settings
        from core.models import checkpoints, registry

        get_settings.cache_clear()
        module, _ = registry.create("small_cnn_digits", weights="random")
        checkpoints.import_checkpoint(save(module.state_dict()), "seed.safetensors", "small_cnn_digits", "bench-0000")
        folder = Path(tmp) / "checkpoints"
        data, manifest = (folder / "bench-0000.safetensors").read_bytes(), json.loads((folder / "bench-0000.json").read_text())
        for i in range(1, args.checkpoints):
            name = f"bench-{i:04d}"
            (folder / f"{name}.safetensors").write_bytes(data)
            (folder / f"{name}.json").write_text(json.dumps({**manifest, "name": name}))
        registry.list_models()  # registers them all
        assert registry.get_spec(f"bench-{args.checkpoints - 1:04d}").base == "small_cnn_digits"
        lookup = best_of(lambda: registry.get_spec("bench-0150"), 200)
        sync = best_of(checkpoints.sync, 20)
        listing = best_of(registry.list_models, 20)
    print(f"{args.checkpoints} checkpoints stored")
    print(f"get_spec (now):                  {lookup * 1e6:9.1f} µs")
    print(f"folder sync (each lookup before): {sync * 1e3:9.2f} ms")
    print(f"list_models (syncs):             {listing * 1e3:9.2f} ms")
    print(f"a lookup is {(sync + lookup) / lookup:,.0f}x faster than before (sync + lookup)")


if __name__ == "__main__":
    main()
