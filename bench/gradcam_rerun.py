"""What a widget change costs on the Playground with Grad-CAM on: the page's rerun (Grad-CAM served from its cache)
against computing Grad-CAM once more, which is what every rerun paid before the cache.

    python -m bench.gradcam_rerun [--images 2] [--repeats 5]

Drives the real page through Streamlit's AppTest: classify sample photos with EfficientNet-Lite0, switch
Grad-CAM on, then change top-k and the batch size; prints median seconds and the ratio.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

APP = str(Path(__file__).resolve().parent.parent / "app.py")
PHOTOS = ["chelsea", "coffee", "astronaut", "rocket"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", type=int, default=2, choices=range(1, len(PHOTOS) + 1))
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    os.environ.setdefault("IMGLAB_DATA_DIR", tempfile.mkdtemp(prefix="imglab-bench-"))
    os.environ.setdefault("IMGLAB_DEVICE", "cpu")

    import numpy as np
    from streamlit.testing.v1 import AppTest

    from core.data.builtin import builtin_image
    from core.services import explain
    from ui.state import get_engine

    at = AppTest.from_file(APP, default_timeout=600)
    at.run()
    at.multiselect(key="cls_samples").set_value(PHOTOS[:args.images])
    at.button(key="cls_run").click().run()
    start = time.perf_counter()
    at.toggle(key="cls_cam").set_value(True).run()
    first = time.perf_counter() - start
    assert not at.exception and not at.error, [e.value for e in at.error]

    reruns = []
    for i in range(args.repeats):
        start = time.perf_counter()
        at.slider(key="cls_topk").set_value(3 + i % 2).run()
        at.number_input(key="cls_batch").set_value(2 + i % 2).run()
        reruns.append((time.perf_counter() - start) / 2)

    engine = get_engine("auto")
    index = at.session_state["cls_result"].predictions[0].top[0].index
    pixels = [builtin_image(n).pixels for n in PHOTOS[:args.images]]
    uncached = []
    for _ in range(args.repeats):
        start = time.perf_counter()
        for img in pixels:
            explain(engine, "efficientnet_lite0", np.asarray(img), index)
        uncached.append(time.perf_counter() - start)

    rerun, recompute = statistics.median(reruns), statistics.median(uncached)
    print(f"{args.images} image(s), EfficientNet-Lite0 on {engine.device}")
    print(f"Grad-CAM switched on (computed):          {first:.2f} s")
    print(f"rerun after a top-k / batch change:       {rerun:.3f} s (median of {args.repeats})")
    print(f"Grad-CAM computed again (the old rerun):  {recompute:.3f} s (median of {args.repeats})")
    print(f"old rerun / cached rerun: at least {(recompute + rerun) / rerun:.1f}x")


if __name__ == "__main__":
    main()
