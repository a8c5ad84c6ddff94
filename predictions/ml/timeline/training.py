"""Training loops: self-supervised pretraining on timelines, then supervised fine-tuning.

Pretraining (next-event prediction): every epoch each subject's timeline is cut at a random point
and the last ``max_len`` events before it are encoded; the network predicts each event's code from
the events before it. Whole subjects are held out for early stopping.

Fine-tuning starts from a copy of the pretrained network (or from scratch when no pretraining
ran), adds nothing but the risk head already in :class:`TimelineNet`, and stops early on a grouped
validation split of the training rows (no patient on both sides). Both are seeded and CPU-only.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch import nn

from predictions.ml.algorithms import early_stopping_split
from predictions.ml.timeline.events import Histories, Timelines
from predictions.ml.timeline.networks import TimelineNet
from predictions.ml.timeline.tokens import PAD, TokenEncoder
from predictions.ml.timeline.weights import NetWeights, state_checksum

BATCH_SIZE = 64
LEARNING_RATE = 2e-3
WEIGHT_DECAY = 1e-4
GRADIENT_CLIP = 1.0
PRETRAIN_PATIENCE = 2
FINETUNE_PATIENCE = 3
VALIDATION_FRACTION = 0.15
# One thread: small recurrent steps lose more to thread hand-offs than they gain (measured:
# GRU 1,300 sequences/s on one thread, 300-700 on two, on this 2-core machine).
TORCH_THREADS = 1

Progress = Callable[[str], None]


@dataclass
class NetConfig:
    """Architecture of one sequence model (saved with it, so serving rebuilds the same net)."""

    kind: str
    dim: int = 64
    dropout: float = 0.1
    layers: int = 2
    heads: int = 4

    def fields(self) -> dict[str, Any]:
        return {
            "dim": self.dim,
            "dropout": self.dropout,
            "layers": self.layers,
            "heads": self.heads,
        }

    def build(self, encoder: TokenEncoder) -> TimelineNet:
        return TimelineNet(
            self.kind,
            encoder.vocabulary_size,
            max_len=encoder.max_len,
            dim=self.dim,
            dropout=self.dropout,
            layers=self.layers,
            heads=self.heads,
        )


@dataclass
class TrainLog:
    epochs: int = 0
    best_epoch: int = 0
    train_loss: list[float] = field(default_factory=list)
    validation_loss: list[float] = field(default_factory=list)
    seconds: float = 0.0
    # Checksum of the weights the first epoch started from (NetWeights.checksum's formula): proof
    # of which pretrained or champion weights a fine-tune began with.
    start_checksum: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "start_checksum": self.start_checksum,
            "epochs": self.epochs,
            "best_epoch": self.best_epoch,
            "train_loss": [round(v, 4) for v in self.train_loss],
            "validation_loss": [round(v, 4) for v in self.validation_loss],
            "seconds": round(self.seconds, 1),
        }


class torch_threads:
    """Run the enclosed block on ``n`` torch threads, restoring the previous count after."""

    def __init__(self, n: int = TORCH_THREADS) -> None:
        self.n = n

    def __enter__(self) -> None:
        self.previous = torch.get_num_threads()
        torch.set_num_threads(self.n)

    def __exit__(self, *exc: object) -> None:
        torch.set_num_threads(self.previous)


def _tensors(codes: np.ndarray, continuous: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.as_tensor(codes, dtype=torch.long), torch.as_tensor(
        continuous, dtype=torch.float32
    )


def _random_windows(
    encoder: TokenEncoder, timelines: Timelines, corpus: Histories, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """Each history cut at a random event (at least two events kept), times from the cut."""
    length = corpus.stop - corpus.start
    low = np.minimum(length, 2)
    cut = corpus.start + rng.integers(low, np.maximum(length, low) + 1)
    reference = np.where(cut > corpus.start, timelines.time[np.maximum(cut - 1, 0)] + 1, 0)
    windows = Histories(corpus.start, cut, corpus.subject_id, reference)
    return encoder.encode(timelines, windows)


def _next_visit_loss(
    net: TimelineNet, codes: torch.Tensor, continuous: torch.Tensor
) -> torch.Tensor:
    """Cross-entropy of the next visit's codes, predicted from the state after each visit.

    A "visit" is the events sharing one time. Predicting the next *token* would mostly teach the
    order in which a clinic records its vitals; predicting which codes come at the next time
    teaches what a course looks like (the soft target is the next visit's code mix).
    """
    real = codes != PAD
    timed = continuous[..., 4] < 0.5
    new_visit = (continuous[..., 3] > 0) & real & timed  # first event of a later time
    group = torch.cumsum(new_visit.long(), dim=1)
    batch_index, first = torch.nonzero(new_visit[:, 1:], as_tuple=True)
    first = first + 1
    if not len(first):
        return codes.new_zeros((), dtype=torch.float32) + 0.0 * net.next_code.bias.sum()
    states = net.states(codes, continuous)
    logits = net.next_code(states[batch_index, first - 1])  # (Q, V): after the previous visit
    query = torch.full((codes.shape[0], codes.shape[1] + 1), -1, dtype=torch.long)
    query[batch_index, group[batch_index, first]] = torch.arange(len(first))
    member = real & timed & (group > 0)
    rows, cols = torch.nonzero(member, as_tuple=True)
    owner = query[rows, group[rows, cols]]
    keep = owner >= 0
    target = torch.zeros_like(logits)
    target.index_put_(
        (owner[keep], codes[rows[keep], cols[keep]]),
        torch.ones(int(keep.sum())),
        accumulate=True,
    )
    target = target / target.sum(dim=1, keepdim=True).clamp(min=1.0)
    return -(target * torch.log_softmax(logits, dim=-1)).sum(dim=1).mean()


def pretrain(
    config: NetConfig,
    encoder: TokenEncoder,
    timelines: Timelines,
    corpus: Histories,
    *,
    epochs: int,
    seed: int = 0,
    progress: Progress | None = None,
) -> tuple[TimelineNet, TrainLog]:
    """Next-event pretraining on ``corpus`` (visible histories only), early-stopped on subjects."""
    log = TrainLog()
    started = time.perf_counter()
    with torch_threads():
        torch.manual_seed(seed)
        net = config.build(encoder)
        if epochs <= 0:
            return net, log
        rng = np.random.default_rng(seed)
        subjects = np.unique(corpus.subject_id)
        held_out = set(rng.choice(subjects, size=max(1, int(len(subjects) * 0.1)), replace=False))
        is_val = np.array([s in held_out for s in corpus.subject_id])
        train_rows, val_rows = np.flatnonzero(~is_val), np.flatnonzero(is_val)
        if not len(train_rows):
            train_rows = val_rows
        val_codes, val_cont = _tensors(*encoder.encode(timelines, corpus.subset(val_rows)))
        optimiser = torch.optim.AdamW(net.parameters(), lr=LEARNING_RATE, weight_decay=WEIGHT_DECAY)
        best, best_state, stale = float("inf"), copy.deepcopy(net.state_dict()), 0
        for epoch in range(epochs):
            net.train()
            codes, cont = _tensors(
                *_random_windows(encoder, timelines, corpus.subset(train_rows), rng)
            )
            order = torch.as_tensor(rng.permutation(len(codes)))
            total = 0.0
            for first in range(0, len(order), BATCH_SIZE):
                batch = order[first : first + BATCH_SIZE]
                optimiser.zero_grad()
                loss = _next_visit_loss(net, codes[batch], cont[batch])
                loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
                nn.utils.clip_grad_norm_(net.parameters(), GRADIENT_CLIP)
                optimiser.step()
                total += loss.item() * len(batch)
            net.eval()
            with torch.no_grad():
                val_loss = float(_next_visit_loss(net, val_codes, val_cont))
            log.epochs = epoch + 1
            log.train_loss.append(total / len(order))
            log.validation_loss.append(val_loss)
            if progress:
                progress(
                    f"pretraining {config.kind}: epoch {epoch + 1}/{epochs}, loss {val_loss:.3f}"
                )
            if val_loss < best - 1e-4:
                best, best_state, stale, log.best_epoch = (
                    val_loss,
                    copy.deepcopy(net.state_dict()),
                    0,
                    epoch + 1,
                )
            else:
                stale += 1
                if stale >= PRETRAIN_PATIENCE:
                    break
        net.load_state_dict(best_state)
    log.seconds = time.perf_counter() - started
    return net.eval(), log


@dataclass
class FineTuned:
    net: TimelineNet
    log: TrainLog
    validation_rows: np.ndarray
    validation_logits: np.ndarray


def finetune(
    start: TimelineNet | None,
    config: NetConfig,
    encoder: TokenEncoder,
    codes: np.ndarray,
    continuous: np.ndarray,
    labels: np.ndarray,
    groups: np.ndarray,
    *,
    max_epochs: int = 20,
    seed: int = 0,
    progress: Progress | None = None,
) -> FineTuned:
    """Supervised fine-tuning with early stopping on whole held-out patients."""
    log = TrainLog()
    started = time.perf_counter()
    with torch_threads():
        torch.manual_seed(seed)
        net = copy.deepcopy(start) if start is not None else config.build(encoder)
        log.start_checksum = state_checksum(state_arrays(net))
        y = labels.astype(np.float32)
        train_idx, val_idx, _how = early_stopping_split(
            labels.astype(int), groups, VALIDATION_FRACTION, seed
        )
        x_codes, x_cont = _tensors(codes, continuous)
        target = torch.as_tensor(y)
        positives = max(float(y[train_idx].sum()), 1.0)
        # Balanced loss: rare outcomes still shape the representation; Platt scaling afterwards
        # restores calibrated probabilities.
        pos_weight = torch.tensor((len(train_idx) - positives) / positives)
        loss_fn = nn.BCEWithLogitsLoss(pos_weight=pos_weight)
        # The pretrained body learns more slowly than the fresh head.
        head = list(net.risk.parameters())
        body = [p for name, p in net.named_parameters() if not name.startswith("risk.")]
        body_rate = LEARNING_RATE / 2 if start is not None else LEARNING_RATE
        optimiser = torch.optim.AdamW(
            [{"params": body, "lr": body_rate}, {"params": head, "lr": LEARNING_RATE}],
            weight_decay=WEIGHT_DECAY,
        )
        generator = torch.Generator().manual_seed(seed)
        train_tensor = torch.as_tensor(train_idx)
        val_tensor = torch.as_tensor(val_idx)
        best, best_state, stale = float("inf"), copy.deepcopy(net.state_dict()), 0
        for epoch in range(max_epochs):
            net.train()
            order = train_tensor[torch.randperm(len(train_tensor), generator=generator)]
            total = 0.0
            for first in range(0, len(order), BATCH_SIZE):
                batch = order[first : first + BATCH_SIZE]
                optimiser.zero_grad()
                loss = loss_fn(net(x_codes[batch], x_cont[batch]), target[batch])
                loss.backward()
                nn.utils.clip_grad_norm_(net.parameters(), GRADIENT_CLIP)
                optimiser.step()
                total += loss.item() * len(batch)
            net.eval()
            with torch.no_grad():
                val_loss = float(
                    loss_fn(net(x_codes[val_tensor], x_cont[val_tensor]), target[val_tensor])
                )
            log.epochs = epoch + 1
            log.train_loss.append(total / max(len(order), 1))
            log.validation_loss.append(val_loss)
            if progress:
                progress(f"fine-tuning {config.kind}: epoch {epoch + 1}, loss {val_loss:.3f}")
            if val_loss < best - 1e-4:
                best, best_state, stale, log.best_epoch = (
                    val_loss,
                    copy.deepcopy(net.state_dict()),
                    0,
                    epoch + 1,
                )
            else:
                stale += 1
                if stale >= FINETUNE_PATIENCE:
                    break
        net.load_state_dict(best_state)
        net.eval()
        with torch.no_grad():
            val_logits = net(x_codes[val_tensor], x_cont[val_tensor]).numpy().astype(float)
    log.seconds = time.perf_counter() - started
    return FineTuned(net, log, val_idx, val_logits)


def predict_logits(net: TimelineNet, codes: np.ndarray, continuous: np.ndarray) -> np.ndarray:
    """Risk logits in batches (eval mode, no gradients)."""
    out = np.zeros(len(codes))
    with torch_threads(), torch.no_grad():
        net.eval()
        for first in range(0, len(codes), 256):
            c, x = _tensors(codes[first : first + 256], continuous[first : first + 256])
            out[first : first + 256] = net(c, x).numpy()
    return out


def state_arrays(net: nn.Module) -> dict[str, np.ndarray]:
    """The network's ``state_dict`` as numpy copies (artifacts keep weights without torch)."""
    return {name: t.detach().cpu().numpy().copy() for name, t in net.state_dict().items()}


def net_weights(
    net: TimelineNet, config: NetConfig, encoder: TokenEncoder, origin: str, parent: str = ""
) -> NetWeights:
    return NetWeights(
        kind=config.kind,
        config=config.fields(),
        encoder=encoder,
        state=state_arrays(net),
        origin=origin,
        parent=parent,
    )


def net_from_weights(weights: NetWeights) -> TimelineNet:
    """Rebuild the network ``weights`` were taken from, with exactly those weights (eval mode)."""
    config = NetConfig(weights.kind, **weights.config)
    net = config.build(weights.encoder)
    net.load_state_dict({name: torch.as_tensor(a) for name, a in weights.state.items()})
    return net.eval()
