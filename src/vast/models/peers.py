"""Peers for the study: attention (Video Swin, MViTv2) and CNN (TSM, TSN) video classifiers.

Registered in vast's registry (not timm's), so the trainer builds them by name and options exactly as it
builds VAST: ``vast.create_model(name, num_classes=N, **options)``. Each takes ``(B, 3, T, H, W)`` and
returns ``(B, num_classes)`` logits, and every option is a named keyword of its entry point, so a record
``{name, options, num_classes}`` rebuilds the same architecture.

* ``video_swin``: torchvision's ``SwinTransformer3d`` (Video Swin), with small defaults that fit 8 x 32^2.
* ``mvit_v2``: torchvision's ``MViT`` with MViTv2's choices (pooling residual, relative positions,
  projection after attention), its block list generated from a few knobs; built for one clip size.
* ``tsm``: a ResNet (torchvision's BasicBlock layout, any width and depth) on every frame, with TSM's
  residual shift: in each block's residual branch 1/8 of the channels come from the next frame and 1/8
  from the previous one (zeros at the clip ends); the per-frame features are averaged over time.
* ``tsn``: the same network without any shift, so it is blind to frame order.

One module per family (:mod:`~vast.models.video_swin`, :mod:`~vast.models.mvit`,
:mod:`~vast.models.frame_resnet`), their shared options and checks in :mod:`vast.models.peer_entry`;
:func:`vast.models.peer_sizing.options_for_gmacs` sizes a peer to a compute budget.
"""

from vast.models.frame_resnet import FrameResNet, temporal_shift, tsm, tsn
from vast.models.mvit import MViTv2, mvit_block_settings, mvit_v2
from vast.models.peer_entry import peer_options
from vast.models.video_swin import VideoSwin, WindowAttention3d, video_swin, window_position_index

__all__ = [
    "STUDY_PEERS",
    "FrameResNet",
    "MViTv2",
    "VideoSwin",
    "WindowAttention3d",
    "mvit_block_settings",
    "mvit_v2",
    "peer_options",
    "temporal_shift",
    "tsm",
    "tsn",
    "video_swin",
    "window_position_index",
]

STUDY_PEERS = ("video_swin", "mvit_v2", "tsm", "tsn")
