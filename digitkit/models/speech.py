"""A recurrent speech recognizer: an optional conv front end over log-mel frames, a (bi)LSTM or GRU, and a CTC
head over word tokens (token 0 is CTC's blank), so one model transcribes single words and strings of words."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class SpeechConfig:
    n_mels: int = 40
    num_tokens: int = 11  # blank + vocabulary
    conv_channels: int = 96  # 0 = no conv front end
    stride: int = 4  # feature frames per RNN step: 2 (20 ms) or 4 (40 ms: 2.6x faster to train, and more accurate on FSDD)
    rnn: str = "lstm"  # lstm | gru
    hidden: int = 128
    layers: int = 2
    bidirectional: bool = True
    dropout: float = 0.15


def frame_stride(config: SpeechConfig) -> int:
    """Input feature frames per output frame (a function of the config, so exported models have it too)."""
    return config.stride if config.conv_channels else 1


class SpeechRecognizer(nn.Module):
    def __init__(self, config: SpeechConfig):
        super().__init__()
        if config.rnn not in ("lstm", "gru"):
            raise ValueError(f"rnn must be lstm or gru, not {config.rnn!r}")
        self.config = config
        width = config.n_mels
        self.front: nn.Module = nn.Identity()
        if config.conv_channels and config.stride not in (2, 4):
            raise ValueError(f"stride must be 2 or 4, not {config.stride}")
        if config.conv_channels:
            # strided convs cut the frame rate (10 ms -> 20 or 40 ms): the recurrent layers, the slow part on a
            # CPU, then run over a half or a quarter of the steps
            self.front = nn.Sequential(
                nn.Conv1d(config.n_mels, config.conv_channels, 5, stride=2, padding=2, bias=False),
                nn.BatchNorm1d(config.conv_channels),
                nn.ReLU(inplace=True),
                nn.Conv1d(config.conv_channels, config.conv_channels, 3, stride=config.stride // 2, padding=1, bias=False),
                nn.BatchNorm1d(config.conv_channels),
                nn.ReLU(inplace=True),
            )
            width = config.conv_channels
        rnn_cls = nn.LSTM if config.rnn == "lstm" else nn.GRU
        self.rnn = rnn_cls(
            width, config.hidden, num_layers=config.layers, batch_first=True, bidirectional=config.bidirectional,
            dropout=config.dropout if config.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.head = nn.Linear(config.hidden * (2 if config.bidirectional else 1), config.num_tokens)

    @property
    def frame_stride(self) -> int:
        return frame_stride(self.config)

    def output_lengths(self, lengths: torch.Tensor) -> torch.Tensor:
        for _ in range(self.frame_stride // 2):  # each stride-2 conv (padding k//2) gives ceil(n / 2)
            lengths = (lengths + 1) // 2
        return lengths

    def forward(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """[B, frames, n_mels] -> (log-probabilities [B, frames', tokens], frames' per item)."""
        x = self.front(feats.transpose(1, 2)).transpose(1, 2)
        out_lengths = self.output_lengths(lengths).clamp(min=1, max=x.shape[1])
        if self.training and x.device.type == "cpu":
            y = self.recurrent_dense(x, out_lengths)
        else:
            packed = nn.utils.rnn.pack_padded_sequence(x, out_lengths.cpu(), batch_first=True, enforce_sorted=False)
            y, _ = self.rnn(packed)
            y, _ = nn.utils.rnn.pad_packed_sequence(y, batch_first=True, total_length=x.shape[1])
        return self.head(self.dropout(y)).log_softmax(-1), out_lengths

    def recurrent_dense(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """What `self.rnn` gives on the packed batch, computed on the padded one: a CPU trains through this, since
        PyTorch's CPU backward of a packed LSTM is about 4x slower than of a padded one. Each direction of
        each layer runs alone, the backward one on every sequence reversed within its own length, so that padding
        comes after the words in both directions and no valid step sees it. Padded steps come out zero, as from
        `pad_packed_sequence`."""
        rnn = self.rnn
        steps = torch.arange(x.shape[1], device=x.device)[None, :]
        last = (lengths.to(x.device) - 1)[:, None]
        reverse = torch.where(steps <= last, last - steps, steps)[:, :, None]  # its own inverse
        names = ("weight_ih", "weight_hh", "bias_ih", "bias_hh")[: 4 if rnn.bias else 2]
        y = x
        for layer in range(rnn.num_layers):
            outputs = []
            for suffix in ("", "_reverse") if rnn.bidirectional else ("",):
                weights = [getattr(rnn, f"{name}_l{layer}{suffix}") for name in names]
                seq = y.gather(1, reverse.expand(-1, -1, y.shape[2])) if suffix else y
                h0 = seq.new_zeros(1, seq.shape[0], rnn.hidden_size)
                if isinstance(rnn, nn.LSTM):
                    out = torch.lstm(seq, (h0, h0), weights, rnn.bias, 1, 0.0, True, False, True)[0]
                else:
                    out = torch.gru(seq, h0, weights, rnn.bias, 1, 0.0, True, False, True)[0]
                outputs.append(out.gather(1, reverse.expand(-1, -1, out.shape[2])) if suffix else out)
            y = torch.cat(outputs, 2)
            if layer < rnn.num_layers - 1 and rnn.dropout:
                y = nn.functional.dropout(y, rnn.dropout, True)
        return y.masked_fill((steps > last)[:, :, None], 0.0)
