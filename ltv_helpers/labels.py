"""Every user-facing label, in English and Chinese, in one place.

``label(key, language)`` returns the text; keys missing a Chinese text fall back to English.
Rejection reasons of :data:`ltv_helpers.data.REASONS` are keys too.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ltv_helpers.schema import LTVError

LANGUAGES = ("en", "zh")

#: Notes the cleaning gives the user (keys of LABELS, with their values filled in by Note).
NOTE_DATES_AMBIGUOUS = (
    "The day/month order of the dates cannot be told from the data (no field is above 12 in {rows:,} rows "
    "such as 1/12/2010); they were read as month/day/year. If the export writes day/month/year, pass "
    "dayfirst=True (--dayfirst), or give date_format=.")
NOTE_DATES_MIXED = (
    "The dates mix two orders ({day_rows:,} rows can only be day/month/year, {month_rows:,} only "
    "month/day/year); they were read as {order}, so the {lost:,} rows that contradict it are rejected as "
    "unparseable dates. Pass dayfirst=True or False (--dayfirst / --monthfirst) or date_format= to choose.")
NOTE_NO_QUANTITY = (
    "There is no quantity column, so each line counts as one item at its unit price; pass "
    "quantity=<column> if the export has one.")
NOTE_ORDER_TIMES = (
    "{orders:,} orders have lines with different timestamps; each order takes the time of its earliest line.")

LABELS: dict[str, dict[str, str]] = {
    # data quality table
    "lines read": {"zh": "读取行数"},
    "lines kept": {"zh": "保留行数"},
    "orders kept": {"zh": "保留订单数"},
    "lines rejected": {"zh": "剔除行数"},
    "Note": {"zh": "注意"},
    # cleaning notes (assumptions stated to the user)
    NOTE_DATES_AMBIGUOUS: {"zh": "无法从数据判断日期的日/月顺序（{rows:,} 行中没有大于 12 的字段，例如 1/12/2010），"
                "已按“月/日/年”读取。如果导出文件写的是“日/月/年”，请设置 dayfirst=True（--dayfirst）"
                "或给出 date_format=。"},
    NOTE_DATES_MIXED: {"zh": "日期混用了两种顺序（{day_rows:,} 行只能是“日/月/年”，{month_rows:,} 行只能是"
                "“月/日/年”）；已按{order}读取，与之矛盾的 {lost:,} 行作为无法解析的日期剔除。请用 "
                "dayfirst=True 或 False（--dayfirst / --monthfirst）或 date_format= 指定。"},
    "day/month/year": {"zh": "“日/月/年”"},
    "month/day/year": {"zh": "“月/日/年”"},
    NOTE_NO_QUANTITY: {"zh": "没有数量列，每行按一件商品、以其单价计算；如果导出文件有数量列，请指定 "
                "quantity=<列名>。"},
    NOTE_ORDER_TIMES: {"zh": "{orders:,} 笔订单的明细行时间不一致；每笔订单取其最早一行的时间。"},
    "customers": {"zh": "客户数"},
    "first order": {"zh": "首笔订单日期"},
    "last order": {"zh": "末笔订单日期"},
    "revenue": {"zh": "销售额"},
    "refunds netted": {"zh": "已冲抵退款"},
    "rejected": {"zh": "剔除"},
    "column": {"zh": "字段"},
    "measure": {"zh": "指标"},
    "value": {"zh": "数值"},
    "rows": {"zh": "行数"},
    "share": {"zh": "占比"},
    "reason": {"zh": "原因"},
    # rejection reasons
    "malformed line": {"zh": "格式错误的行"},
    "missing customer id": {"zh": "缺少客户ID"},
    "missing date": {"zh": "缺少日期"},
    "unparseable date": {"zh": "无法解析的日期"},
    "implausible date": {"zh": "日期不合理"},
    "missing amount": {"zh": "缺少金额"},
    "non-numeric amount": {"zh": "金额不是数字"},
    "missing quantity": {"zh": "缺少数量"},
    "non-numeric quantity": {"zh": "数量不是数字"},
    "missing unit price": {"zh": "缺少单价"},
    "non-numeric unit price": {"zh": "单价不是数字"},
    "date after observation end": {"zh": "日期晚于观察期结束"},
    "zero amount": {"zh": "金额为零"},
    "exact duplicate": {"zh": "完全重复"},
    "order lines disagree on customer": {"zh": "同一订单的明细行客户不一致"},
    "refund": {"zh": "退款"},
    "refund without same-day purchase": {"zh": "退款无当日购买可冲抵"},
    "refund netted into same-day purchase": {"zh": "退款已冲抵当日购买"},
    "fully refunded": {"zh": "已全额退款"},
    # figures
    "month": {"zh": "月份"},
    "new customers": {"zh": "新客户数"},
    "new customers per month": {"zh": "每月新客户数（获客队列）"},
    "orders": {"zh": "订单数"},
    "revenue and orders per month": {"zh": "每月销售额与订单数"},
    "orders per customer": {"zh": "每位客户的订单数"},
    "distribution of orders per customer": {"zh": "客户订单数分布"},
    "share of customers": {"zh": "客户占比"},
    "order value": {"zh": "订单金额"},
    "distribution of order value": {"zh": "订单金额分布"},
    "number of orders": {"zh": "订单数量"},
    # simple LTV table
    "average order value": {"zh": "平均订单金额"},
    "orders per customer per year": {"zh": "每位客户每年订单数"},
    "lifespan (years)": {"zh": "生命周期（年）"},
    "simple LTV": {"zh": "简单LTV"},
    "how it is computed": {"zh": "计算方法"},
    # segmentation
    "segment": {"zh": "RFM细分"},
    "tier": {"zh": "价值分层"},
    "stage": {"zh": "生命周期阶段"},
    "share of revenue": {"zh": "销售额占比"},
    "average orders": {"zh": "平均订单数"},
    "average days since last purchase": {"zh": "距上次购买平均天数"},
    "average predicted CLV": {"zh": "平均预测CLV"},
    "recommended actions": {"zh": "建议动作"},
    "customers and revenue by {group}": {"zh": "各{group}的客户占比与销售额占比"},
    "No customer is in: {groups}.": {"zh": "以下分组没有客户：{groups}。"},
    "share (%)": {"zh": "占比（%）"},
    "R score (recency, 5 = most recent)": {"zh": "R得分（最近购买，5=最近）"},
    "F score (frequency)": {"zh": "F得分（购买频次）"},
    "average spend by R and F score": {"zh": "按R、F得分的平均消费额"},
    "customers by R and F score": {"zh": "按R、F得分的客户数"},
    "Lorenz curve of customer value": {"zh": "客户价值洛伦兹曲线"},
    "cumulative share of customers (%)": {"zh": "累计客户占比（%）"},
    "cumulative share of value (%)": {"zh": "累计价值占比（%）"},
    "equal value": {"zh": "完全平均"},
    "value tier by lifecycle stage (customers)": {"zh": "价值分层 × 生命周期阶段（客户数）"},
    # prediction and evaluation figures
    "predicted CLV": {"zh": "预测CLV"},
    "date": {"zh": "日期"},
    "cumulative": {"zh": "累计"},
    "days": {"zh": "天"},
    "expected purchases": {"zh": "预计购买次数"},
    "Probability that a customer is still active": {"zh": "客户仍然活跃的概率"},
    "P(alive)": {"zh": "P(活跃)"},
    "repeat purchases (frequency)": {"zh": "重复购买次数（频次）"},
    "Distribution of predicted CLV": {"zh": "预测CLV分布"},
    "Purchases (dashed) and probability of being active": {"zh": "购买记录与存活概率"},
    "actual": {"zh": "实际"},
    "repeat purchases in the calibration period": {"zh": "校准期重复购买次数"},
    "mean purchases per customer in the holdout": {"zh": "保留期平均购买次数"},
    "holdout →": {"zh": "保留期 →"},
    "repeat transactions": {"zh": "重复购买次数"},
    "perfect": {"zh": "完美排序"},
    "random": {"zh": "随机"},
    "Cumulative gains of the rankings": {"zh": "累计收益曲线"},
    "customers, ranked by prediction (%)": {"zh": "按预测排序的客户占比（%）"},
    "share of holdout revenue (%)": {"zh": "保留期销售额占比（%）"},
    "T = {T} {unit}": {"zh": "观察期 T = {T} {unit}"},
    "top 20% of customers: {pct}% of value": {"zh": "前 20% 客户：{pct}% 的价值"},
    "Expected purchases in the next {horizon} {unit}": {"zh": "预计未来 {horizon} {unit}的购买次数"},
    "time from first to last purchase, recency ({unit})": {"zh": "首购到末次购买的时间（{unit}）"},
    "{mean}  ({share} of all CLV)": {"zh": "{mean}  ({share} 的总CLV)"},
    "Average predicted CLV per customer by {group}": {"zh": "各{group}的平均预测CLV"},
    "Holdout purchases by calibration-period frequency": {"zh": "按校准期频次的保留期平均购买次数"},
    "per period": {"zh": "每期"},
    "Repeat transactions, {what}: actual and predicted": {"zh": "{what}重复购买：实际与预测"},
    "{model}: predicted vs actual per customer": {"zh": "{model}：预测与实际"},
    "predicted holdout purchases + 0.1 (log scale)": {"zh": "预测保留期购买次数 + 0.1（对数）"},
    "actual holdout purchases + 0.1 (log scale)": {"zh": "实际保留期购买次数 + 0.1（对数）"},
    "weeks": {"zh": "周"},
    "units of {n} days": {"zh": "{n}天单位"},
}


def label(key: str, language: str = "en") -> str:
    """The text for ``key`` in ``language`` ("en" or "zh")."""
    if language not in LANGUAGES:
        raise LTVError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}.")
    if language == "en":
        return key
    return LABELS.get(key, {}).get(language, key)


def translate_index(frame, language: str):
    """A copy of ``frame`` with its index values and column names translated."""
    out = frame.copy()
    out.index = [label(str(k), language) for k in out.index]
    out.index.name = label(str(frame.index.name), language) if frame.index.name else None
    out.columns = [label(str(c), language) for c in out.columns]
    return out


@dataclass(frozen=True)
class Note:
    """A sentence for the user kept as a :data:`LABELS` template and its values, so it can be
    shown in any language; ``str(note)`` is the English sentence.

    >>> Note(NOTE_ORDER_TIMES, {"orders": 2}).text("zh")
    '2 笔订单的明细行时间不一致；每笔订单取其最早一行的时间。'
    """

    key: str
    values: dict = field(default_factory=dict)

    def text(self, language: str = "en") -> str:
        values = {k: label(v, language) if isinstance(v, str) else v for k, v in self.values.items()}
        return label(self.key, language).format(**values)

    def __str__(self) -> str:
        return self.text("en")
