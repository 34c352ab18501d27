"""Users' own Hugging Face models against transformers: the four fine-tune-like repositories of
``../shared/reference/hub`` served as ``hf:ORG/NAME`` from a stand-in Hub on 127.0.0.1 (``tests/standin_hub.py``),
predicted at frame rates 1 and 4, each probability compared with the one transformers computed (``expected.json``);
then the same offline, from the cache alone. Prints the plan of one repository (``predict --dry-run --json``) first.

    .venv/bin/python bench/hub_parity.py [--org someone]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

HUB = Path(os.environ.get("VIDEOATTN_REFERENCE", ROOT.parent / "shared" / "reference")) / "hub"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--org", default="someone", help="the organisation the repositories are served under")
    args = parser.parse_args()
    os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="hub_parity_")
    for name in ("HF_HUB_CACHE", "HF_TOKEN", "HF_HUB_OFFLINE"):
        os.environ.pop(name, None)

    import videoattn_core as vac
    from videoattn_core.weights import hub
    from videoattn_core.run import runtime
    from standin_hub import StandInHub

    expected = json.loads((HUB / "expected.json").read_text())["expected"]
    clip = HUB / "clip.mp4"
    worst_all = 0.0
    with StandInHub() as server:
        os.environ["HF_ENDPOINT"] = server.url
        for repo in expected:
            server.add(f"{args.org}/{repo}", HUB / "repos" / repo)
        first = f"hf:{args.org}/{next(iter(expected))}"
        print(f"$ predict {first} --clip {clip.name} --dry-run --json")
        print(json.dumps(runtime.plan_run(first, clip).to_dict(), indent=1))
        for offline in (False, True):
            if offline:
                server.httpd.shutdown()
                os.environ["HF_HUB_OFFLINE"] = "1"
                hub._open.cache_clear()
            print(f"\n{'offline, from the cache' if offline else 'from the stand-in Hub'}: max |ours − transformers|")
            for repo, rates in expected.items():
                row = []
                for rate_key, want in rates.items():
                    result = vac.predict(f"hf:{args.org}/{repo}", clip, sampling_rate=int(rate_key[4:]), top_k=1000)
                    ours = {p["label"]: p["probability"] for p in result.predictions}
                    worst = max(abs(ours[k] - v) for k, v in want["scores"].items())
                    same_frames = result.clip["sampled_indices"] == want["frame_indices"]
                    worst_all = max(worst_all, worst)
                    row.append(f"{rate_key} {worst:.2e}{'' if same_frames else ' (other frames!)'}")
                print(f"  {repo:30s} {result.scoring:8s} " + "  ".join(row))
    print(f"\nworst of all: {worst_all:.2e} ({'within' if worst_all <= 1e-4 else 'NOT within'} 1e-4)")
    return 0 if worst_all <= 1e-4 else 1


if __name__ == "__main__":
    sys.exit(main())
