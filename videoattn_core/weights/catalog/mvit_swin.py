"""MViT's and Video Swin's published checkpoints: torchvision's Kinetics-400 weights (``MViT_V1_B_Weights``,
``MViT_V2_S_Weights``, ``Swin3D_T/S/B_Weights``: url with the sha256 prefix in its name, the ``VideoClassification``
recipe, params, GFLOPS, acc@1/acc@5), PySlowFast's model zoo (MViT v1 and v2) and the official Video Swin releases
(GitHub). Neither official source publishes a hash."""

from __future__ import annotations

from .records import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    SLOWFAST_MEAN,
    SLOWFAST_STD,
    Recipe,
    WeightsEntry,
    hash_prefix,
    release,
)

_TV = "torchvision VideoClassification"
_SLOWFAST_ZOO = "https://github.com/facebookresearch/SlowFast/blob/main/MODEL_ZOO.md"
_SWIN_README = "https://github.com/SwinTransformer/Video-Swin-Transformer#results-and-models"

# torchvision's weights: VideoClassification on uint8, clips from torchvision's reference evaluation (VideoClips
# at frame_rate, clips_per_video of the weights' meta, UniformClipSampler)
_MVIT_TV = Recipe(16, 4, 256, 224, SLOWFAST_MEAN, SLOWFAST_STD, resampling="torchvision", clip_rule="torchvision",
                  clips=5, source=f"{_TV}(crop_size=224, resize_size=256, mean=0.45, std=0.225); clip_len=16 at "
                                  f"frame_rate=7.5, clips_per_video=5")
SWIN_TV = Recipe(32, 2, 256, 224, IMAGENET_MEAN, IMAGENET_STD, resampling="torchvision", clip_rule="torchvision",
                 clips=12, source=f"{_TV}(crop_size=224, resize_size=256, ImageNet mean/std); clip_len=32 at "
                                  f"frame_rate=15, clips_per_video=12")
# the official Video Swin: MMAction2 test pipelines (ImageNet mean/std × 255 on 0..255 pixels)
SWIN_OFFICIAL = Recipe(32, 2, 224, 224, IMAGENET_MEAN, IMAGENET_STD, resampling="mmaction", clip_rule="mmaction",
                       clips=4, crops=3,
                       source="Video-Swin-Transformer test_pipeline: SampleFrames(clip_len=32, frame_interval=2, "
                              "num_clips=4, test_mode=True), Resize(-1, 224), ThreeCrop(224), img_norm_cfg")
# SSv2 (swin_base_patch244_window1677_sthv2.py): frame_uniform makes SampleFrames ignore frame_interval and take
# the middle frame of each of clip_len equal segments (get_seq_frames in test mode), one clip × 3 crops
_SWIN_SSV2 = Recipe(32, None, 224, 224, IMAGENET_MEAN, IMAGENET_STD, resampling="mmaction", clip_rule="mmaction",
                    crops=3,
                    source="Video-Swin-Transformer configs/recognition/swin/swin_base_patch244_window1677_sthv2.py "
                           "test_pipeline: SampleFrames(clip_len=32, frame_interval=2, num_clips=1, "
                           "frame_uniform=True, test_mode=True) (frame_uniform: the middle frame of each of 32 equal "
                           "segments; frame_interval unused), Resize(-1, 224), ThreeCrop(224), img_norm_cfg")


def _slowfast_recipe(frames: int, rate: int, config: str) -> Recipe:
    # TEST.NUM_SPATIAL_CROPS 1: the short side is scaled to DATA.TRAIN_JITTER_SCALES[0] = 256 and the centre
    # TEST_CROP_SIZE = 224 is cropped (datasets/kinetics.py); DATA.USE_OFFSET_SAMPLING centres a single clip
    return Recipe(frames, rate, 256, 224, SLOWFAST_MEAN, SLOWFAST_STD, resampling="pyslowfast", clip_rule="slowfast",
                  clips=5, source=f"PySlowFast configs/{config} (TRAIN_JITTER_SCALES[0] 256, TEST_CROP_SIZE 224, "
                                  f"USE_OFFSET_SAMPLING, DATA.MEAN/STD; the papers' 5 clips × 1 crop)")


def _tv(preset: str, url: str, recipe: Recipe, metrics: tuple[float, float], params: int, gflops: float,
        size_mb: float, tag: str = "k400", protocol: str = "", notes: str = "") -> WeightsEntry:
    filename = url.rsplit("/", 1)[-1]
    prefix = hash_prefix(filename)
    return WeightsEntry(
        name=f"{preset}.torchvision_{tag}", preset=preset, source="torchvision", dataset="kinetics400", recipe=recipe,
        layout="torchvision", url=url, filename=filename, page="https://pytorch.org/vision/stable/models.html"
                                                               "#video-classification",
        metrics={"acc@1": metrics[0], "acc@5": metrics[1]}, metrics_protocol=protocol, num_params=params,
        gflops=gflops, size_mb=size_mb, hash_prefix=prefix, notes=notes)


_TV_MVIT_PROTOCOL = "torchvision, video-level: frame_rate=7.5, clips_per_video=5, clip_len=16"
_TV_SWIN_PROTOCOL = "torchvision, video-level: frame_rate=15, clips_per_video=12, clip_len=32"
#: torchvision's Swin3D meta (_ops) counts a 16-frame clip; its accuracy was measured on 32 frames
_TV_SWIN_GFLOPS = (". gflops is torchvision's figure (the weights' _ops) for a 16-frame clip; the 32 frames this "
                   "recipe reads cost about twice as much (the zoo counts the 32)")
_SWIN_PROTOCOL = "Video Swin Transformer README (4 temporal clips × 3 spatial crops)"
_SWIN_SSV2_PROTOCOL = ("Video Swin Transformer README (1 temporal clip × 3 spatial crops: num_clips=1 and ThreeCrop in "
                       "the sthv2 config's test_pipeline)")
_SF_PROTOCOL = "PySlowFast model zoo (5 temporal clips × 1 spatial crop)"
_MVITV2_PROTOCOL = _SF_PROTOCOL + "; the same rows, with GFLOPs × views and params, in projects/mvitv2/README.md"
_SWIN_RELEASE = "https://github.com/SwinTransformer/storage/releases/download/v1.0.4/"
_SF_URL = "https://dl.fbaipublicfiles.com/pyslowfast/model_zoo/"
_SWIN_LAYOUT = "official (SwinTransformer/Video-Swin-Transformer)"
_MVIT_LAYOUT = "official (PySlowFast MViT)"


def entries() -> list[WeightsEntry]:
    k400, k600, ssv2 = "kinetics400", "kinetics600", "ssv2"
    entries: list[WeightsEntry] = []
    # MViT
    entries += [
        _tv("mvit_v1_b", "https://download.pytorch.org/models/mvit_v1_b-dbeb1030.pth", _MVIT_TV, (78.477, 93.582),
            36610672, 70.599, 139.764, protocol=_TV_MVIT_PROTOCOL,
            notes="weights ported from the paper (pytorchvideo model zoo)"),
        release("mvit_v1_b", "official_k400", "https://drive.google.com/file/d/194gJinVejq6A1FmySNKQ8vAN5-FOY-QL/"
                 "view?usp=sharing", k400, _slowfast_recipe(16, 4, "Kinetics/MVIT_B_16x4_CONV.yaml"), (78.4, 93.5),
                 _SLOWFAST_ZOO, _SF_PROTOCOL, direct=False, filename="MVIT_B_16x4_CONV_K400.pyth",
                 layout=_MVIT_LAYOUT,
                 notes="hosted on Google Drive (no direct download); no hash published: a file placed by hand "
                       "cannot be verified"),
        release("mvit_v1_b_32x3", "official_k400", _SF_URL + "mvit/k400.pyth", k400,
                 _slowfast_recipe(32, 3, "Kinetics/MVIT_B_32x3_CONV.yaml"), (80.4, 94.8), _SLOWFAST_ZOO, _SF_PROTOCOL,
                 layout=_MVIT_LAYOUT),
        # MODEL_ZOO.md names the config Kinetics/MVIT_B_32x3_CONV_K600, a file SlowFast never had; the K600 model is
        # MVIT_B_32x3_CONV.yaml with MODEL.NUM_CLASSES 600 (the file's own comment: "400 # or 600 for K600")
        release("mvit_v1_b_32x3", "official_k600", _SF_URL + "mvit/k600.pyth", k600,
                 _slowfast_recipe(32, 3, "Kinetics/MVIT_B_32x3_CONV.yaml with MODEL.NUM_CLASSES 600"), (83.9, 96.5),
                 _SLOWFAST_ZOO, _SF_PROTOCOL, overrides={"num_classes": 600}, layout=_MVIT_LAYOUT,
                 notes="no hash or size is published for this release: the download cannot be verified. The model "
                       "zoo names its config Kinetics/MVIT_B_32x3_CONV_K600, which SlowFast does not contain: it is "
                       "Kinetics/MVIT_B_32x3_CONV.yaml, whose MODEL.NUM_CLASSES reads \"400 # or 600 for K600\""),
        _tv("mvit_v2_s", "https://download.pytorch.org/models/mvit_v2_s-ae3be167.pth", _MVIT_TV, (80.757, 94.665),
            34537744, 64.224, 131.884, protocol=_TV_MVIT_PROTOCOL,
            notes="weights ported from PySlowFast's MViTv2_S_16x4"),
        release("mvit_v2_s", "official_k400", _SF_URL + "mvitv2/pysf_video_models/MViTv2_S_16x4_k400_f302660347.pyth",
                 k400, _slowfast_recipe(16, 4, "Kinetics/MVITv2_S_16x4.yaml"), (81.0, 94.6), _SLOWFAST_ZOO,
                 _MVITV2_PROTOCOL, layout=_MVIT_LAYOUT),
        release("mvit_v2_b", "official_k400", _SF_URL + "mvitv2/pysf_video_models/MViTv2_B_32x3_k400_f304025456.pyth",
                 k400, _slowfast_recipe(32, 3, "Kinetics/MVITv2_B_32x3.yaml"), (82.9, 95.7), _SLOWFAST_ZOO,
                 _MVITV2_PROTOCOL, layout=_MVIT_LAYOUT),
    ]
    # Video Swin — torchvision's ports, then the official releases
    swin_tv = [("swin3d_t", "swin3d_t-7615ae03.pth", (77.715, 93.519), 28158070, 43.882, 121.543, "k400"),
               ("swin3d_s", "swin3d_s-da41c237.pth", (79.521, 94.158), 49816678, 82.841, 218.288, "k400"),
               ("swin3d_b", "swin3d_b_1k-24f7c7c6.pth", (79.427, 94.386), 88048984, 140.667, 364.134, "k400"),
               ("swin3d_b", "swin3d_b_22k-7c6ae6fa.pth", (81.643, 95.574), 88048984, 140.667, 364.134,
                "k400_in22k")]
    for preset, file, metrics, params, gflops, size, tag in swin_tv:
        entries.append(_tv(preset, "https://download.pytorch.org/models/" + file, SWIN_TV, metrics, params, gflops,
                           size, tag=tag, protocol=_TV_SWIN_PROTOCOL,
                           notes="weights ported from the paper" + (" (ImageNet-22K pretraining)" if "22k" in tag
                                                                     else "") + _TV_SWIN_GFLOPS))
    swin_official = [
        ("swin3d_t", "official_k400", "swin_tiny_patch244_window877_kinetics400_1k.pth", k400, (78.8, 93.6), {}),
        ("swin3d_s", "official_k400", "swin_small_patch244_window877_kinetics400_1k.pth", k400, (80.6, 94.5), {}),
        ("swin3d_b", "official_k400", "swin_base_patch244_window877_kinetics400_1k.pth", k400, (80.6, 94.6), {}),
        ("swin3d_b", "official_k400_in22k", "swin_base_patch244_window877_kinetics400_22k.pth", k400, (82.7, 95.5),
         {}),
        ("swin3d_b", "official_k600_in22k", "swin_base_patch244_window877_kinetics600_22k.pth", k600, (84.0, 96.5),
         {"num_classes": 600}),
        ("swin3d_b", "official_ssv2", "swin_base_patch244_window1677_sthv2.pth", ssv2, (69.6, 92.7),
         {"num_classes": 174, "window_size": (16, 7, 7)}),
    ]
    for preset, tag, file, dataset, metrics, overrides in swin_official:
        entries.append(release(preset, tag, _SWIN_RELEASE + file, dataset,
                                _SWIN_SSV2 if dataset == ssv2 else SWIN_OFFICIAL, metrics, _SWIN_README,
                                _SWIN_SSV2_PROTOCOL if dataset == ssv2 else _SWIN_PROTOCOL, overrides=overrides,
                                layout=_SWIN_LAYOUT))
    return entries
