"""Neural text models in PyTorch (CPU, seeded): a 1-D CNN and a bidirectional GRU over tokens.

Both read :class:`~predictions.ml.features.SequenceData`: per row the token sequence of every
free-text column (:func:`predictions.ml.text.sequence_tokens`: English words and jieba's Chinese
words, each with its negation/uncertainty polarity) and the dense structured block (numbers and
one-hot categories), which joins the pooled text vector before the output layer.

* The vocabulary is fitted inside :meth:`fit` on the training rows only (never on the early-
  stopping validation rows, never on a test fold) and saved with the model, as are the weights.
  A word seen fewer than ``min_count`` times becomes ``<unk>``. The CNN can instead read
  characters (``units="chars"``): Chinese then needs no segmenter at all.
* Polarity is a separate embedding added to the word's own, so "chest" and "no chest" share what
  "chest" means and differ by what negation means.
* Early stopping watches the loss on a patient-grouped validation split
  (:func:`~predictions.ml.algorithms.early_stopping_split`) and keeps the best epoch's weights.

The weights are kept as numpy arrays in the pickle; the torch module is rebuilt on first use.
"""

from __future__ import annotations

import copy
from collections import Counter
from typing import Any

import numpy as np
from scipy.special import softmax
from sklearn.base import BaseEstimator, ClassifierMixin

from predictions.ml.algorithms import early_stopping_split

PAD, UNK = 0, 1
POLARITY = {"": 0, "NEG": 1, "UNC": 2}


def split_polarity(token: str) -> tuple[str, int]:
    for prefix, code in (("NEG_", 1), ("UNC_", 2)):
        if token.startswith(prefix):
            return token[len(prefix) :], code
    return token, 0


def units_of(tokens: list[str], units: str) -> list[tuple[str, int]]:
    """(unit, polarity) pairs: the tokens themselves, or their characters."""
    out: list[tuple[str, int]] = []
    for token in tokens:
        word, polarity = split_polarity(token)
        if units == "chars" and not word.startswith("<"):
            out.extend((ch, polarity) for ch in word)
            out.append((" ", 0))
        else:
            out.append((word, polarity))
    return out


def _build_network(torch: Any, kind: str, vocab: int, k: int, dense: int, p: dict[str, Any]) -> Any:
    nn = torch.nn
    # torch is imported lazily (Any to mypy), so its base class is too.
    module_base: Any = nn.Module

    class TextCNN(module_base):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, p["embedding_dim"], padding_idx=PAD)
            self.polarity = nn.Embedding(3, p["embedding_dim"])
            self.convs = nn.ModuleList(
                nn.Conv1d(p["embedding_dim"], p["filters"], w, padding=w // 2) for w in p["widths"]
            )
            self.dropout = nn.Dropout(p["dropout"])
            self.out = nn.Linear(p["filters"] * len(p["widths"]) + dense, k)

        def forward(self, ids: Any, pol: Any, mask: Any, extra: Any) -> Any:
            # Padding contributes exact zeros, so a row scores the same in any batch.
            x = self.dropout((self.embed(ids) + self.polarity(pol)) * mask[:, :, None])
            x = x.transpose(1, 2)
            pooled = []
            for conv in self.convs:
                h = torch.relu(conv(x))[:, :, : ids.shape[1]]
                h = h.masked_fill(~mask[:, None, :], -1e4)
                pooled.append(h.max(dim=2).values)
            return self.out(self.dropout(torch.cat([*pooled, extra], dim=1)))

    class TextGRU(module_base):
        def __init__(self) -> None:
            super().__init__()
            self.embed = nn.Embedding(vocab, p["embedding_dim"], padding_idx=PAD)
            self.polarity = nn.Embedding(3, p["embedding_dim"])
            self.rnn = nn.GRU(p["embedding_dim"], p["hidden"], batch_first=True, bidirectional=True)
            self.dropout = nn.Dropout(p["dropout"])
            self.out = nn.Linear(4 * p["hidden"] + dense, k)

        def forward(self, ids: Any, pol: Any, mask: Any, extra: Any) -> Any:
            x = self.dropout((self.embed(ids) + self.polarity(pol)) * mask[:, :, None])
            # Packed: each direction reads the row's own tokens only, never the padding, so a
            # row scores the same whatever it is batched with.
            lengths = mask.sum(dim=1).clamp(min=1).cpu()
            packed = nn.utils.rnn.pack_padded_sequence(
                x, lengths, batch_first=True, enforce_sorted=False
            )
            h, _ = nn.utils.rnn.pad_packed_sequence(
                self.rnn(packed)[0], batch_first=True, total_length=ids.shape[1]
            )
            m = mask[:, :, None].float()
            mean = (h * m).sum(dim=1) / m.sum(dim=1).clamp(min=1.0)
            peak = h.masked_fill(~mask[:, :, None], -1e4).max(dim=1).values
            return self.out(self.dropout(torch.cat([mean, peak, extra], dim=1)))

    return TextCNN() if kind == "cnn" else TextGRU()


class _SequenceClassifier(ClassifierMixin, BaseEstimator):
    kind = "cnn"

    def __init__(
        self,
        units: str = "tokens",
        embedding_dim: int = 64,
        filters: int = 64,
        hidden: int = 48,
        dropout: float = 0.3,
        lr: float = 5e-3,
        weight_decay: float = 1e-5,
        max_epochs: int = 60,
        patience: int = 6,
        batch_size: int = 32,
        max_len: int = 160,
        min_count: int = 1,
        validation_fraction: float = 0.15,
        seed: int = 0,
    ) -> None:
        self.units = units
        self.embedding_dim = embedding_dim
        self.filters = filters
        self.hidden = hidden
        self.dropout = dropout
        self.lr = lr
        self.weight_decay = weight_decay
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.max_len = max_len
        self.min_count = min_count
        self.validation_fraction = validation_fraction
        self.seed = seed

    # -- pickling: numpy weights in, the torch module rebuilt lazily ---------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = dict(self.__dict__)
        state.pop("_network", None)
        return state

    def _hyper(self) -> dict[str, Any]:
        return {
            "embedding_dim": self.embedding_dim,
            "filters": self.filters,
            "hidden": self.hidden,
            "dropout": self.dropout,
            "widths": (2, 3, 4),
        }

    def _encode(self, tokens: list[list[str]]) -> tuple[np.ndarray, np.ndarray]:
        """Padded (n, L) id and polarity matrices (L = longest row, capped at ``max_len``)."""
        rows = [units_of(t, self.units)[: self.max_len] for t in tokens]
        width = max(1, max((len(r) for r in rows), default=1))
        ids = np.zeros((len(rows), width), dtype=np.int64)
        pol = np.zeros((len(rows), width), dtype=np.int64)
        vocabulary = self.vocabulary_
        for i, row in enumerate(rows):
            for j, (unit, polarity) in enumerate(row):
                ids[i, j] = vocabulary.get(unit, UNK)
                pol[i, j] = polarity
        return ids, pol

    def fit(self, X: Any, y: np.ndarray, groups: np.ndarray | None = None) -> _SequenceClassifier:
        import torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small batches: a second thread waits more than it helps
        try:
            return self._fit(torch, X, y, groups)
        finally:
            torch.set_num_threads(threads)

    def _fit(self, torch: Any, X: Any, y: np.ndarray, groups: np.ndarray | None) -> Any:
        self.classes_, codes = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        train_idx, val_idx, self.validation_split_ = early_stopping_split(
            codes, groups, self.validation_fraction, self.seed
        )
        counts: Counter[str] = Counter(
            unit for i in train_idx for unit, _ in units_of(X.tokens[i], self.units)
        )
        kept = sorted(u for u, c in counts.items() if c >= self.min_count)
        self.vocabulary_ = {u: i + 2 for i, u in enumerate(kept)}  # 0 = padding, 1 = unknown
        ids, pol = self._encode(X.tokens)
        dense = np.asarray(X.dense, dtype=np.float32)
        network = _build_network(
            torch, self.kind, len(self.vocabulary_) + 2, k, dense.shape[1], self._hyper()
        )
        optimiser = torch.optim.Adam(
            network.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        loss_fn = torch.nn.CrossEntropyLoss()
        t_ids, t_pol = torch.as_tensor(ids), torch.as_tensor(pol)
        t_dense, t_y = torch.as_tensor(dense), torch.as_tensor(codes, dtype=torch.long)
        tr, va = torch.as_tensor(train_idx), torch.as_tensor(val_idx)
        best_loss, best_state, stale = float("inf"), copy.deepcopy(network.state_dict()), 0
        self.n_epochs_ = 0
        for _epoch in range(self.max_epochs):
            network.train()
            order = tr[torch.randperm(len(tr), generator=generator)]
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                optimiser.zero_grad()
                logits = network(t_ids[batch], t_pol[batch], t_ids[batch] != PAD, t_dense[batch])
                loss_fn(logits, t_y[batch]).backward()
                optimiser.step()
            self.n_epochs_ += 1
            network.eval()
            with torch.no_grad():
                val_loss = float(
                    loss_fn(network(t_ids[va], t_pol[va], t_ids[va] != PAD, t_dense[va]), t_y[va])
                )
            if val_loss < best_loss - 1e-4:
                best_loss, best_state, stale = val_loss, copy.deepcopy(network.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        network.load_state_dict(best_state)
        network.eval()
        self.best_validation_loss_ = best_loss
        self.validation_rows_ = len(val_idx)
        self.n_dense_ = dense.shape[1]
        self.weights_ = {name: t.detach().numpy().copy() for name, t in best_state.items()}
        self._network = network
        return self

    def _module(self) -> Any:
        network = getattr(self, "_network", None)
        if network is None:
            import torch

            network = _build_network(
                torch,
                self.kind,
                len(self.vocabulary_) + 2,
                len(self.classes_),
                self.n_dense_,
                self._hyper(),
            )
            network.load_state_dict({n: torch.as_tensor(w) for n, w in self.weights_.items()})
            network.eval()
            self._network = network
        return network

    def decision_function(self, X: Any) -> np.ndarray:
        """(n, k) logits."""
        import torch

        network = self._module()
        ids, pol = self._encode(X.tokens)
        dense = np.asarray(X.dense, dtype=np.float32)
        out = []
        threads = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            with torch.no_grad():
                for start in range(0, len(ids), 256):
                    s = slice(start, start + 256)
                    t_ids = torch.as_tensor(ids[s])
                    out.append(
                        network(
                            t_ids, torch.as_tensor(pol[s]), t_ids != PAD, torch.as_tensor(dense[s])
                        ).numpy()
                    )
        finally:
            torch.set_num_threads(threads)
        logits = np.vstack(out).astype(float) if out else np.zeros((0, len(self.classes_)))
        if len(self.classes_) == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict_proba(self, X: Any) -> np.ndarray:
        scores = self.decision_function(X)
        if scores.ndim == 1:
            p = 1 / (1 + np.exp(-scores))
            return np.column_stack([1 - p, p])
        return softmax(scores, axis=1)

    def predict(self, X: Any) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


class TextCNNClassifier(_SequenceClassifier):
    """1-D convolutions (widths 2, 3, 4) over token or character embeddings, max-pooled."""

    kind = "cnn"


class TextGRUClassifier(_SequenceClassifier):
    """A bidirectional GRU over token embeddings, mean- and max-pooled over time."""

    kind = "gru"
