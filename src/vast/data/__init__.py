"""The video data layer: annotations -> decoding -> clip sampling -> transforms -> dataset.

Images (ImageNet class folders) are read as one-frame videos.

See ``docs/data.md`` for the annotation formats, the samplers and the broken-video policy.
"""

from vast.data.annotations import Annotations, VideoRecord, load_annotations, read_class_names
from vast.data.dataset import (
    BrokenVideo,
    BrokenVideoLog,
    VideoBatch,
    VideoDataset,
    collate_videos,
    seed_worker,
)
from vast.data.decoding import (
    BrokenVideoError,
    FrameFolderDecoder,
    ImageDecoder,
    PyAVDecoder,
    VideoDecoder,
    check_video,
    check_videos,
    open_video,
    read_image,
)
from vast.data.sampling import (
    ClipSampler,
    DenseSampler,
    MultiViewSampler,
    TimeDenseSampler,
    TimeTSNSampler,
    TSNSampler,
    build_sampler,
)
from vast.data.transforms import build_eval_transform, build_train_transform

__all__ = [
    "Annotations",
    "BrokenVideo",
    "BrokenVideoError",
    "BrokenVideoLog",
    "ClipSampler",
    "DenseSampler",
    "FrameFolderDecoder",
    "ImageDecoder",
    "MultiViewSampler",
    "PyAVDecoder",
    "TSNSampler",
    "TimeDenseSampler",
    "TimeTSNSampler",
    "VideoBatch",
    "VideoDataset",
    "VideoDecoder",
    "VideoRecord",
    "build_eval_transform",
    "build_sampler",
    "build_train_transform",
    "check_video",
    "check_videos",
    "collate_videos",
    "load_annotations",
    "open_video",
    "read_class_names",
    "read_image",
    "seed_worker",
]
