"""TSM and TSN for the study: a ResNet (torchvision's BasicBlock layout, any width and depth) on every frame.
``tsm`` adds TSM's residual shift: in each block's residual branch 1/8 of the channels come from the next
frame and 1/8 from the previous one (zeros at the clip ends); ``tsn`` has no shift, so it is blind to frame
order. The per-frame features are averaged over time."""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from timm.layers import DropPath
from torch import nn
from torchvision.models.resnet import conv1x1, conv3x3

from vast.errors import ConfigError
from vast.models.peer_entry import DEFAULT_CLIP, check_clip, int_tuple, peer_cfg, register_peer


def temporal_shift(x: torch.Tensor, frames: int, shift_div: int = 8) -> torch.Tensor:
    """TSM's shift on frame-major ``(B * frames, C, H, W)``: channels ``[0, C/d)`` of frame t are taken
    from frame t + 1, channels ``[C/d, 2C/d)`` from frame t - 1 (zeros where there is no such frame),
    the rest stay; ``d = shift_div``."""
    clips = x.unflatten(0, (-1, frames))  # (B, T, C, H, W)
    fold = clips.shape[2] // shift_div
    future = F.pad(clips[:, 1:, :fold], (0, 0, 0, 0, 0, 0, 0, 1))  # pad spec: W, H, C, then T
    past = F.pad(clips[:, :-1, fold : 2 * fold], (0, 0, 0, 0, 0, 0, 1, 0))
    return torch.cat((future, past, clips[:, :, 2 * fold :]), dim=2).flatten(0, 1)


class FrameBlock(nn.Module):
    """torchvision's ``BasicBlock`` (same layers and names) whose residual branch can see a temporal shift
    of its input (TSM's residual shift; the identity path keeps the unshifted input)."""

    def __init__(self, inplanes: int, planes: int, stride: int, shift_div: int, drop_path: float) -> None:
        super().__init__()
        self.conv1 = conv3x3(inplanes, planes, stride)
        self.bn1 = nn.BatchNorm2d(planes)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = conv3x3(planes, planes)
        self.bn2 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or inplanes != planes:
            self.downsample = nn.Sequential(conv1x1(inplanes, planes, stride), nn.BatchNorm2d(planes))
        self.shift_div = shift_div
        self.drop_path = DropPath(drop_path) if drop_path > 0 else nn.Identity()

    def forward(self, x: torch.Tensor, frames: int) -> torch.Tensor:
        identity = x if self.downsample is None else self.downsample(x)
        out = temporal_shift(x, frames, self.shift_div) if self.shift_div else x
        out = self.relu(self.bn1(self.conv1(out)))
        out = self.bn2(self.conv2(out))
        return self.relu(identity + self.drop_path(out))


class FrameResNet(nn.Module):
    """A ResNet of ``FrameBlock`` s applied to every frame, features averaged over time, then classified.

    Stage widths ``width * 2**i``, ``depths[i]`` blocks each, torchvision's stem (7x7 conv stride 2,
    3x3 max pool stride 2) and layer names, so ``width=64, depths=(2, 2, 2, 2)`` has ResNet-18's
    parameters. The head is linear, so averaging features equals averaging per-frame logits (TSN's
    consensus) whenever ``drop_rate`` is 0. ``shift_div > 0``: TSM's residual shift of 2 / shift_div
    of the channels in every block; 0: none (TSN).
    """

    def __init__(
        self,
        num_classes: int = 400,
        width: int = 64,
        depths: Sequence[int] = (2, 2, 2, 2),
        shift_div: int = 0,
        drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
    ) -> None:
        super().__init__()
        self.shift_div = shift_div
        self.conv1 = nn.Conv2d(3, width, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        total = sum(depths)
        rates = [drop_path_rate * i / max(total - 1, 1) for i in range(total)]  # grows linearly with depth
        self.stage_names = [f"layer{i + 1}" for i in range(len(depths))]
        for i, depth in enumerate(depths):
            start = sum(depths[:i])
            stage = self._stage(
                width * 2 ** max(i - 1, 0), width * 2**i, i > 0, shift_div, rates[start : start + depth]
            )
            self.add_module(self.stage_names[i], stage)
        self.num_features = width * 2 ** (len(depths) - 1)
        self.head_drop = nn.Dropout(drop_rate)
        self.fc = nn.Linear(self.num_features, num_classes)
        self._init_weights()
        self.pretrained_cfg = peer_cfg(num_classes, DEFAULT_CLIP)

    @staticmethod
    def _stage(inplanes: int, planes: int, downsample: bool, shift_div: int, rates: list[float]) -> nn.Sequential:
        """``len(rates)`` blocks; the first one halves the resolution if ``downsample``."""
        blocks = [
            FrameBlock(inplanes if j == 0 else planes, planes, 2 if downsample and j == 0 else 1, shift_div, rate)
            for j, rate in enumerate(rates)
        ]
        return nn.Sequential(*blocks)

    def _init_weights(self) -> None:  # torchvision's ResNet initialisation
        for module in self.modules():
            if isinstance(module, nn.Conv2d):
                nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(module, nn.BatchNorm2d):
                nn.init.ones_(module.weight)
                nn.init.zeros_(module.bias)

    def check_input(self, x: torch.Tensor) -> None:
        check_clip(x, "tsm" if self.shift_div else "tsn")

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """``(B, C, T, H, W)`` clips to ``(B, T, num_features)`` per-frame features."""
        self.check_input(x)
        batch, frames = x.shape[0], x.shape[2]
        x = x.transpose(1, 2).flatten(0, 1)  # frame-major (B * T, C, H, W)
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        for name in self.stage_names:
            for block in getattr(self, name):
                x = block(x, frames)
        return x.mean(dim=(2, 3)).unflatten(0, (batch, frames))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.head_drop(self.forward_features(x).mean(dim=1)))


def _check_resnet(name: str, width: int, depths: tuple[int, ...]) -> None:
    if width < 1 or not depths or min(depths) < 1:
        raise ConfigError(f"{name}: width and every depth must be positive; got width={width}, depths={depths}")


@register_peer
def tsm(
    *,
    num_classes: int = 400,
    width: int = 16,
    depths: Sequence[int] = (2, 2, 2, 2),
    shift_div: int = 8,
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
) -> FrameResNet:
    """TSM (Lin, Gan, Han): a ResNet of ``width`` on every frame with the residual temporal shift of
    1 / ``shift_div`` of the channels forward and as many backward in every block; features averaged."""
    depths = int_tuple(depths, "depths")
    _check_resnet("tsm", width, depths)
    if shift_div < 2 or width < shift_div:
        raise ConfigError(f"tsm: shift_div must be >= 2 and <= width (a whole channel shifted); got {shift_div}")
    return FrameResNet(num_classes, width, depths, shift_div, drop_rate, drop_path_rate)


@register_peer
def tsn(
    *,
    num_classes: int = 400,
    width: int = 16,
    depths: Sequence[int] = (2, 2, 2, 2),
    drop_rate: float = 0.0,
    drop_path_rate: float = 0.0,
) -> FrameResNet:
    """TSN (Wang et al.): the ResNet of ``tsm`` without any shift; frames averaged, order-blind."""
    depths = int_tuple(depths, "depths")
    _check_resnet("tsn", width, depths)
    return FrameResNet(num_classes, width, depths, 0, drop_rate, drop_path_rate)
