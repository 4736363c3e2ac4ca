"""Target conditioning: the coordinates the students regress the teacher in.

The teacher's representation `f` (width d) may have features of very
different scales and strongly correlated features. Before it is chunked,
it can be moved to other coordinates `t = (f - mean) @ A`:

- "standardize": `A = diag(1 / std)`, every feature at unit variance, so
  the MSE weighs them equally in units of their own spread;
- "pca": `A = V`, the covariance's eigenvectors by decreasing variance
  (a rotation: the MSE is unchanged, the chunks hold decorrelated
  components);
- "whiten": `A = V diag(1 / sqrt(eigenvalue))`, decorrelated and at unit
  variance;

and the coordinates may be dealt to the chunks in another order
(`ORDERS`): "variance" (`balance=True`) permutes them so every chunk
holds about the same share of the targets' total variance (greedy: the
largest variance first, to the chunk with the least variance that still
has room); "correlation" puts strongly correlated coordinates in one
chunk (`correlated_order`), so each student regresses features that
share their causes rather than a slice of all of them ("standardize"
only: the other kinds' coordinates are uncorrelated).

The statistics come from the training cache (one pass, float64). The
change is undone exactly inside the composed model without an extra
layer: the head's first affine layer (a `Dense`, or a 1x1 `Conv2D` on
channels_last feature maps, possibly behind layers that are the identity
at inference, with a bias) absorbs `f = t @ inv(A) + mean` into its
kernel and bias. A clip to the representation's range (see
`compose.FeatureClip`) moves into the new coordinates for "standardize"
(`A` diagonal: a positive scale per feature); a rotation mixes features,
so "pca" and "whiten" compose without a clip, even where their `A`
happens to be diagonal (e.g. a representation of one live feature).
"""

import warnings

import keras
import numpy as np
from keras import ops

from teacherclass import chunking
from teacherclass import compose as compose_lib

KINDS = ("standardize", "pca", "whiten")
ORDERS = ("variance", "correlation")
_ORDER_WORDS = {
    None: "in order",
    "variance": "by variance",
    "correlation": "by correlation",
}

# Features whose standard deviation is below this (dead ReLUs, constants)
# keep a unit scale: dividing by ~0 would make their targets explode.
_MIN_STD = 1e-6


class Conditioning:
    """An affine change of the representation's coordinates, and its inverse.

    Build one with `Conditioning.fit`; `transform` maps features to the
    students' targets, `inverse` maps targets back, and `fold` rewrites the
    teacher's head so it reads targets directly.

    Args:
        mean: float array `(d,)`.
        matrix: float array `(d, d)`, `A` in `t = (f - mean) @ A`.
        kind: str, one of `KINDS`, for reports.
        balance: bool, whether the coordinates were permuted to balance
            the chunks' variance (`order="variance"`).
        order: None or one of `ORDERS`, how the coordinates were dealt
            to the chunks (None: in order).

    Attributes:
        order: None, "variance" or "correlation".
        balance: bool, `order == "variance"`.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> f = rng.normal(3.0, [1.0, 10.0], size=(500, 2)).astype("float32")
    >>> c = Conditioning.fit(f, "standardize")
    >>> np.round(c.transform(f).std(0), 2).tolist()
    [1.0, 1.0]
    >>> bool(np.allclose(c.inverse(c.transform(f)), f, atol=1e-4))
    True
    """

    def __init__(
        self, mean, matrix, kind="standardize", balance=False, order=None
    ):
        self.mean = np.asarray(mean, dtype=np.float64)
        self.matrix = np.asarray(matrix, dtype=np.float64)
        d = self.mean.shape[0]
        if self.matrix.shape != (d, d):
            raise ValueError(
                f"`matrix` must be ({d}, {d}) for a mean of width {d}. "
                f"Received: matrix.shape={self.matrix.shape}"
            )
        self.kind = kind
        self.order = resolve_order(balance, order, "balance", "order")
        self.inverse_matrix = np.linalg.inv(self.matrix)

    @property
    def balance(self):
        """Whether the chunks were balanced by variance."""
        return self.order == "variance"

    @classmethod
    def fit(
        cls,
        features,
        kind="standardize",
        chunks=None,
        balance=False,
        order=None,
    ):
        """Statistics from features, `(n, ..., d)` array or batch iterable.

        Args:
            features: a float array whose last axis is the representation,
                or an iterable of such batches (e.g. the cache's batches).
                Positions of feature maps count as samples.
            kind: one of "standardize", "pca", "whiten".
            chunks: tuple of chunk widths, needed with an `order`.
            balance: bool, permute the coordinates so each chunk holds a
                near-equal share of the total variance (the same as
                `order="variance"`).
            order: None or one of `ORDERS`: "variance" as `balance`;
                "correlation" permutes the coordinates so the chunks
                hold groups of strongly correlated ones
                (`correlated_order`; "standardize" only).

        Returns:
            A `Conditioning`.

        Raises:
            ValueError: on an unknown `kind` or `order`, an `order`
                without `chunks`, "correlation" with another kind than
                "standardize", or no sample.
        """
        if kind not in KINDS:
            raise ValueError(
                f"`kind` must be one of {KINDS}. Received: kind={kind!r}"
            )
        order = resolve_order(balance, order, "balance", "order")
        if order is not None and chunks is None:
            raise ValueError(
                f"Dealing the coordinates to chunks by {order!r} needs the "
                "chunk widths. Received: chunks=None"
            )
        if order == "correlation" and kind != "standardize":
            raise ValueError(
                "order='correlation' groups correlated coordinates, and "
                f"{kind!r} coordinates are uncorrelated: use it with "
                f"'standardize'. Received: kind={kind!r}"
            )
        mean, covariance = mean_and_covariance(features)
        if kind == "standardize":
            std = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
            std = np.where(std < _MIN_STD, 1.0, std)
            matrix = np.diag(1.0 / std)
            variance = np.diag(covariance) / std**2
        else:
            eigenvalues, vectors = np.linalg.eigh(covariance)
            rank = np.argsort(eigenvalues)[::-1]
            eigenvalues = np.clip(eigenvalues[rank], 0.0, None)
            vectors = vectors[:, rank]
            if kind == "pca":
                matrix = vectors
                variance = eigenvalues
            else:
                scale = np.sqrt(eigenvalues)
                scale = np.where(scale < _MIN_STD, 1.0, scale)
                matrix = vectors / scale
                variance = eigenvalues / scale**2
        if order == "variance":
            matrix = matrix[:, balanced_order(variance, chunks)]
        elif order == "correlation":
            matrix = matrix[:, correlated_order(covariance, chunks)]
        if chunks is not None:
            _warn_constant_chunks(matrix, covariance, chunks, order)
        return cls(mean, matrix, kind=kind, order=order)

    @property
    def diagonal(self):
        """Whether `A` scales and permutes features without mixing them."""
        return np.count_nonzero(self.matrix) == self.matrix.shape[0]

    def transform(self, features):
        """Features -> targets, in NumPy (float32)."""
        f = np.asarray(features, dtype=np.float64)
        return ((f - self.mean) @ self.matrix).astype(np.float32)

    def inverse(self, targets):
        """Targets -> features, in NumPy (float32)."""
        t = np.asarray(targets, dtype=np.float64)
        return (t @ self.inverse_matrix + self.mean).astype(np.float32)

    def transform_tensor(self, features):
        """Features -> targets with `keras.ops`, in float32 (for tf.data)."""
        from keras import ops

        f = ops.cast(features, "float32")
        mean = ops.convert_to_tensor(self.mean.astype(np.float32))
        matrix = ops.convert_to_tensor(self.matrix.astype(np.float32))
        return ops.matmul(f - mean, matrix)

    def target_bounds(self, clip):
        """A feature clip `(low, high)` in target coordinates, per feature.

        Only for a diagonal `A` (a scale and a permutation): then each
        target is one feature, scaled by a positive factor, and its bounds
        follow. Returns None when `clip` is None.

        Raises:
            ValueError: for a rotation ("pca", "whiten") with a clip.
        """
        if clip is None:
            return None
        if not self.diagonal:
            raise ValueError(
                f"A clip cannot move into {self.kind!r} coordinates: they mix"
                " features. Pass clip=None with this conditioning. "
                f"Received: clip={clip!r}"
            )
        rows = np.argmax(np.abs(self.matrix), axis=0)  # feature of target j
        scale = self.matrix[rows, np.arange(self.matrix.shape[1])]
        low, high = clip
        return (
            None if low is None else ((low - self.mean[rows]) * scale).tolist(),
            None
            if high is None
            else ((high - self.mean[rows]) * scale).tolist(),
        )

    def fold(self, head):
        """A copy of `head` that reads targets instead of features.

        The first affine layer of the head (a `Dense`, or a `Conv2D` with a
        1x1 kernel on channels_last maps, possibly behind Dropout-like
        layers) absorbs the inverse change: kernel `W' = inv(A) @ W`, bias
        `b' = b + mean @ W`.

        Args:
            head: the functional head model, representation -> output.

        Returns:
            A new functional `keras.Model` with the same layers and
            weights, except the folded layer.

        Raises:
            ValueError: if the head does not start with such a layer, the
                layer has no bias, has LoRA enabled or is quantized, or
                the representation also feeds another layer.
        """
        folded = keras.models.clone_model(head)
        folded.set_weights(head.get_weights())
        layer = _first_affine(folded, self.kind)
        kernel = np.asarray(layer.kernel.numpy(), dtype=np.float64)
        shape = kernel.shape
        w = kernel.reshape(-1, shape[-1])  # (d, units); 1x1 conv: same
        new_kernel = (self.inverse_matrix @ w).reshape(shape)
        bias_shift = self.mean @ w
        bias = np.asarray(layer.bias.numpy(), dtype=np.float64)
        layer.set_weights(
            [
                new_kernel.astype(np.float32),
                (bias + bias_shift).astype(np.float32),
            ]
        )
        return folded

    def digest(self):
        """A short hash of the statistics (float32), to tell two apart."""
        import hashlib

        h = hashlib.sha256(self.kind.encode())
        h.update(np.ascontiguousarray(self.mean, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(self.matrix, dtype=np.float32).tobytes())
        return h.hexdigest()[:16]

    def get_config(self):
        """A JSON-serializable dict; `Conditioning(**config)` rebuilds it."""
        return {
            "mean": self.mean.tolist(),
            "matrix": self.matrix.tolist(),
            "kind": self.kind,
            "order": self.order,
        }


class TargetConditioning:
    """A `TeacherClass`'s target conditioning: statistics kept as weights.

    The fitted statistics are non-trainable weights of `model`, so they
    are saved and loaded with it; this object reads and writes them and
    says what the class and its composed model do with them. Without a
    `kind` it adds no weight and every method is the identity: the
    targets are the features, the head and clip stay as they are.

    Args:
        model: the `keras.Model` to add the weights to.
        kind: None or one of `KINDS`.
        order: None or one of `ORDERS`, see `Conditioning.fit`.
        width: int, the representation's width d.
        head: the head the conditioning folds into.
        clip: the feature clip `(low, high)`, or None.
        feature_clip: the `compose.FeatureClip` layer of `clip`, or None.
        order_argument: str or None, the user's argument(s) that set
            `order` (e.g. "chunk_order='variance'"), for errors; None:
            `chunk_order=<order>`.

    Raises:
        ValueError: on an unknown `kind`, an `order` without a `kind`, or a
            head that `Conditioning.fold` cannot rewrite (checked here, so
            a class that would fail to compose is refused when built).
    """

    def __init__(
        self,
        model,
        kind,
        order,
        width,
        head,
        clip,
        feature_clip,
        order_argument=None,
    ):
        if kind is not None and kind not in KINDS:
            raise ValueError(
                f"`conditioning` must be None or one of {KINDS}. "
                f"Received: conditioning={kind!r}"
            )
        if order is not None and kind is None:
            argument = order_argument or f"chunk_order={order!r}"
            raise ValueError(
                f"`{argument}` orders the conditioned coordinates: pass a "
                "`conditioning` too (e.g. conditioning='standardize'). "
                f"Received: {argument}, conditioning=None"
            )
        self.kind = kind
        if order == "correlation" and kind not in (None, "standardize"):
            raise ValueError(
                "`chunk_order='correlation'` groups correlated features, "
                f"and {kind!r} coordinates are uncorrelated: use it with "
                f"conditioning='standardize'. Received: conditioning={kind!r}"
            )
        self.order = order
        self.head = head
        self.clip = clip
        self.feature_clip = feature_clip
        self.width = width
        if kind is None:
            return
        check_foldable(head, kind)
        # Not autocast: the statistics stay float32 in a mixed-precision
        # call (the students' outputs are cast to float32 before them).
        weight = dict(trainable=False, initializer="zeros", autocast=False)
        self._fitted = model.add_weight(
            shape=(), dtype="int32", name="conditioning_fitted", **weight
        )
        self._mean = model.add_weight(
            shape=(width,), name="conditioning_mean", **weight
        )
        self._matrix = model.add_weight(
            shape=(width, width), name="conditioning_matrix", **weight
        )
        self._inverse = model.add_weight(
            shape=(width, width), name="conditioning_inverse", **weight
        )

    @property
    def fitted(self):
        """Whether the statistics are known."""
        return self.kind is not None and bool(int(self._fitted.numpy()))

    def get(self):
        """The fitted `Conditioning`, or None (no `kind`, or not fitted)."""
        if not self.fitted:
            return None
        return Conditioning(
            self._mean.numpy(),
            self._matrix.numpy(),
            kind=self.kind,
            order=self.order,
        )

    def set(self, fitted):
        """Stores a fitted `Conditioning` of this kind and width."""
        if self.kind is None:
            raise ValueError(
                "This class has no target conditioning "
                "(conditioning=None): it has no statistics to set. Build "
                "it with the `conditioning` of these statistics to use "
                f"them. Received: a {fitted.kind!r} conditioning"
            )
        if fitted.kind != self.kind or fitted.mean.shape != (self.width,):
            raise ValueError(
                f"This class conditions its targets with {self.kind!r} "
                f"over {self.width} features. Received: a {fitted.kind!r} "
                f"conditioning of width {fitted.mean.shape[0]}"
            )
        if fitted.order != self.order:
            raise ValueError(
                "This class deals its targets to the chunks "
                f"{_ORDER_WORDS[self.order]}; these statistics deal them "
                f"{_ORDER_WORDS[fitted.order]}, so the students would "
                "regress other targets. Received: a conditioning with "
                f"order={fitted.order!r}"
            )
        self._mean.assign(fitted.mean.astype("float32"))
        self._matrix.assign(fitted.matrix.astype("float32"))
        self._fitted.assign(1)
        # From the stored (float32) matrix, as every later use sees it.
        self._inverse.assign(self.get().inverse_matrix.astype("float32"))

    def fit(self, train, chunks):
        """Fits and stores the statistics: one pass over a feature cache.

        Args:
            train: a `features.Features` (its `pairs` yield the targets,
                or a dict with them under "features").
            chunks: tuple of chunk widths, for `order`.
        """

        def batches():
            for _, targets in train.pairs.batch(4096):
                if isinstance(targets, dict):
                    targets = targets["features"]
                yield targets.numpy()

        self.fit_batches(batches(), chunks)

    def fit_batches(self, batches, chunks):
        """Fits and stores the statistics of an iterable of feature arrays
        (e.g. every view of a `views.ViewCache`)."""
        self.set(
            Conditioning.fit(
                batches, self.kind, chunks=chunks, order=self.order
            )
        )

    def check_fitted(self):
        """Raises a ValueError if a `kind` is set but not fitted."""
        if self.kind is not None and not self.fitted:
            raise ValueError(
                f"The students regress {self.kind!r}-conditioned "
                "targets, whose statistics are not known yet: train with "
                "fit_students (or load_students) first. Received: "
                f"conditioning={self.kind!r} without statistics"
            )

    def transform(self):
        """Representation -> targets (a function), or None without `kind`."""
        if self.kind is None:
            return None
        self.check_fitted()
        return self.get().transform_tensor

    def target_clip(self):
        """The clip in the students' coordinates (a layer), or None."""
        fitted = self.get()
        if fitted is None:
            return self.feature_clip
        # The kind, not `fitted.diagonal`: `features` clips by kind, and a
        # "pca" matrix can be diagonal by chance (one live feature).
        if self.clip is None or self.kind != "standardize":
            return None
        low, high = fitted.target_bounds(self.clip)
        return compose_lib.FeatureClip(low, high, name="feature_clip")

    def target_head(self):
        """`(head, clip)` reading targets: folded under conditioning."""
        self.check_fitted()
        fitted = self.get()
        if fitted is None:
            return self.head, self.feature_clip
        return fitted.fold(self.head), self.target_clip()

    def features(self, outputs):
        """The students' outputs, joined, as the head's features.

        Targets -> features with the stored inverse: what the composed
        model's folded head computes. A clip after a positive per-feature
        scale ("standardize") equals the composed model's clip on targets;
        rotations compose without a clip.
        """
        if self.kind is None:
            return compose_lib.join(outputs, self.feature_clip)
        rep = ops.cast(compose_lib.join(outputs), "float32")
        rep = ops.matmul(rep, self._inverse) + self._mean
        # As `target_clip`: by kind alone.
        if self.kind == "standardize" and self.feature_clip:
            rep = self.feature_clip(rep)
        return rep


def _warn_constant_chunks(matrix, covariance, chunks, order):
    """Warns for each chunk whose targets are all constant: its student
    would regress constants (a chunk by correlation can gather the
    teacher's dead ReLUs, which correlate with nothing)."""
    variance = (matrix * (covariance @ matrix)).sum(axis=0)  # of targets
    live = int(np.sum(variance >= _MIN_STD**2))
    if order == "variance":
        # It already gives each chunk a varying feature while there are
        # enough of them.
        remedy = (
            f"Only {live} of the {len(variance)} features vary, fewer "
            f"than the {len(chunks)} chunks (students): use fewer "
            "students, or another feature_layer."
        )
    else:
        remedy = (
            "order='variance' gives every chunk an equal share of the "
            "variance, so none holds constants alone."
        )
    for i, (start, stop) in enumerate(chunking.bounds(chunks)):
        if np.all(variance[start:stop] < _MIN_STD**2):
            warnings.warn(
                f"Chunk {i} of {len(chunks)} (targets {start}-{stop - 1}) "
                "holds only constant features (e.g. ReLUs that never fire "
                "on these samples): its student has nothing to learn. "
                f"{remedy} Received: order={order!r}",
                stacklevel=3,
            )


def resolve_order(balance, order, balance_name, order_name):
    """The chunk order of a `balance` flag and an `order`, or None.

    `balance=True` is `order="variance"`; "contiguous" and None are no
    order. `balance_name` and `order_name` name the arguments in errors.

    Raises:
        ValueError: on a `balance` that is not a bool, an unknown order,
            or `balance=True` with another order.

    Example:

    >>> resolve_order(True, None, "balance", "order")
    'variance'
    """
    # A truthy string such as "no" must not read as True.
    if not isinstance(balance, (bool, np.bool_)):
        raise ValueError(
            f"`{balance_name}` must be True or False. "
            f"Received: {balance_name}={balance!r}"
        )
    balance = bool(balance)
    if order not in (None, "contiguous", *ORDERS):
        raise ValueError(
            f"`{order_name}` must be None, 'contiguous' or one of {ORDERS}. "
            f"Received: {order_name}={order!r}"
        )
    order = None if order == "contiguous" else order
    if balance and order not in (None, "variance"):
        raise ValueError(
            f"`{balance_name}=True` is {order_name}='variance'; it cannot "
            f"be combined with another order. Received: {balance_name}="
            f"{balance!r}, {order_name}={order!r}"
        )
    return "variance" if balance else order


def correlated_order(covariance, chunks):
    """A permutation of coordinates grouping correlated ones in a chunk.

    Partitions the coordinates into chunks of the given widths so that
    the squared correlation summed over pairs within a chunk is large: a
    start from the leading eigenvector of the squared correlations
    (coordinates by their loading, cut into the chunks), then the swap
    of two coordinates between chunks that gains the most, until none
    gains (at most 10 swaps per coordinate). Deterministic.
    Constant coordinates (zero variance) correlate with nothing. The
    eigenvector comes by power iteration and each swap scores only the
    pairs that can be the best (`_best_swap`), not all `d * d`: seconds
    at d = 4096 (`benchmarks/correlated_order_speed.py`).

    Args:
        covariance: array `(d, d)`, the coordinates' covariance.
        chunks: tuple of chunk widths summing to d.

    Returns:
        An int array `order`: chunk i holds coordinates
        `order[start_i:stop_i]`.

    Example:

    >>> rng = np.random.default_rng(0)
    >>> z = rng.normal(size=(1000, 2))
    >>> f = z[:, [0, 1, 0, 1]] + 0.1 * rng.normal(size=(1000, 4))
    >>> order = correlated_order(np.cov(f.T), (2, 2))
    >>> sorted(sorted(chunk.tolist()) for chunk in np.split(order, 2))
    [[0, 2], [1, 3]]
    """
    covariance = np.asarray(covariance, dtype=np.float64)
    d = covariance.shape[0]
    if covariance.shape != (d, d) or sum(chunks) != d:
        raise ValueError(
            f"`chunks` must sum to the covariance's width {d}. Received: "
            f"chunks={tuple(chunks)}, covariance.shape={covariance.shape}"
        )
    affinity = _squared_correlation(covariance)
    start = np.argsort(-_leading_eigenvector(affinity), kind="stable")
    group = np.repeat(np.arange(len(chunks)), chunks)[np.argsort(start)]
    # sums[i, g]: coordinate i's affinity to the members of chunk g.
    sums = affinity @ np.eye(len(chunks))[group]
    rows = np.arange(d)
    for _ in range(10 * d):
        # move[i, g]: what moving coordinate i alone to chunk g would add.
        move = sums - sums[rows, group][:, None]
        gain, i, j = max(
            (
                _best_swap(affinity, move, group, a, b)
                for a in range(len(chunks))
                for b in range(a + 1, len(chunks))
            ),
            default=(-np.inf, -1, -1),  # one chunk: nothing to swap
        )
        if not gain > 1e-12:
            break
        a, b = group[i], group[j]
        sums[:, a] += affinity[:, j] - affinity[:, i]
        sums[:, b] += affinity[:, i] - affinity[:, j]
        group[i], group[j] = b, a
    return np.concatenate(
        [np.flatnonzero(group == g) for g in range(len(chunks))]
    )


def _leading_eigenvector(affinity, iterations=500, tol=1e-12):
    """The leading eigenvector of a non-negative symmetric matrix.

    By power iteration from the uniform vector, its entries non-negative
    (Perron-Frobenius): a few products with the matrix instead of a full
    eigendecomposition, whose cost grows as d^3. Where the two leading
    eigenvalues are close it stops after `iterations` in their span,
    which does as well as a start for the swaps.
    """
    vector = np.full(affinity.shape[0], affinity.shape[0] ** -0.5)
    for _ in range(iterations):
        product = affinity @ vector
        norm = np.linalg.norm(product)
        if not norm:  # nothing correlates
            break
        product /= norm
        done = np.abs(product - vector).max() < tol
        vector = product
        if done:
            break
    return vector


def _best_swap(affinity, move, group, a, b, top=16):
    """The best swap of a coordinate of chunk a with one of chunk b.

    Swapping i (in a) and j (in b) adds `move[i, b] + move[j, a] - 2 *
    affinity[i, j]`, at most `move[i, b] + move[j, a]` (affinities are
    not negative). So only the `top` best movers of each side are scored,
    twice as many until no pair outside them can beat the best inside:
    the exact best of all pairs, without scoring them all.

    Returns:
        `(gain, i, j)`; `(-inf, -1, -1)` when a chunk is empty.
    """
    i, j = np.flatnonzero(group == a), np.flatnonzero(group == b)
    if not (i.size and j.size):
        return -np.inf, -1, -1
    # Each side's movers, best first (ties: the lower index first).
    gi, gj = move[i, b], move[j, a]
    by_i, by_j = np.argsort(-gi, kind="stable"), np.argsort(-gj, kind="stable")
    i, gi, j, gj = i[by_i], gi[by_i], j[by_j], gj[by_j]
    while True:
        ki, kj = min(top, i.size), min(top, j.size)
        block = gi[:ki, None] + gj[None, :kj]
        block -= 2 * affinity[np.ix_(i[:ki], j[:kj])]
        r, c = np.unravel_index(np.argmax(block), block.shape)
        best = block[r, c]
        # Pairs left out hold a mover below the ones scored.
        outside = max(
            gi[ki] + gj[0] if ki < i.size else -np.inf,
            gi[0] + gj[kj] if kj < j.size else -np.inf,
        )
        if best >= outside:
            return best, i[r], j[c]
        top *= 2


def within_chunk_share(covariance, order, chunks):
    """The share of the squared correlations that lie within chunks.

    Over pairs of distinct coordinates: about `1 / n` for n equal chunks
    of unrelated coordinates, 1 when no pair across chunks correlates.

    Args:
        covariance: array `(d, d)`, the coordinates' covariance.
        order: int array, chunk i holds `order[start_i:stop_i]`.
        chunks: tuple of chunk widths.

    Returns:
        A float in [0, 1] (0 when nothing correlates).
    """
    affinity = _squared_correlation(covariance)
    total = affinity.sum()
    if not total:
        return 0.0
    order = np.asarray(order)
    inside = sum(
        affinity[np.ix_(order[a:b], order[a:b])].sum()
        for a, b in chunking.bounds(chunks)
    )
    return float(inside / total)


def _squared_correlation(covariance):
    """Squared correlations of distinct coordinates (0 on the diagonal
    and for constant coordinates, which correlate with nothing)."""
    covariance = np.asarray(covariance, dtype=np.float64)
    std = np.sqrt(np.clip(np.diag(covariance), 0.0, None))
    std = np.where(std >= _MIN_STD, std, np.inf)
    affinity = (covariance / np.outer(std, std)) ** 2
    np.fill_diagonal(affinity, 0.0)
    return affinity


def balanced_order(variance, chunks):
    """A permutation of coordinates giving each chunk equal variance.

    Greedy: coordinates by decreasing variance, each to the chunk with the
    least total variance among those not yet full.

    Args:
        variance: array `(d,)`, each coordinate's variance.
        chunks: tuple of chunk widths summing to d.

    Returns:
        An int array `order`: target j is coordinate `order[j]`, so chunk
        i holds `order[start_i:stop_i]`.

    Example:

    >>> balanced_order(np.array([8.0, 4.0, 2.0, 1.0]), (2, 2)).tolist()
    [0, 3, 1, 2]
    """
    variance = np.asarray(variance, dtype=np.float64)
    if sum(chunks) != variance.shape[0]:
        raise ValueError(
            f"`chunks` must sum to the width {variance.shape[0]}. "
            f"Received: chunks={tuple(chunks)}"
        )
    members = [[] for _ in chunks]
    totals = np.zeros(len(chunks))
    for j in np.argsort(-variance, kind="stable"):
        open_ = [i for i, c in enumerate(chunks) if len(members[i]) < c]
        i = min(open_, key=lambda k: (totals[k], k))
        members[i].append(int(j))
        totals[i] += variance[j]
    return np.array([j for m in members for j in m], dtype=np.int64)


def mean_and_covariance(features):
    """The features' mean `(d,)` and covariance `(d, d)`, in float64.

    Args:
        features: a float array whose last axis is the representation,
            or an iterable of such batches; positions of feature maps
            count as samples.

    Raises:
        ValueError: if there is no sample.
    """
    count, total, outer = _moments(features)
    mean = total / count
    return mean, outer / count - np.outer(mean, mean)


def _moments(features):
    """Count, sum and sum of outer products over samples and positions."""
    if isinstance(features, np.ndarray) or hasattr(features, "shape"):
        batches = [features]
    else:
        batches = features
    count, total, outer = 0, None, None
    for batch in batches:
        f = np.asarray(batch, dtype=np.float64)
        f = f.reshape(-1, f.shape[-1])
        if total is None:
            total = np.zeros(f.shape[1])
            outer = np.zeros((f.shape[1], f.shape[1]))
        count += f.shape[0]
        total += f.sum(0)
        outer += f.T @ f
    if not count:
        raise ValueError("No features to compute statistics from.")
    return count, total, outer


def check_foldable(head, kind=None):
    """Raises a ValueError unless `fold` can rewrite `head`.

    Args:
        head: the functional head model, representation -> output.
        kind: the `conditioning` argument, for the message.
    """
    _first_affine(head, kind)


def _graph_nodes(model):
    graph = getattr(model, "_functional", None) or model
    return [
        node
        for nodes in graph._nodes_by_depth.values()
        for node in nodes
        if not isinstance(node.operation, keras.layers.InputLayer)
    ]


def _first_affine(head, kind=None):
    """The Dense or 1x1 Conv2D of `head` the conditioning folds into.

    It must be the only reader of the representation, directly or behind
    a chain of inference-identity layers (Dropout-like) that each feed
    nothing else: folding rewrites that one layer, so any other reader
    would see the conditioned targets where it expects features.
    """
    from teacherclass.teacher import _INFERENCE_IDENTITY

    nodes = _graph_nodes(head)
    tensor = head.inputs[0]
    what = "the representation (the head's input)"
    while True:
        readers = [
            node
            for node in nodes
            if any(t is tensor for t in node.input_tensors)
        ]
        names = [node.operation.name for node in readers]
        if any(t is tensor for t in head.outputs):
            names.append("the head's output")
        if len(names) > 1:
            raise ValueError(
                "Target conditioning folds its inverse transform into the "
                "first Dense or 1x1 Conv2D of the head, so that layer "
                "(behind Dropout-like layers only) must be the only reader "
                f"of the representation; here {what} feeds the layers "
                f"{names}, and the others would read conditioned targets "
                "as if they were features (e.g. a skip connection). Use "
                "conditioning=None with this head. "
                f"Received: conditioning={kind!r}"
            )
        layer = readers[0].operation if readers else None
        if isinstance(layer, keras.layers.Dense) or _pointwise_conv(layer):
            calls = sum(node.operation is layer for node in nodes)
            if calls > 1:
                # Its folded weights would also apply to its other inputs.
                raise ValueError(
                    f"Target conditioning folds into the head's layer "
                    f"{layer.name!r}, which the head calls {calls} times; "
                    "only the call on the representation may change. Use "
                    "conditioning=None with this head. "
                    f"Received: conditioning={kind!r}"
                )
            _check_weights_foldable(layer, kind)
            return layer
        if not isinstance(layer, _INFERENCE_IDENTITY):
            break
        tensor = readers[0].outputs[0]
        what = f"the output of {layer.name!r}"
    if isinstance(layer, keras.layers.Conv2D) and (
        layer.data_format != "channels_last"
    ):
        received = f"{layer.name!r} with data_format={layer.data_format!r}"
    else:
        received = f"head layers {[layer.name for layer in head.layers]}"
    raise ValueError(
        "Target conditioning folds into the head's first layer, which must "
        "be a Dense or a 1x1 Conv2D with data_format='channels_last' "
        "(Dropout-like layers before it are fine). Use conditioning=None "
        f"with this head. Received: {received}"
    )


def _pointwise_conv(layer):
    """Whether `layer` is a 1x1 Conv2D mixing the last axis only."""
    # channels_first maps hold the features on axis 1, not the last one
    # the representation is conditioned along.
    return (
        isinstance(layer, keras.layers.Conv2D)
        and tuple(layer.kernel_size) == (1, 1)
        and tuple(layer.strides) == (1, 1)
        and layer.groups == 1
        and layer.data_format == "channels_last"
    )


def _check_weights_foldable(layer, kind):
    """Raises a ValueError unless `fold` can rewrite `layer`'s weights:
    a float kernel and a bias (which absorbs the features' mean)."""
    if not layer.use_bias:
        raise ValueError(
            "Target conditioning folds the features' mean into the bias "
            f"of the head's first layer {layer.name!r}, which has none "
            "(use_bias=False). Use conditioning=None with this head. "
            f"Received: conditioning={kind!r}"
        )
    # Their kernel is more than one float weight: folding would rewrite
    # one part of it only.
    if getattr(layer, "lora_enabled", False):
        raise ValueError(
            "Target conditioning rewrites the kernel of the head's first "
            f"layer {layer.name!r}, which has LoRA enabled (its kernel is "
            "a sum of several weights). Use conditioning=None with this "
            f"head. Received: conditioning={kind!r}"
        )
    mode = getattr(layer, "quantization_mode", None)
    if mode is not None:
        raise ValueError(
            "Target conditioning rewrites the kernel of the head's first "
            f"layer {layer.name!r}, which is quantized ({mode!r}). Use "
            "conditioning=None with this head, or quantize after "
            f"compose(). Received: conditioning={kind!r}"
        )
