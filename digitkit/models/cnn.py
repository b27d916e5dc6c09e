"""The seed's CNN family: conv blocks (conv-BN-ReLU, max-pool), 25 % dropout, a dense layer, 50 % dropout."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class CNNConfig:
    in_channels: int = 1
    num_classes: int = 10
    image_size: int = 28
    filters: tuple[int, ...] = (32, 64, 128)  # one block per entry; each block halves the resolution
    convs_per_block: int = 1
    dense: int = 128
    dropout_conv: float = 0.25
    dropout_dense: float = 0.5


class CNN(nn.Module):
    def __init__(self, config: CNNConfig):
        super().__init__()
        self.config = config
        layers: list[nn.Module] = []
        channels, size = config.in_channels, config.image_size
        for width in config.filters:
            for _ in range(config.convs_per_block):
                layers += [nn.Conv2d(channels, width, 3, padding=1, bias=False), nn.BatchNorm2d(width), nn.ReLU(inplace=True)]
                channels = width
            layers.append(nn.MaxPool2d(2))
            size //= 2
        if size < 1:
            raise ValueError(f"{len(config.filters)} blocks shrink a {config.image_size}px input to nothing")
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Dropout(config.dropout_conv),
            nn.Flatten(),
            nn.Linear(channels * size * size, config.dense),
            nn.ReLU(inplace=True),
            nn.Dropout(config.dropout_dense),
            nn.Linear(config.dense, config.num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x))
