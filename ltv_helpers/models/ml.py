"""The ML baseline: gradient boosting on RFM and tenure features, trained on one window to predict the next."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from threadpoolctl import threadpool_limits

from ltv_helpers.data.parse import id_positions
from ltv_helpers.memory import release_memory
from ltv_helpers.models.base import MIN_CUSTOMERS
from ltv_helpers.schema import FREQUENCY, MONETARY_VALUE, LTVError, T

#: Features of the ML baseline. Rates per day of tenure rather than raw tenure: the model is
#: trained on younger customers than it predicts for, and trees cannot extrapolate tenure.
ML_FEATURES = ("frequency", "monetary_value", "aov", "days_since_last", "orders_per_day",
               "revenue_per_day", "silence_share")


#: Customers the ML baseline learns from at most (a fixed random sample beyond): 27 s for the
#: training and prediction at 1M customers with all of them.
ML_MAX_TRAIN = 200_000


def _ml_features(history: pd.DataFrame) -> pd.DataFrame:
    """Features of :data:`ML_FEATURES`, rounded to 9 decimals: sums computed by parallel
    threads can differ in the last bits between runs, and a tree split must not depend on that."""
    return pd.DataFrame(_ml_matrix(history), index=history.index, columns=list(ML_FEATURES))


def _ml_matrix(history: pd.DataFrame) -> np.ndarray:
    """:func:`_ml_features` as one array (customers x features), each column made and written into
    it in turn: no table of them and no rounded copy beside it (170 MB of copies at 1M customers)."""
    column = lambda name: history[name].to_numpy(dtype=float)  # noqa: E731
    tenure = column(T) + 1.0
    made = {"frequency": lambda: column(FREQUENCY), "monetary_value": lambda: column(MONETARY_VALUE),
            "aov": lambda: column("aov"), "days_since_last": lambda: column("days_since_last"),
            "orders_per_day": lambda: column("orders") / tenure, "revenue_per_day": lambda: column("revenue") / tenure,
            "silence_share": lambda: column("days_since_last") / tenure}
    X = np.empty((len(history), len(ML_FEATURES)))
    for j, name in enumerate(ML_FEATURES):
        X[:, j] = made[name]()
    return np.round(X, 9, out=X)


@dataclass
class MLBaseline:
    """Gradient boosting on RFM and tenure features, trained on one window to predict the next.

    ``fit_ml_baseline`` builds the features of every customer at ``train_end`` (their history up
    to then) and learns their purchases (distinct purchase days) and spend in the following
    ``horizon_days``. ``predict`` applies the same to the history up to a later date. It is the
    "regression on history" of the domain guides, to be compared with the probabilistic models.
    """

    purchases_model: object = field(repr=False)
    spend_model: object = field(repr=False)
    horizon_days: float
    train_end: pd.Timestamp
    n_train: int

    def __repr__(self) -> str:
        return (f"MLBaseline(gradient boosting, trained on {self.n_train:,} customers' history to "
                f"{self.train_end.date()} -> the next {self.horizon_days:g} days)")

    def predict(self, transactions: pd.DataFrame, *, observation_end,
                history: pd.DataFrame | None = None) -> pd.DataFrame:
        """``expected_purchases`` and ``expected_revenue`` in the ``horizon_days`` after
        ``observation_end``, per customer seen by then. ``history``: the caller's
        ``customer_history(transactions, observation_end=observation_end)``, when it has it
        (1.5 s at 1M customers to make again)."""
        from ltv_helpers.data import customer_history

        if history is None:
            history = customer_history(transactions, observation_end=observation_end)
        X = _ml_matrix(history)
        # Each customer's prediction is its own sum over the trees, in their order, whatever the
        # threads (only the training needs one thread to stay the same): OpenMP on every core.
        purchases, revenue = _predict_distinct((self.purchases_model, self.spend_model), X)
        return pd.DataFrame({"expected_purchases": np.clip(purchases, 0, None),
                             "expected_revenue": np.clip(revenue, 0, None)}, index=history.index)


def _predict_distinct(fitted: tuple, X: np.ndarray) -> list[np.ndarray]:
    """Each of the gradient boosting models ``fitted`` (trained on the same features, so with the
    same bins)'s ``predict(X)``, made once per distinct row of bins. A tree splits on a bin's upper
    edge (a value goes left when it is at most the edge, as its bin is at most the split's), so
    rows with the same bins get the same prediction: the same numbers as ``predict`` (tested), for
    about half the rows at 1M customers (2.5 s for both models on every row). Models whose bins
    differ are each predicted as they are."""
    from sklearn.utils._openmp_helpers import _openmp_effective_n_threads

    mapper = fitted[0]._bin_mapper
    same = all(len(m._bin_mapper.bin_thresholds_) == len(mapper.bin_thresholds_)
               and all(np.array_equal(a, b) for a, b in zip(m._bin_mapper.bin_thresholds_, mapper.bin_thresholds_))
               and m._bin_mapper.missing_values_bin_idx_ == mapper.missing_values_bin_idx_ for m in fitted)
    if not same or len(X) == 0 or not np.isfinite(X).all() or mapper.is_categorical_.any():
        return [m.predict(X) for m in fitted]
    binned = np.ascontiguousarray(mapper.transform(np.ascontiguousarray(X, dtype=np.float64)))
    if binned.shape[1] <= 8:  # one byte per feature: a row is one number
        rows = np.zeros((len(binned), 8), dtype=np.uint8)
        rows[:, :binned.shape[1]] = binned
        rows = rows.view(np.uint64).ravel()
    else:
        rows = binned.view(np.dtype((np.void, binned.shape[1]))).ravel()
    _, first, inverse = np.unique(rows, return_index=True, return_inverse=True)
    distinct = binned[first]
    threads = _openmp_effective_n_threads()
    out = []
    for m in fitted:
        raw = np.zeros((len(distinct), m.n_trees_per_iteration_), dtype=m._baseline_prediction.dtype, order="F")
        raw += m._baseline_prediction
        m._predict_iterations(distinct, m._predictors, raw, True, threads)  # the trees, in order, on bins
        out.append(m._loss.link.inverse(raw.ravel())[inverse.ravel()])
    return out


def _on_index(series: tuple[pd.Series, ...], index: pd.Index) -> list[pd.Series]:
    """Each of ``series`` (group-by results on one key, so with the same index) on ``index``, 0
    where it has no value; ids not in ``index`` (customers new in the window) are left out. One
    lookup of the ids for all of them (two reindexes took 1.6 s at 1M customers)."""
    positions = id_positions(series[0].index, index)
    found = positions >= 0
    out = []
    for values in series:
        full = np.zeros(len(index), dtype=np.result_type(values.dtype, np.int64))
        full[positions[found]] = values.to_numpy()[found]
        out.append(pd.Series(full, index=index, name=values.name))
    return out


def _window_purchases(transactions: pd.DataFrame, start, end) -> tuple[pd.Series, pd.Series]:
    """Per customer with orders after ``start`` up to ``end`` (whole days): purchases, counted as
    the models count them (distinct purchase days), and spend (:meth:`OrderDays.window
    <ltv_helpers.data.summary.OrderDays.window>` of the transactions' prepared orders)."""
    from ltv_helpers.data.summary import order_days

    return order_days(transactions).window(start, end)


def compare_ml_baseline(predictions: pd.DataFrame, ml: "MLBaseline", ml_predictions: pd.DataFrame,
                        transactions: pd.DataFrame, *, observation_end, model_name: str,
                        language: str = "en") -> tuple[pd.DataFrame, str]:
    """The purchase model's and the ML baseline's totals side by side (expected purchases and
    revenue), and a sentence setting the baseline against the model and the last window of the
    same length, with why they differ."""
    from ltv_helpers.labels import ML_COMPARISON, ML_YOUNGER, label

    end = pd.Timestamp(observation_end)
    ours, theirs = float(predictions["expected_purchases"].sum()), float(ml_predictions["expected_purchases"].sum())
    revenue = float((predictions["expected_purchases"] * predictions["expected_spend"]).sum())
    table = pd.DataFrame({"expected purchases": [ours, theirs],
                          "expected revenue": [revenue, float(ml_predictions["expected_revenue"].sum())]},
                         index=[label("{model} + Gamma-Gamma", language).format(model=model_name),
                                label("gradient boosting", language)])
    past = float(_window_purchases(transactions, end - pd.Timedelta(days=ml.horizon_days), end)[0].sum())

    def versus(a, b):
        if b <= 0:
            return "–"
        return label("{pct} more than" if a >= b else "{pct} fewer than", language).format(pct=f"{abs(a / b - 1):.0%}")

    months = round(ml.horizon_days / 30.4375)
    from ltv_helpers.data.summary import order_days

    first = order_days(transactions).first_orders
    train_end = np.datetime64(ml.train_end.to_datetime64(), "us")
    recent = (first >= train_end - np.timedelta64(pd.Timedelta(days=ml.horizon_days).to_timedelta64(), "us")) & (
        first < train_end)
    young = recent.sum() >= 0.5 * (first < train_end).sum()  # most had just arrived then
    younger = label(ML_YOUNGER, language).format(months=months) if young else ""
    text = label(ML_COMPARISON, language).format(ml=f"{theirs:,.0f}", vs_model=versus(theirs, ours),
                                                 model_name=model_name, vs_past=versus(theirs, past),
                                                 past=f"{past:,.0f}", months=months, younger=younger)
    return table, text


def fit_ml_baseline(transactions: pd.DataFrame, *, observation_end, horizon_days: float,
                    seed: int = 0) -> MLBaseline:
    """Train :class:`MLBaseline` on the window that ends at ``observation_end``: features at
    ``observation_end - horizon_days``, targets in the ``horizon_days`` after that.

    scikit-learn's ``HistGradientBoostingRegressor`` with a Poisson loss (counts and spend are
    non-negative and skewed), fixed ``random_state``; trained on at most :data:`ML_MAX_TRAIN`
    customers (a random sample fixed by ``seed``), as the cost grows with them and the fit does not
    gain from more.
    """
    from sklearn.ensemble import HistGradientBoostingRegressor

    from ltv_helpers.data import customer_history
    from ltv_helpers.data.parse import _end_cut

    end = pd.Timestamp(observation_end)
    train_end = end - pd.Timedelta(days=horizon_days)
    if horizon_days <= 0:
        raise LTVError(f"horizon_days must be positive, got {horizon_days}.")
    tx = transactions
    if tx["order_date"].min() >= _end_cut(train_end):
        raise LTVError(f"No history before {train_end.date()} to train on; use a shorter horizon_days.")
    history = customer_history(tx, observation_end=train_end)
    purchases, spend = _on_index(_window_purchases(tx, train_end, end), history.index)
    if len(history) < MIN_CUSTOMERS:
        raise LTVError(f"{len(history)} customers are too few to train the ML baseline.")
    X, targets = _ml_matrix(history), [purchases.to_numpy(dtype=float), spend.to_numpy(dtype=float)]
    del history
    if len(X) > ML_MAX_TRAIN:  # a fixed random sample of customers: the trees learn as well from it
        keep = np.sort(np.random.default_rng(seed).choice(len(X), ML_MAX_TRAIN, replace=False))
        X, targets = X[keep], [t[keep] for t in targets]
    make = lambda: HistGradientBoostingRegressor(loss="poisson", max_iter=200, learning_rate=0.05,  # noqa: E731
                                                 random_state=seed)
    def fit(target):
        # OpenMP threads sum gradients in varying order, which can flip a split between runs; one
        # thread per model keeps a report's numbers identical when it is rendered again. The limit
        # is the calling thread's own, so the two models are fitted at once, one per thread
        # (4.7 s became 2.6 s for both at 200,000 customers on 2 cores; the same trees, tested).
        with threadpool_limits(1, user_api="openmp"):
            return make().fit(X, target)

    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(2) as pool:
        purchases_model, spend_model = pool.map(fit, targets)
    release_memory()  # the trainers' work arrays and the full features, freed, back to the system
    return MLBaseline(purchases_model, spend_model, float(horizon_days), train_end, len(X))
