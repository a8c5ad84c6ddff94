"""The sequence networks (PyTorch, CPU): GRU, LSTM, temporal CNN and a small transformer.

All four share the event embedding (code embedding, plus the standardised value times a per-code
value embedding, plus a linear map of the five token numbers) and
two heads: ``next_code`` (self-supervised pretraining: predict each next event's code from the
events before it) and ``risk`` (fine-tuning: one logit from the last position's state and the mean
state over real events). Every body is causal: position ``i`` sees events ``<= i`` only, which is
what makes next-event pretraining honest and keeps the last state a summary of the whole history.
The modules use only operations the ONNX exporter maps to standard operators (the transformer's
attention is written out with an additive mask rather than calling fused kernels).
"""

from __future__ import annotations

import math
from typing import cast

import torch
from torch import nn

from predictions.ml.timeline.tokens import N_CONTINUOUS, PAD

KINDS = ("gru", "lstm", "tcn", "transformer")
MASK_FILL = -1e4  # additive attention mask; finite so a fully masked row cannot produce NaN


class CausalConvBlock(nn.Module):
    """Dilated causal 1-D convolution with a residual connection."""

    def __init__(self, dim: int, kernel: int, dilation: int, dropout: float) -> None:
        super().__init__()
        self.pad = (kernel - 1) * dilation
        self.conv = nn.Conv1d(dim, dim, kernel, dilation=dilation)
        self.norm = nn.LayerNorm(dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:  # (B, L, D)
        y = nn.functional.pad(x.transpose(1, 2), (self.pad, 0))
        y = torch.relu(self.conv(y)).transpose(1, 2)
        return self.norm(x + self.dropout(y))


class CausalSelfAttention(nn.Module):
    """Multi-head self-attention with a causal and padding mask, written out for export."""

    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        batch, length, dim = x.shape
        head_dim = dim // self.heads
        q, k, v = self.qkv(x).reshape(batch, length, 3, self.heads, head_dim).permute(2, 0, 3, 1, 4)
        scores = q @ k.transpose(-1, -2) / math.sqrt(head_dim) + bias  # (B, H, L, L)
        weights = self.dropout(torch.softmax(scores, dim=-1))
        return self.out((weights @ v).transpose(1, 2).reshape(batch, length, dim))


class TransformerBlock(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attention = CausalSelfAttention(dim, heads, dropout)
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(
            nn.Linear(dim, 2 * dim), nn.GELU(), nn.Dropout(dropout), nn.Linear(2 * dim, dim)
        )

    def forward(self, x: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        x = x + self.attention(self.norm1(x), bias)
        return x + self.mlp(self.norm2(x))


class TimelineNet(nn.Module):
    """Event embedding -> causal body -> (next-code logits per position, risk logit)."""

    def __init__(
        self,
        kind: str,
        vocabulary_size: int,
        *,
        max_len: int,
        dim: int = 64,
        dropout: float = 0.1,
        layers: int = 2,
        heads: int = 4,
    ) -> None:
        super().__init__()
        if kind not in KINDS:
            raise ValueError(f"unknown sequence model {kind!r}; choose from {', '.join(KINDS)}")
        self.kind = kind
        self.code_embedding = nn.Embedding(vocabulary_size, dim, padding_idx=PAD)
        # Each code has its own direction for its value: "eGFR 45" and "HbA1c 45" must differ,
        # which one shared projection of the value could only express through the body.
        self.value_embedding = nn.Embedding(vocabulary_size, dim, padding_idx=PAD)
        self.value_projection = nn.Linear(N_CONTINUOUS, dim)
        self.dropout = nn.Dropout(dropout)
        if kind == "gru":
            self.body: nn.Module = nn.GRU(dim, dim, batch_first=True)
        elif kind == "lstm":
            self.body = nn.LSTM(dim, dim, batch_first=True)
        elif kind == "tcn":
            # Dilations 1..16 with kernel 3: each position sees the previous 62 events directly.
            self.body = nn.ModuleList(CausalConvBlock(dim, 3, 2**i, dropout) for i in range(5))
        else:
            self.position = nn.Embedding(max_len, dim)
            self.body = nn.ModuleList(TransformerBlock(dim, heads, dropout) for _ in range(layers))
            self.final_norm = nn.LayerNorm(dim)
            causal = torch.triu(torch.full((max_len, max_len), MASK_FILL), diagonal=1)
            self.register_buffer("causal", causal, persistent=False)
        self.next_code = nn.Linear(dim, vocabulary_size)
        self.risk = nn.Linear(2 * dim, 1)

    def states(self, codes: torch.Tensor, continuous: torch.Tensor) -> torch.Tensor:
        """(B, L, D) causal states; ``codes`` (B, L) left-padded, ``continuous`` (B, L, 5)."""
        value = continuous[..., :1]  # the standardised value (0 when the event has none)
        x = self.code_embedding(codes) + self.value_embedding(codes) * value
        x = self.dropout(x + self.value_projection(continuous))
        if self.kind in ("gru", "lstm"):
            out, _ = self.body(x)
            return out
        if self.kind == "tcn":
            for block in cast(nn.ModuleList, self.body):
                x = block(x)
            return x
        length = codes.shape[1]
        positions = torch.arange(length, device=codes.device)
        x = x + self.position(positions)[None]
        padding = (codes == PAD).to(x.dtype)[:, None, None, :] * MASK_FILL
        causal = cast(torch.Tensor, self.causal)
        bias = causal[:length, :length][None, None] + padding
        for block in cast(nn.ModuleList, self.body):
            x = block(x, bias)
        return self.final_norm(x)

    def pooled(self, codes: torch.Tensor, continuous: torch.Tensor) -> torch.Tensor:
        """(B, 2D): the last position's state and the mean state over real (non-pad) events."""
        states = self.states(codes, continuous)
        real = (codes != PAD).to(states.dtype).unsqueeze(-1)
        mean = (states * real).sum(dim=1) / real.sum(dim=1).clamp(min=1.0)
        return torch.cat([states[:, -1], mean], dim=-1)

    def forward(self, codes: torch.Tensor, continuous: torch.Tensor) -> torch.Tensor:
        """(B,) risk logits (uncalibrated)."""
        return self.risk(self.dropout(self.pooled(codes, continuous))).squeeze(-1)


class EmbeddingHead(nn.Module):
    """Exports a network's pooled, L2-normalised patient embedding (nearest patients, phenotypes)."""

    def __init__(self, net: TimelineNet) -> None:
        super().__init__()
        self.net = net

    def forward(self, codes: torch.Tensor, continuous: torch.Tensor) -> torch.Tensor:
        pooled = self.net.pooled(codes, continuous)
        return pooled / pooled.norm(dim=-1, keepdim=True).clamp(min=1e-6)
