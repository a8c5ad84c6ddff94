"""The six learners (and two opt-in neural text models), their small hyper-parameter grids and
how each one is explained.

All estimators follow the scikit-learn protocol (``fit``, ``predict_proba``, ``classes_``) and take
the dense feature matrix built by :mod:`predictions.ml.features`. ``raw_scores`` gives the
uncalibrated score each calibrator works on (log-odds or logits where the model has them).
"""

from __future__ import annotations

import contextlib
import copy
import functools
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
from scipy.special import expit, logit, softmax
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import StratifiedShuffleSplit
from sklearn.svm import SVC
from sklearn.tree import DecisionTreeClassifier

from predictions.ml.names import ALGORITHM_NAMES, check_registry

ExplainMethod = Literal["linear", "tree", "boosting", "occlusion"]
# Probabilities are clipped before taking logs so a pure tree leaf gives a finite score.
PROBA_FLOOR = 1e-6


class OneRuleClassifier(ClassifierMixin, BaseEstimator):
    """Rules baseline (Holte's 1R): the single feature whose binned values best predict the label.

    Each feature is cut at its training quantiles; the rule predicts the (Laplace-smoothed) class
    mix of the bin a value falls in. Any model worth deploying must beat this.
    """

    def __init__(self, n_bins: int = 6) -> None:
        self.n_bins = n_bins

    def fit(self, X: np.ndarray, y: np.ndarray) -> OneRuleClassifier:
        self.classes_, codes = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        best: tuple[float, int, np.ndarray, np.ndarray] | None = None
        quantiles = np.linspace(0, 1, self.n_bins + 1)[1:-1]
        for j in range(X.shape[1]):
            edges = np.unique(np.quantile(X[:, j], quantiles))
            bins = np.searchsorted(edges, X[:, j], side="right")
            counts = np.ones((len(edges) + 1, k))  # Laplace smoothing
            np.add.at(counts, (bins, codes), 1.0)
            accuracy = counts.max(axis=1).sum() - (len(edges) + 1)
            if best is None or accuracy > best[0]:
                best = (accuracy, j, edges, counts / counts.sum(axis=1, keepdims=True))
        assert best is not None  # noqa: S101 - X has at least one column (featuriser guarantees)
        _, self.feature_, self.edges_, self.table_ = best
        return self

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        bins = np.searchsorted(self.edges_, np.asarray(X)[:, self.feature_], side="right")
        return self.table_[bins]

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.predict_proba(X).argmax(axis=1)]


# Above this many patients, StratifiedGroupKFold (a Python loop over patients) would add seconds
# to every MLP fit; the early-stopping split then cuts a random set of whole patients instead,
# whose class mix is close to the whole by sheer numbers.
STRATIFIED_VALIDATION_MAX_GROUPS = 2000


def early_stopping_split(
    codes: np.ndarray, groups: np.ndarray | None, fraction: float, seed: int
) -> tuple[np.ndarray, np.ndarray, str]:
    """(train rows, validation rows, how) for early stopping; no group on both sides.

    With ``groups`` (patient ids): a stratified grouped hold-out (as the outer folds) for up to
    :data:`STRATIFIED_VALIDATION_MAX_GROUPS` patients, a random cut of whole patients above. Without
    groups (or fewer than two): the former row-level stratified split, random if a class has
    a single member.
    """
    from predictions.ml.errors import DataError
    from predictions.ml.split import holdout_split

    n = len(codes)
    if groups is not None:
        groups = np.asarray(groups)
        if len(groups) != n:
            raise ValueError(f"groups has {len(groups)} entries for {n} rows")
        unique, group_code = np.unique(groups, return_inverse=True)
        if len(unique) >= 2:
            if len(unique) <= STRATIFIED_VALIDATION_MAX_GROUPS:
                try:
                    train_idx, val_idx = holdout_split(codes, groups, fraction, seed)
                    if len(train_idx) and len(val_idx):
                        return train_idx, val_idx, "grouped stratified"
                except (ValueError, DataError):
                    pass
            order = np.random.default_rng(seed).permutation(len(unique))
            covered = np.cumsum(np.bincount(group_code)[order])
            take = int(np.clip(np.searchsorted(covered, fraction * n) + 1, 1, len(unique) - 1))
            in_validation = np.zeros(len(unique), dtype=bool)
            in_validation[order[:take]] = True
            rows = in_validation[group_code]
            return np.flatnonzero(~rows), np.flatnonzero(rows), "grouped random"
    splitter = StratifiedShuffleSplit(n_splits=1, test_size=fraction, random_state=seed)
    try:
        train_idx, val_idx = next(splitter.split(np.zeros((n, 1)), codes))
        return train_idx, val_idx, "stratified rows"
    except ValueError:  # a class with one member cannot be stratified: split at random
        order = np.random.default_rng(seed).permutation(n)
        cut = max(1, int(n * fraction))
        return order[cut:], order[:cut], "random rows"


class TorchMLPClassifier(ClassifierMixin, BaseEstimator):
    """A one-hidden-layer PyTorch MLP (CPU, seeded) with early stopping on a validation split.

    Given ``groups`` the validation split holds out whole patients (:func:`early_stopping_split`),
    so the stopping point is not tuned on visits of patients the network is trained on.

    Training uses torch (Adam with weight decay, dropout, cross-entropy); the fitted weights are
    then copied to numpy so prediction needs no torch call (eval mode = no dropout, same numbers)
    and the artifact unpickles without torch internals.
    """

    def __init__(
        self,
        hidden: int = 64,
        lr: float = 1e-3,
        weight_decay: float = 1e-4,
        dropout: float = 0.2,
        max_epochs: int = 200,
        patience: int = 10,
        batch_size: int = 64,
        validation_fraction: float = 0.15,
        seed: int = 0,
    ) -> None:
        self.hidden = hidden
        self.lr = lr
        self.weight_decay = weight_decay
        self.dropout = dropout
        self.max_epochs = max_epochs
        self.patience = patience
        self.batch_size = batch_size
        self.validation_fraction = validation_fraction
        self.seed = seed

    def fit(
        self, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None = None
    ) -> TorchMLPClassifier:
        """Fit; with ``groups`` (patient ids) the early-stopping split keeps patients together."""
        import torch  # imported here: loading a fitted model for serving needs no torch

        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # small layers: thread hand-offs cost more than they save
        try:
            return self._fit(torch, X, y, groups)
        finally:
            torch.set_num_threads(threads)

    def _fit(
        self, torch: Any, X: np.ndarray, y: np.ndarray, groups: np.ndarray | None
    ) -> TorchMLPClassifier:
        self.classes_, codes = np.unique(y, return_inverse=True)
        k = len(self.classes_)
        torch.manual_seed(self.seed)
        generator = torch.Generator().manual_seed(self.seed)
        train_idx, val_idx, self.validation_split_ = early_stopping_split(
            codes, groups, self.validation_fraction, self.seed
        )
        self.validation_rows_ = len(val_idx)
        x_train = torch.as_tensor(X[train_idx], dtype=torch.float32)
        y_train = torch.as_tensor(codes[train_idx], dtype=torch.long)
        x_val = torch.as_tensor(X[val_idx], dtype=torch.float32)
        y_val = torch.as_tensor(codes[val_idx], dtype=torch.long)
        network = torch.nn.Sequential(
            torch.nn.Linear(X.shape[1], self.hidden),
            torch.nn.ReLU(),
            torch.nn.Dropout(self.dropout),
            torch.nn.Linear(self.hidden, k),
        )
        optimiser = torch.optim.Adam(
            network.parameters(), lr=self.lr, weight_decay=self.weight_decay
        )
        loss_fn = torch.nn.CrossEntropyLoss()
        best_loss, best_state, stale = float("inf"), copy.deepcopy(network.state_dict()), 0
        self.n_epochs_ = 0
        for _epoch in range(self.max_epochs):
            network.train()
            order = torch.randperm(len(x_train), generator=generator)
            for start in range(0, len(order), self.batch_size):
                batch = order[start : start + self.batch_size]
                optimiser.zero_grad()
                loss = loss_fn(network(x_train[batch]), y_train[batch])
                loss.backward()
                optimiser.step()
            self.n_epochs_ += 1
            network.eval()
            with torch.no_grad():
                val_loss = float(loss_fn(network(x_val), y_val))
            if val_loss < best_loss - 1e-4:
                best_loss, best_state, stale = val_loss, copy.deepcopy(network.state_dict()), 0
            else:
                stale += 1
                if stale >= self.patience:
                    break
        network.load_state_dict(best_state)
        self.best_validation_loss_ = best_loss
        self.weights_ = [
            (
                layer.weight.detach().numpy().T.astype(float),
                layer.bias.detach().numpy().astype(float),
            )
            for layer in (network[0], network[3])
        ]
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """The output logits, (n, k): by onnxruntime once :meth:`serve_onnx` attached the graph."""
        onnx = getattr(self, "onnx_", None)
        if onnx is not None:
            return onnx.run({"x": np.asarray(X, dtype=np.float32)}).astype(float)
        (w1, b1), (w2, b2) = self.weights_
        hidden = np.maximum(np.asarray(X, dtype=float) @ w1 + b1, 0.0)
        return hidden @ w2 + b2

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        return softmax(self.decision_function(X), axis=1)

    def predict(self, X: np.ndarray) -> np.ndarray:
        return self.classes_[self.decision_function(X).argmax(axis=1)]

    def serve_onnx(self, model_bytes: bytes | None) -> None:
        """Serve predictions through this ONNX graph (from :func:`predictions.ml.export.export_mlp`;
        its parity with the numpy path is the caller's check), or through numpy again (None)."""
        from predictions.ml.export import OnnxModel

        self.onnx_ = None if model_bytes is None else OnnxModel(model_bytes)

    def torch_module(self) -> Any:
        """The fitted network rebuilt in torch (eval mode, float32) for ONNX export
        (:mod:`predictions.ml.export`); its output equals :meth:`decision_function`."""
        import torch

        (w1, _), (w2, _) = self.weights_
        hidden = torch.nn.Linear(w1.shape[0], w1.shape[1])
        output = torch.nn.Linear(w2.shape[0], w2.shape[1])
        network = torch.nn.Sequential(hidden, torch.nn.ReLU(), output)
        with torch.no_grad():
            for layer, (w, b) in zip((hidden, output), self.weights_, strict=True):
                layer.weight.copy_(torch.as_tensor(w.T, dtype=torch.float32))
                layer.bias.copy_(torch.as_tensor(b, dtype=torch.float32))
        return network.eval()


# Up to this many rows, histogram gradient boosting is scored by :class:`BoostedForest` (numpy)
# instead of sklearn's OpenMP predictor, whose per-tree thread start-up costs ~30-100 ms for one
# row of a 1,500-tree model on a busy 2-core machine. Larger batches go to sklearn.
FAST_BOOSTING_MAX_ROWS = 32


class BoostedForest:
    """A fitted ``HistGradientBoostingClassifier``'s trees flattened into numpy arrays.

    Every tree of every iteration (and class) is walked at once, one tree level per numpy step,
    which for a single visit takes well under a millisecond where sklearn's predictor pays an
    OpenMP parallel region per tree. It follows sklearn's ``_predict_one_from_raw_data`` exactly
    (``x <= num_threshold`` goes left, NaN goes where ``missing_go_to_left`` says) and sums the
    leaf values onto the baseline in sklearn's order, so ``decision_function`` equals sklearn's to
    rounding (bitwise equal in practice; tested to 1e-9). Models with native categorical splits are not supported
    (:func:`boosted_forest` returns None for them); the featuriser one-hot encodes instead.

    ``path_contributions`` gives the Saabas attribution used by the boosting explanation: every
    split on the path credits its feature with the change in node value it causes. Internal node
    values are stored unshrunk by sklearn and are scaled by the learning rate here so they sit on
    the leaves' scale; the credits of one tree then telescope from its root value to its leaf.
    """

    def __init__(self, estimator: HistGradientBoostingClassifier) -> None:
        predictors = estimator._predictors
        self.n_iterations = len(predictors)
        self.n_outputs = estimator.n_trees_per_iteration_
        self.n_features = estimator.n_features_in_
        self.baseline = np.asarray(estimator._baseline_prediction, dtype=float).reshape(-1)
        rate = estimator.learning_rate
        trees = [predictor.nodes for iteration in predictors for predictor in iteration]
        sizes = np.array([len(nodes) for nodes in trees], dtype=np.intp)
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]]).astype(np.intp)
        nodes = np.concatenate(trees)
        owner = np.repeat(offsets, sizes)
        leaf = nodes["is_leaf"].astype(bool)
        index = np.arange(len(nodes), dtype=np.intp)
        # A leaf points to itself on both sides, so a walk of fixed length stays put once there.
        self.left = np.where(leaf, index, owner + nodes["left"].astype(np.intp))
        self.right = np.where(leaf, index, owner + nodes["right"].astype(np.intp))
        self.feature = np.where(leaf, 0, nodes["feature_idx"]).astype(np.intp)
        self.threshold = nodes["num_threshold"].astype(float)
        self.missing_left = nodes["missing_go_to_left"].astype(bool)
        self.is_leaf = leaf
        self.leaf_value = nodes["value"].astype(float)
        self.node_value = np.where(leaf, nodes["value"], nodes["value"] * rate).astype(float)
        self.roots = offsets
        self.depth = int(nodes["depth"].max())
        # Root values per output (class) and each output's own roots, for the explanation.
        self.class_roots = [offsets[c :: self.n_outputs] for c in range(self.n_outputs)]
        self.root_sum = np.array([self.node_value[r].sum() for r in self.class_roots])

    def _leaves(self, X: np.ndarray, roots: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=float)
        if X.ndim != 2 or X.shape[1] != self.n_features:
            raise ValueError(f"expected an (n, {self.n_features}) array, got shape {X.shape}")
        node = np.broadcast_to(roots, (len(X), len(roots))).copy()
        rows = np.arange(len(X))[:, None]
        for _ in range(self.depth):
            value = X[rows, self.feature[node]]
            go_left = np.where(
                np.isnan(value), self.missing_left[node], value <= self.threshold[node]
            )
            node = np.where(go_left, self.left[node], self.right[node])
        return node

    def raw_predict(self, X: np.ndarray) -> np.ndarray:
        """(n, outputs) raw scores, as sklearn's ``_raw_predict``."""
        leaves = self._leaves(X, self.roots)
        n = len(leaves)
        terms = np.empty((n, self.n_iterations + 1, self.n_outputs))
        terms[:, 0] = self.baseline
        terms[:, 1:] = self.leaf_value[leaves].reshape(n, self.n_iterations, self.n_outputs)
        # Reducing over the middle axis adds the terms one iteration after another: sklearn's
        # order (baseline, then each iteration's leaves), so the rounding matches too.
        return terms.sum(axis=1)

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        """(n,) log-odds for binary, (n, k) raw scores else (sklearn's ``decision_function``)."""
        raw = self.raw_predict(X)
        return raw[:, 0] if self.n_outputs == 1 else raw

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """(n, k) probabilities, as sklearn's ``predict_proba`` (logistic / softmax of the raw)."""
        raw = self.raw_predict(X)
        if self.n_outputs == 1:
            p = expit(raw[:, 0])
            return np.column_stack([1 - p, p])
        return softmax(raw, axis=1)

    def path_contributions(self, row: np.ndarray, output: int) -> tuple[float, np.ndarray]:
        """(raw score at the roots, per-feature credits) for one row and one output's trees.

        ``baseline + sum(credits)`` equals the row's raw score for that output.
        """
        roots = self.class_roots[output]
        node = roots.copy()
        credits = np.zeros(self.n_features)
        row = np.asarray(row, dtype=float).reshape(-1)
        for _ in range(self.depth):
            inner = ~self.is_leaf[node]
            if not inner.any():
                break
            node = node[inner]
            feature = self.feature[node]
            value = row[feature]
            go_left = np.where(
                np.isnan(value), self.missing_left[node], value <= self.threshold[node]
            )
            child = np.where(go_left, self.left[node], self.right[node])
            credits += np.bincount(
                feature, self.node_value[child] - self.node_value[node], minlength=self.n_features
            )
            node = child
        return float(self.baseline[output] + self.root_sum[output]), credits


# estimator -> (its ``_predictors`` list when flattened, the forest); holding the list itself (not
# its id, which a later list may reuse) tells a refitted estimator from the one flattened.
_FORESTS: weakref.WeakKeyDictionary[Any, tuple[list[Any], BoostedForest]] = (
    weakref.WeakKeyDictionary()
)


def boosted_forest(estimator: Any) -> BoostedForest | None:
    """The (cached) :class:`BoostedForest` of a fitted gradient-boosting model, else None."""
    if not isinstance(estimator, HistGradientBoostingClassifier):
        return None
    predictors = getattr(estimator, "_predictors", None)
    if predictors is None:
        return None
    categorical = getattr(estimator, "is_categorical_", None)
    if categorical is not None and np.any(categorical):
        return None
    cached = _FORESTS.get(estimator)
    if cached is None or cached[0] is not predictors:  # refitted since: rebuild
        cached = (predictors, BoostedForest(estimator))
        _FORESTS[estimator] = cached
    return cached[1]


class RbfSVCKernel:
    """A fitted RBF ``SVC``'s decision function computed from squared distances in numpy.

    ``decision_from_distances(D)`` takes ``D[i, s] = ||x_i - sv_s||^2`` and returns what
    ``SVC.decision_function`` returns (binary: the signed margin; multi-class: libsvm's
    one-vs-one values, turned one-vs-rest the way sklearn does when ``decision_function_shape`` is
    "ovr"), equal to libsvm's to rounding (tested to 1e-9). Taking distances rather than rows is
    what makes occlusion cheap: replacing one input column's features changes every distance by a
    term computed from those features alone (:meth:`column_distance_changes`), so the kernel rows
    of all occluded variants cost about as much as one kernel row.
    """

    def __init__(self, svc: SVC) -> None:
        self.support = np.asarray(svc.support_vectors_, dtype=float)
        self.support_sq = np.einsum("ij,ij->i", self.support, self.support)
        self.gamma = float(svc._gamma)
        self.dual = np.asarray(svc.dual_coef_, dtype=float)
        self.intercept = np.asarray(svc.intercept_, dtype=float)
        self.n_classes = len(svc.classes_)
        self.ovr = svc.decision_function_shape == "ovr"
        ends = np.cumsum(svc.n_support_)
        self.blocks = [slice(int(e - n), int(e)) for e, n in zip(ends, svc.n_support_, strict=True)]
        pairs = [(i, j) for i in range(self.n_classes) for j in range(i + 1, self.n_classes)]
        self.pair_i = np.array([i for i, _ in pairs], dtype=np.intp)
        self.pair_j = np.array([j for _, j in pairs], dtype=np.intp)
        # One-vs-rest bookkeeping as in sklearn's _ovr_decision_function: pair (i, j) adds its
        # value to class i's confidence and subtracts it from class j's; the sign is the vote.
        self.to_first = np.zeros((len(pairs), self.n_classes))
        self.to_first[np.arange(len(pairs)), self.pair_i] = 1.0
        self.to_second = np.zeros((len(pairs), self.n_classes))
        self.to_second[np.arange(len(pairs)), self.pair_j] = 1.0

    def distances(self, X: np.ndarray) -> np.ndarray:
        """(n, n_support) squared Euclidean distances to the support vectors."""
        X = np.atleast_2d(np.asarray(X, dtype=float))
        sq = np.einsum("ij,ij->i", X, X)[:, None] + self.support_sq - 2.0 * (X @ self.support.T)
        return np.maximum(sq, 0.0)

    def column_distance_changes(
        self, row: np.ndarray, reference: np.ndarray, grouping: np.ndarray
    ) -> np.ndarray:
        """(columns, n_support): how each squared distance changes when the features of one input
        column (``grouping`` is the (features, columns) 0/1 membership) take ``reference`` values.

        For one feature, ``(r - s)^2 - (x - s)^2 = (r^2 - x^2) - 2 s (r - x)``; a column sums its own.
        """
        row = np.asarray(row, dtype=float).reshape(-1)
        step = reference - row
        per_column = (reference**2 - row**2) @ grouping
        return per_column[:, None] - 2.0 * (self.support @ (step[:, None] * grouping)).T

    def decision_from_distances(self, D: np.ndarray) -> np.ndarray:
        """``SVC.decision_function`` from squared distances ``D`` (n, n_support)."""
        K = np.exp(-self.gamma * D)
        if self.n_classes == 2:
            return K @ self.dual[0] + self.intercept[0]
        # per[c][:, m] = sum over class c's support vectors of dual row m times the kernel
        per = np.stack([K[:, b] @ self.dual[:, b].T for b in self.blocks])  # (k, n, k - 1)
        # one-vs-one value of pair (i, j): class i's vectors weigh with row j - 1, j's with row i
        ovo = per[self.pair_i, :, self.pair_j - 1] + per[self.pair_j, :, self.pair_i]
        ovo = ovo.T + self.intercept  # (n, pairs)
        if not self.ovr:
            return ovo
        votes = (ovo >= 0) @ self.to_first + (ovo < 0) @ self.to_second
        confidence = ovo @ self.to_first - ovo @ self.to_second
        return votes + confidence / (3 * (np.abs(confidence) + 1))

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.decision_from_distances(self.distances(X))


@functools.cache
def _blas_pools() -> Any:
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController().select(user_api="blas")


def one_blas_thread() -> contextlib.AbstractContextManager[Any]:
    """Run the enclosed matrix products on one BLAS thread (costs ~10 us; libraries found once).

    The occlusion products are small: on a busy 2-core machine a second OpenBLAS thread waiting
    for a core turned a 4 ms SVM explanation into 16 ms median and 124 ms p99.
    """
    return _blas_pools().limit(limits=1)


def rbf_svc_kernel(estimator: Any) -> RbfSVCKernel | None:
    """The :class:`RbfSVCKernel` of a fitted dense RBF ``SVC`` (None for anything else)."""
    if not isinstance(estimator, SVC) or estimator.kernel != "rbf":
        return None
    if getattr(estimator, "_sparse", False) or not hasattr(estimator, "support_vectors_"):
        return None
    return RbfSVCKernel(estimator)


def raw_scores(estimator: Any, X: np.ndarray) -> np.ndarray:
    """The uncalibrated score calibration works on: (n,) log-odds for binary, (n, k) logits else."""
    k = len(estimator.classes_)
    if X.shape[0] <= FAST_BOOSTING_MAX_ROWS and (forest := boosted_forest(estimator)) is not None:
        return forest.decision_function(X)
    if isinstance(estimator, TorchMLPClassifier):
        logits = estimator.decision_function(X)
        return logits[:, 1] - logits[:, 0] if k == 2 else logits
    if hasattr(estimator, "decision_function"):
        return np.asarray(estimator.decision_function(X), dtype=float)
    proba = np.clip(estimator.predict_proba(X), PROBA_FLOOR, 1 - PROBA_FLOOR)
    return logit(proba[:, 1]) if k == 2 else np.log(proba)


@dataclass(frozen=True)
class Algorithm:
    """A learner: how to build it, the grid searched, and its explanation method."""

    name: str
    build: Callable[[dict[str, Any], int], Any]
    grid: list[dict[str, Any]]
    explain: ExplainMethod
    # RBF SVM training is quadratic in rows: above this many training rows it is fitted on a
    # stratified subsample (stated in the report) so 100k visits train in minutes, not hours.
    max_train_rows: int | None = None
    # The estimator's fit takes ``groups`` (patient ids) and keeps patients together internally.
    fit_takes_groups: bool = False
    notes: str = ""
    tags: dict[str, str] = field(default_factory=dict)
    # Free-text representations this learner is cross-validated with (features.REPRESENTATIONS):
    # sparse-capable learners try the uncapped blocks, dense-only ones the capped word block.
    text_representations: tuple[str, ...] = ("word-top",)
    # Grid used instead of ``grid`` when the features include sparse TF-IDF text (l2-normalised
    # rows of tens of thousands of terms want weaker regularisation than standardised columns).
    sparse_text_grid: list[dict[str, Any]] | None = None
    # In the default set (CLI without --algorithms); opt-in learners say why in ``notes``.
    default: bool = True
    # Reads free text itself (the neural text models): left out when the data has no text.
    needs_text: bool = False
    # Left out of the default set on large free-text tasks (see pipeline.COSTLY_TEXT_WORK):
    # one-vs-one pairs or trees per class cost minutes there and see only the capped word block.
    costly_with_text: bool = False

    def grid_for(self, sparse_text: bool) -> list[dict[str, Any]]:
        return self.sparse_text_grid if sparse_text and self.sparse_text_grid else self.grid


NEURAL_NOTE = (
    "opt-in (--algorithms cnn_text gru_text): a 10-fold run on 1,200 short texts takes minutes "
    "on 2 cores, past the default set's one-minute budget"
)


def _neural_text(kind: str, params: dict[str, Any], seed: int) -> Any:
    from predictions.ml.neural_text import TextCNNClassifier, TextGRUClassifier

    cls = TextCNNClassifier if kind == "cnn" else TextGRUClassifier
    return cls(seed=seed, **params)


ALGORITHMS: dict[str, Algorithm] = {
    a.name: a
    for a in (
        Algorithm(
            "rules_baseline",
            lambda p, seed: OneRuleClassifier(**p),
            [{"n_bins": 6}],
            "occlusion",
            notes="1R: the single most predictive binned feature",
        ),
        Algorithm(
            "logistic_regression",
            lambda p, seed: LogisticRegression(max_iter=2000, **p),
            [{"C": 0.03}, {"C": 0.1}, {"C": 0.3}, {"C": 1.0}],
            "linear",
            text_representations=("word", "char", "word+char", "word+char+encoder"),
            # tol 1e-3: half the L-BFGS iterations on sparse text for the same accuracy (bench)
            sparse_text_grid=[{"C": 1.0, "tol": 1e-3}, {"C": 10.0, "tol": 1e-3}],
        ),
        Algorithm(
            "svm",
            lambda p, seed: SVC(kernel="rbf", gamma="scale", random_state=seed, **p),
            [{"C": 0.3}, {"C": 1.0}, {"C": 3.0}],
            "occlusion",
            max_train_rows=4000,
            text_representations=("word+char",),
            sparse_text_grid=[{"C": 1.0}, {"C": 10.0}],
            costly_with_text=True,
        ),
        Algorithm(
            "decision_tree",
            lambda p, seed: DecisionTreeClassifier(random_state=seed, **p),
            [
                {"max_depth": 3, "min_samples_leaf": 10},
                {"max_depth": 5, "min_samples_leaf": 10},
                {"max_depth": 8, "min_samples_leaf": 20},
            ],
            "tree",
            text_representations=("word",),
        ),
        Algorithm(
            "gradient_boosting",
            lambda p, seed: HistGradientBoostingClassifier(random_state=seed, **p),
            [
                {"learning_rate": 0.1, "max_iter": 100, "max_depth": 3},
                {
                    "learning_rate": 0.1,
                    "max_iter": 100,
                    "max_leaf_nodes": 15,
                    "min_samples_leaf": 40,
                },
            ],
            "boosting",
            costly_with_text=True,
        ),
        Algorithm(
            "mlp",
            lambda p, seed: TorchMLPClassifier(seed=seed, **p),
            [
                {"lr": 1e-3, "weight_decay": 1e-4, "dropout": 0.2},
                {"lr": 3e-3, "weight_decay": 1e-3, "dropout": 0.4},
            ],
            "occlusion",
            fit_takes_groups=True,
            costly_with_text=True,
        ),
        Algorithm(
            "cnn_text",
            lambda p, seed: _neural_text("cnn", p, seed),
            [{"units": "tokens"}],
            "occlusion",
            fit_takes_groups=True,
            text_representations=("sequence",),
            default=False,
            needs_text=True,
            notes=NEURAL_NOTE,
        ),
        Algorithm(
            "gru_text",
            lambda p, seed: _neural_text("gru", p, seed),
            [{"hidden": 48}],
            "occlusion",
            fit_takes_groups=True,
            text_representations=("sequence",),
            default=False,
            needs_text=True,
            notes=NEURAL_NOTE,
        ),
    )
}
check_registry("algorithm", ALGORITHMS, ALGORITHM_NAMES)


def get_algorithms(names: list[str] | tuple[str, ...] | None) -> list[Algorithm]:
    """The named algorithms (the default set when ``names`` is None)."""
    from predictions.ml.errors import DataError

    if names is None:
        return [a for a in ALGORITHMS.values() if a.default]
    unknown = [n for n in names if n not in ALGORITHMS]
    if unknown:
        raise DataError(f"unknown algorithm {unknown[0]!r}; choose from: {', '.join(ALGORITHMS)}")
    return [ALGORITHMS[n] for n in names]
