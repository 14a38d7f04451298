"""The student networks of the dataset-distillation literature (also used as the guidance classifier).

ConvNet-D (Gidaris & Komodakis; the DC/DM/MTT/IGD benchmarks): D blocks of conv3x3(width) ->
instance norm -> ReLU -> avg-pool 2, then a linear layer. ResNet-AP-10 (IDC, Minimax, IGD): a
ResNet-10 (four stages of one basic block) whose stride-2 downsampling is average pooling, with
instance norm.
"""

from __future__ import annotations

import torch
from torch import nn

from inversa.errors import UserError


def _norm(kind: str, c: int) -> nn.Module:
    if kind == "instance":  # GroupNorm with one group per channel = instance norm with affine parameters
        return nn.GroupNorm(c, c, affine=True)
    if kind == "batch":
        return nn.BatchNorm2d(c)
    raise UserError(f"norm {kind!r} is not supported; accepted: instance, batch")


class ConvNet(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 128, depth: int = 3,
                 size: int = 32, norm: str = "instance"):
        super().__init__()
        layers, c = [], in_channels
        for _ in range(depth):
            layers += [nn.Conv2d(c, width, 3, padding=1), _norm(norm, width), nn.ReLU(inplace=True), nn.AvgPool2d(2)]
            c, size = width, size // 2
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * size * size, num_classes)

    def forward(self, x):
        return self.classifier(self.features(x).flatten(1))


class _Block(nn.Module):
    def __init__(self, cin: int, cout: int, stride: int, norm: str):
        super().__init__()
        self.pool = nn.AvgPool2d(2) if stride == 2 else nn.Identity()
        self.conv1, self.n1 = nn.Conv2d(cin, cout, 3, padding=1, bias=False), _norm(norm, cout)
        self.conv2, self.n2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False), _norm(norm, cout)
        self.short = (nn.Sequential(nn.Conv2d(cin, cout, 1, bias=False), _norm(norm, cout))
                      if cin != cout else nn.Identity())

    def forward(self, x):
        x = self.pool(x)
        h = torch.relu(self.n1(self.conv1(x)))
        return torch.relu(self.n2(self.conv2(h)) + self.short(x))


class ResNetAP10(nn.Module):
    def __init__(self, in_channels: int = 1, num_classes: int = 10, width: int = 64, norm: str = "instance"):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(in_channels, width, 3, padding=1, bias=False), _norm(norm, width), nn.ReLU(inplace=True))
        chans = [width, 2 * width, 4 * width, 8 * width]
        blocks, c = [], width
        for i, w in enumerate(chans):
            blocks.append(_Block(c, w, 1 if i == 0 else 2, norm))
            c = w
        self.blocks = nn.Sequential(*blocks)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        return self.fc(self.blocks(self.stem(x)).mean((2, 3)))


ARCHS = ("convnet", "resnet_ap10")


def make_net(arch: str, *, in_channels: int = 1, num_classes: int = 10, size: int = 32, **kw) -> nn.Module:
    if arch == "convnet":
        return ConvNet(in_channels, num_classes, size=size, **kw)
    if arch == "resnet_ap10":
        return ResNetAP10(in_channels, num_classes, **kw)
    raise UserError(f"architecture {arch!r} is not known; accepted: {', '.join(ARCHS)}")
