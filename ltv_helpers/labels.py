"""Every user-facing label, in English and Chinese, in one place.

``label(key, language)`` returns the text; keys missing a Chinese text fall back to English. A key
is the English text itself, or a raw name (a column such as ``total_error_pct``, a model such as
``bgnbd``) with its human English text under ``"en"``.
Rejection reasons of :data:`ltv_helpers.data.REASONS` are keys too.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field

from ltv_helpers.schema import LTVError

LANGUAGES = ("en", "zh")

#: Notes the cleaning gives the user (keys of LABELS, with their values filled in by Note).
NOTE_DATES_AMBIGUOUS = (
    "The day/month order of the dates cannot be told from the data (no field is above 12 in {rows:,} rows "
    "such as 1/12/2010); they were read as month/day/year. If the export writes day/month/year, pass "
    "{dayfirst}, or give {date_format}.")
NOTE_DATES_MIXED = (
    "The dates mix two orders ({day_rows:,} rows can only be day/month/year, {month_rows:,} only "
    "month/day/year); they were read as {order}, so the {lost:,} rows that contradict it are rejected as "
    "unparseable dates. Pass {dayfirst} or {monthfirst}, or {date_format}, to choose.")
NOTE_NO_QUANTITY = (
    "There is no quantity column, so each line counts as one item at its unit price; pass "
    "{quantity} if the export has one.")
NOTE_ORDER_TIMES = (
    "{orders:,} orders have lines with different timestamps; each order takes the time of its earliest line.")
NOTE_ENCODING = ("{file} is not UTF-8 text; it was read as {encoding}, which fits its bytes best. If the "
                 "names look wrong, pass the right encoding, e.g. {option}.")
NOTE_OTHER_SHEETS = ("{file} has more sheets than the one read ({first}): {others}. Pass {option} to stack "
                     "the sheets that have the same columns, or name the sheet to read.")
NOTE_SHEETS_STACKED = ("The sheets of {file} with the same columns were stacked: {sheets}. Sheets with other "
                       "columns were left out: {skipped}.")
NOTE_COLUMN_CHOICE = (
    "Several columns could hold the {role}: {used} was used; also found: {others}. Pass {option} to use "
    "another.")
NOTE_COLUMN_TWICE = (
    "The header names {column} twice; the first one is used as the {role}. Pass {option} to use the second.")
NOTE_DUPLICATES_KEPT = (
    "{rows:,} lines repeat another line exactly; without an order id two identical lines can be two real "
    "orders, so they are kept. Pass {option} if the export repeats lines.")
NOTE_ZERO_KEPT = (
    "{rows:,} lines have an amount of zero (free items, vouchers); they are kept as purchases, since a visit "
    "counts for the purchase models. Pass {option} to drop them.")
NOTE_DECIMAL_COMMA = (
    "The {column} column writes amounts with a decimal comma (e.g. {example}); they were read that way. Pass "
    "{option} if that is wrong.")
NOTE_DECIMAL_MIXED = (
    "The {column} column mixes decimal commas and decimal points (e.g. {comma} and {dot}); each value was read "
    "by its own form, and the {rows:,} lines such as {example} that could be either are rejected as ambiguous "
    "amounts. Pass {comma_option} or {dot_option} to read them one way.")

#: Why a report has no forecast (evaluation.forecast_blocker), and what would allow one.
NO_FORECAST_CUSTOMERS = ("The purchase models need at least {needed} customers to learn how often customers buy "
                         "and when they stop; the data hold {customers}.")
NO_FORECAST_SPAN = ("All orders fall on one day, so there is no history to learn repeat buying from and no "
                    "later period to check a forecast against.")
NO_FORECAST_REPEAT = ("Only {repeat} customers bought on more than one day; the purchase models need at least "
                      "{needed} repeat buyers to learn how often customers come back.")
NO_FORECAST_CALIBRATION = ("Only {repeat} customers bought on more than one day before {calibration_end}, the "
                           "first two thirds of the history, which the forecast is checked on; at least {needed} "
                           "are needed.")
NO_FORECAST_WHAT = ("A forecast needs repeat buyers over a history long enough to hold its last third back for "
                    "a check: a longer export, or all channels of the client together. If the export gives each "
                    "order its own customer id, map the orders to their customers (a member id, a phone "
                    "number's pseudonym: the OneID step) and render the report again.")
LIFESPAN_FROM_CHURN = ("1 / yearly churn; {churn} of the {customers} customers acquired a year or more before "
                       "the end bought nothing in the last 365 days")
#: Header lines of the notebooks (client, data and settings).
HEADER_COLLECTION = "Client: **{client}** · currency: {currency}"
HEADER_SEGMENTATION = "Client: **{client}** · {customers} customers · data to {end}"
HEADER_PREDICTION = ("Client: **{client}** · {customers} customers · data to {end} · horizon {months} months · "
                     "discount {rate} a year · gross margin {margin}")
HEADER_MODEL_CHOICE = "Holdout from {start} to {end}. Model used: **{model}**."
#: The header's gross margin when none was given: the CLV columns are then discounted revenue.
NO_MARGIN = "not given, so CLV here is discounted expected revenue (CLV = it x margin)"
#: How the forecast's model is chosen among the fitted ones (``BacktestResult.choose``).
CHOICE_RULE = ("The model is chosen on the holdout by one charge per model: how much larger its error per "
               "customer is than the best model's, in percent, plus how far its total missed, in percent. "
               "The lowest charge wins, so a model that ranks customers slightly better but gets the total "
               "wrong does not.")
#: The forecast interval in plain words (``evaluation.interval_note``).
INTERVAL_NOTE = ("The 90% intervals allow for three things: the model's parameters are estimates "
                 "(about ±{parameters} on total purchases), individual customers are lucky or not "
                 "(±{customers}), and the model itself is wrong in ways it cannot see, such as a changing "
                 "market (±{model}). The last part is measured on this client's own history: the same model, "
                 "fitted at {cutoffs} earlier cut-offs, forecast the totals that followed with errors of {misses} "
                 "(a minus: too low). The three "
                 "are combined; one forecast in ten may still fall outside.")
INTERVAL_NOTE_UNMEASURED = ("The 90% intervals allow for the uncertainty of the model's parameters (about "
                            "±{parameters} on total purchases) and the luck of individual customers "
                            "(±{customers}) only: {reason}, so how far the model itself is wrong could not be "
                            "measured. Real forecasts usually miss by more; read the interval as a lower bound "
                            "of the uncertainty.")
VERDICT_INTERVAL = ("Its 90% interval, made from the calibration period alone, was {low} to {high}: the actual "
                    "total {inside}.")
HEADER_EVALUATION = ("Client: **{client}** · calibration to {start} · holdout to {end} ({days} days) · "
                     "{customers} customers")

#: The run line of the report's footer.
RUN_STAMP = "folder {folder}, started {started}, computed in {seconds} s"
#: The appendix's glossary: each term the report uses, in plain words (English, Chinese).
GLOSSARY = (
    (("calibration period", "校准期"),
     ("the earlier part of the history a model is fitted on when it is tested", "检验模型时用来拟合模型的较早一段历史")),
    (("holdout period", "保留期"),
     ("the later part of the history kept from the model, to compare its forecast with what happened",
      "检验时不给模型看的较晚一段历史，用来比较预测与实际")),
    (("repeat-purchase model", "复购模型"),
     ("a model of how often each customer buys and how likely they have stopped (BG/NBD, MBG/NBD and "
      "Pareto/NBD are three such models)", "刻画每位客户购买频率以及已经流失的可能性的模型（BG/NBD、MBG/NBD 和 Pareto/NBD 是其中三种）")),
    (("spend model", "消费模型"),
     ("a model of how much a customer spends per order (Gamma-Gamma), kept apart from how often they buy",
      "刻画客户每笔订单消费多少的模型（Gamma-Gamma），与购买频率分开建模")),
    (("probability still active", "仍活跃的概率"),
     ("the model's probability that a customer has not stopped buying for good", "模型给出的客户尚未永久停止购买的概率")),
    (("CLV", "CLV"),
     ("customer lifetime value: expected purchases x expected order value x gross margin, discounted, over the "
      "forecast horizon", "客户终身价值：预测期内预计购买次数 × 预计客单价 × 毛利率，并折现")),
    (("recency", "最近购买"),
     ("days since a customer's last purchase (the R in RFM)", "距离客户最后一次购买的天数（RFM 中的 R）")),
    (("time from first to last purchase", "首购到末次购买的时间"),
     ("what the repeat-purchase models use instead of recency", "复购模型使用的量，代替最近购买")),
    (("frequency", "购买频次"),
     ("the number of purchase days after the first (repeat purchases)", "首购之后的购买天数（重复购买次数）")),
    (("90% interval", "90% 区间"),
     ("the range the total should fall in nine times out of ten, counting the uncertainty of the parameters, "
      "the luck of individual customers and the model's own error measured on this client's history",
      "十次中有九次总量应落在其中的范围，计入参数的不确定性、个别客户的偶然性以及在本客户历史上测得的模型误差")),
    (("mean absolute error", "平均绝对误差"),
     ("the average, over customers, of the gap between predicted and actual purchases", "各客户预测购买次数与实际之差的平均值")),
    (("Gini", "基尼系数"),
     ("how unequal customer value is: 0 when everyone is worth the same, 1 when one customer holds everything",
      "客户价值的不均衡程度：人人相同为 0，一位客户占有全部为 1")),
)
#: Said under a table whose groups of recent starters are empty, and whose other groups are.
EMPTY_RECENT = ("No customer is in {groups}: these groups hold customers who started buying recently, and in "
                "these data no customer did; the table leaves them out.")
EMPTY_OTHER = "No customer is in {groups}; the table leaves them out."
#: Why a score level has no customer (equal values get equal scores).
SCORE_GAP = ("No customer has {score} score {levels}: the {count} customers ({share}) with the same value "
             "({what} {value}) all get score {below}, since equal values get equal scores, and they fill more than "
             "one level.")
#: A fit in the stability table whose parameters ran to the edge, explained.
EDGE_FIT = ("At the cut-off of {cutoff}, the {model} fit ran to the edge of its parameters ({values}): {meaning}"
            "Such a fit can still forecast well, which its row shows; its parameters are not to be read as "
            "properties of the customers.")
#: The stability table measured on a sample of the customers (a large base).
STABILITY_SAMPLE = ("The table is measured on {measured} of the {everyone} customers who had bought by its last "
                    "cut-off (chosen by their ids, not by what they bought; at the earlier cut-offs, those of them "
                    "who had arrived), so its numbers differ a little from the backtest above, which has every "
                    "customer: whether the parameters and errors move over time shows as well in so many "
                    "customers, at a fraction of the time.")
#: What running to the edge means, per model (and parameters).
EDGE_MEANING = {
    "pareto_nbd": "the history before it showed too little dropout to estimate it, so the model treats "
                  "customers as almost never leaving. ",
    "bgnbd": "the history before it showed too little dropout after purchases to estimate it, so the model "
             "treats customers as almost never leaving (BG/NBD then becomes a model without dropout). ",
    "mbgnbd": "the history before it showed too little dropout after purchases to estimate it, so the model "
              "treats customers as almost never leaving. ",
    "ggomnbd": "the history before it showed no change of the dropout risk with the customers' age, so the model "
               "is Pareto/NBD's (a constant risk) and b and beta only count through their ratio. ",
}
#: The lowest point of one customer's probability still active, explained.
ALIVE_DIP = ("The probability fell to {p} on {date}, after {gap} days without a purchase, while this customer "
             "bought every {mean_gap} days on average: for them a silence that long was rare, so the model "
             "doubted they were still active.")
ALIVE_DIP_BACK = " The next purchase, on {next}, restored it."
#: The ML baseline's total set against the model's and the last window's.
ML_COMPARISON = ("Gradient boosting expects {ml} purchases, {vs_model} the {model_name} forecast and "
                 "{vs_past} the {past} purchases of the last {months} months. It learned how customers of each "
                 "profile bought in the {months} months before that{younger}; the purchase model instead lets "
                 "each customer drop out as they age. The backtest in the evaluation section shows which was "
                 "closer on unseen data.")
ML_YOUNGER = (", when the customers were {months} months younger and many had only just made their first "
              "purchase")
#: The first lines of the report's technical appendix.
APPENDIX_INTRO = ("For technical readers: data-quality detail, how the model was chosen and its parameters, "
                  "diagnostics and backtests. The findings in the body do not depend on reading it.")

#: Findings of the report's summary page (filled in by ltv_helpers.findings).
FINDING_CONCENTRATION = ("The top 20% of customers brought {top20} of all revenue; the {high} high-value "
                         "customers alone ({high_share} of customers) brought {high_revenue}.")
FINDING_ONE_TIME = ("{one_time} of customers bought only once, so winning a second purchase is the first "
                    "lever for lifetime value.")
FINDING_CHURN_RISK = ("{risk} customers who spent at or above the median have gone quiet (churn risk); they "
                      "brought {risk_revenue} of revenue, so win-back offers to them come first.")
FINDING_FORECAST = ("Over the next {months} months the current customers are expected to buy {purchases} "
                    "times for {revenue} (90% interval {low} to {high}), {change} the {past} of the last "
                    "{months} months.")
FINDING_MODEL_BETTER = ("On the last {holdout} days of history, which it had not seen, the {model} forecast "
                        "missed by {mae} purchases per customer, {gain} less than the best simple baseline, "
                        "{baseline}; its total forecast was {error}.")
FINDING_MODEL_WORSE = ("On the last {holdout} days of history the {model} forecast missed by {mae} purchases "
                       "per customer, no better than the simple baseline {baseline}: read the forecast "
                       "with caution.")

#: "Since the last report" (ltv_helpers.monitoring): the last forecast, tier migrations, the watch list.
MONITORING_HEADER = ("Last report: run {run}, data to {before} · this report: data to {end} · {days} days "
                     "between them · money in {currency}")
MONITORING_CHECK = ("From {start} to {end} the last report expected its {customers} customers to buy on {predicted} "
                    "days (90% interval {low} to {high}); they bought on {actual}, {verdict}. It expected "
                    "{revenue} of revenue ({revenue_low} to {revenue_high}); they spent {revenue_actual}.")
MONITORING_NEW = ("{new} customers bought for the first time in these days ({revenue}); they are not in the check, "
                  "which is of the last forecast, made for the customers of the time.")
MONITORING_UNMEASURED = ("The last report could not measure its model's error on its own history, so these "
                         "intervals allow for the parameters and the customers' luck only.")
MIGRATION_NOTE = ("Customers by their tier in the last report (rows) and in this one (columns); {kept} of the "
                  "{both} customers in both kept their tier, and {high_kept} of the {high} high-value customers "
                  "are still high value.")
WATCH_NOTE = ("{count} customers were high value in the last report and their probability of being active has "
              "fallen below {threshold} since; the last report counted on {value} from them over its horizon. "
              "The {shown} with most at stake are listed under pseudonyms; the full list, with customer ids, "
              "is the watch-list file delivered to the CRM team.")
WATCH_NONE = ("No customer who was high value in the last report has fallen below a probability of being active "
              "of {threshold} since.")
WATCH_NO_FORECAST = ("This run has no forecast, so there are no new probabilities of being active to watch; the "
                     "watch list waits for the next report with one.")
NO_BASELINE = ("There is no earlier run of this client to check: the next report rendered into this client's "
               "folder checks this one.")
FINDING_MONITORING = ("The last report (data to {before}) expected its customers to buy on {predicted} days by "
                      "{end}; they bought on {actual}, {verdict}.")
FINDING_WATCH = " {watch} of its high-value customers are slipping away (the watch list)."

#: "Channels and acquisition" (ltv_helpers.channels).
CHANNEL_NOTE = ("Realised value: revenue per customer in the 365 days from the first order, for the customers acquired at least a year before {end}. "
                "Predicted value: CLV per customer over the next {months} months, with its 90% interval.")
CHANNEL_COSTS = ("CAC: acquisition spend per new customer in the cost table's months. LTV/CAC: (realised "
                 "first-year value x gross margin + predicted value) / CAC, with the predicted value's interval. "
                 "Payback: the months of first-year value x gross margin that add up to the CAC. LTV/CAC and payback "
                 "show – for customers acquired less than a year ago (their first year is not seen yet); payback "
                 "also when the first year does not add up to the CAC.")
CHANNEL_NO_COSTS = ("No acquisition costs were given, so the table shows value only; with the spend (or the cost "
                    "per new customer) per channel and month it adds CAC, LTV/CAC and payback.")
CHANNEL_COST_MONTHS = ("The cost table has no spend for: {channels}; their CAC and LTV/CAC stay empty.")
NEW_VALUE_NOTE = ("Value of a new customer: what a customer who has just made a first order is worth over the "
                  "next {months} months, from the model refitted with the channel as a covariate (each channel its "
                  "own purchase and dropout rates).")
NEW_VALUE_ONE = ("Value of a new customer: the model's one value for every channel, since a fit with the channel "
                 "as a covariate was not possible here ({reason})")
NO_CHANNEL = ("The data have no channel column, so customers cannot be split by the channel that brought them; "
              "pass --channel <column> when the export has one.")
FINDING_CHANNEL = ("Customers acquired through {channel} return {ratio} times their acquisition cost (90% "
                   "interval {low} to {high}), clearly below the other channels, whose LTV/CAC is {others}.")

LABELS: dict[str, dict[str, str]] = {
    # data quality table
    "lines read": {"zh": "读取行数"},
    "lines kept": {"zh": "保留行数"},
    "orders kept": {"zh": "保留订单数"},
    "lines rejected": {"zh": "剔除行数"},
    "Note": {"zh": "注意"},
    # cleaning notes (assumptions stated to the user)
    NOTE_DATES_AMBIGUOUS: {"zh": "无法从数据判断日期的日/月顺序（{rows:,} 行中没有大于 12 的字段，例如 1/12/2010），"
                "已按“月/日/年”读取。如果导出文件写的是“日/月/年”，请设置 {dayfirst}"
                "或给出 {date_format}。"},
    NOTE_DATES_MIXED: {"zh": "日期混用了两种顺序（{day_rows:,} 行只能是“日/月/年”，{month_rows:,} 行只能是"
                "“月/日/年”）；已按{order}读取，与之矛盾的 {lost:,} 行作为无法解析的日期剔除。请用 "
                "{dayfirst} 或 {monthfirst}，或 {date_format} 指定。"},
    "day/month/year": {"zh": "“日/月/年”"},
    "month/day/year": {"zh": "“月/日/年”"},
    NOTE_NO_QUANTITY: {"zh": "没有数量列，每行按一件商品、以其单价计算；如果导出文件有数量列，请指定 "
                "{quantity}。"},
    NOTE_ORDER_TIMES: {"zh": "{orders:,} 笔订单的明细行时间不一致；每笔订单取其最早一行的时间。"},
    NOTE_ENCODING: {"zh": "{file} 不是 UTF-8 文本；已按最符合其字节的 {encoding} 读取。如果文字显示不对，请传入正确的编码，例如 {option}。"},
    NOTE_OTHER_SHEETS: {"zh": "{file} 除了已读取的工作表（{first}）之外还有：{others}。传入 {option} 可把列相同的工作表合并读取，或指定要读取的工作表。"},
    NOTE_SHEETS_STACKED: {"zh": "{file} 中列相同的工作表已合并读取：{sheets}。列不同而未读取的工作表：{skipped}。"},
    NOTE_COLUMN_CHOICE: {"zh": "有多列可能是{role}：采用了 {used}；另有：{others}。如需换用，请传入 {option}。"},
    NOTE_COLUMN_TWICE: {"zh": "表头中 {column} 出现了两次；第一列用作{role}。如需使用第二列，请传入 {option}。"},
    NOTE_DUPLICATES_KEPT: {"zh": "有 {rows:,} 行与另一行完全相同；没有订单号时，两行相同也可能是两笔真实订单，因此予以保留。"
                                 "如果导出文件会重复行，请传入 {option}。"},
    NOTE_ZERO_KEPT: {"zh": "有 {rows:,} 行金额为零（赠品、代金券）；它们作为购买保留，因为一次到访对购买模型也算数。"
                           "传入 {option} 可剔除它们。"},
    NOTE_DECIMAL_COMMA: {"zh": "{column} 列的金额使用逗号作小数点（例如 {example}），已按此读取。"
                               "如有误，请传入 {option}。"},
    NOTE_DECIMAL_MIXED: {"zh": "{column} 列混用了小数逗号和小数点（例如 {comma} 和 {dot}）；每个值按其自身写法读取，"
                               "像 {example} 这样两种读法都可能的 {rows:,} 行作为含义不明的金额剔除。"
                               "传入 {comma_option} 或 {dot_option} 可统一读法。"},
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
    "missing customer id: merged cell": {"zh": "缺少客户ID：合并单元格（请取消合并并向下填充）"},
    "missing customer id: formula not calculated": {"zh": "缺少客户ID：公式未计算（请在 Excel 中打开并保存）"},
    "missing date: merged cell": {"zh": "缺少日期：合并单元格（请取消合并并向下填充）"},
    "missing date: formula not calculated": {"zh": "缺少日期：公式未计算（请在 Excel 中打开并保存）"},
    "missing amount: merged cell": {"zh": "缺少金额：合并单元格（请取消合并并向下填充）"},
    "missing amount: formula not calculated": {"zh": "缺少金额：公式未计算（请在 Excel 中打开并保存）"},
    "missing date": {"zh": "缺少日期"},
    "unparseable date": {"zh": "无法解析的日期"},
    "implausible date": {"zh": "日期不合理"},
    "missing amount": {"zh": "缺少金额"},
    "non-numeric amount": {"zh": "金额不是数字"},
    "ambiguous amount": {"zh": "金额含义不明（小数点或千位分隔符）"},
    "implausible amount": {"zh": "金额不合理（过大）"},
    "missing quantity": {"zh": "缺少数量"},
    "non-numeric quantity": {"zh": "数量不是数字"},
    "missing unit price": {"zh": "缺少单价"},
    "non-numeric unit price": {"zh": "单价不是数字"},
    "kept": {"zh": "保留"},
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
    "order amount": {"en": "order value", "zh": "订单金额"},
    "distribution of order value": {"zh": "订单金额分布"},
    "number of orders": {"zh": "订单数量"},
    "log scale": {"zh": "对数坐标"},
    "median": {"zh": "中位数"},
    "mean": {"zh": "平均数"},
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
    EMPTY_RECENT: {"zh": "{groups}没有客户：这些分组只包含最近才开始购买的客户，而这份数据中没有这样的客户；表中不列出它们。"},
    EMPTY_OTHER: {"zh": "{groups}没有客户，表中不列出它们。"},
    SCORE_GAP: {"zh": "没有客户的 {score} 得分为 {levels}：数值相同（{what} {value}）的 {count} 位客户（{share}）"
                      "都得到 {below} 分，因为相同的数值得到相同的得分，他们占满了不止一个得分档。"},
    "repeat purchases": {"zh": "重复购买次数"},
    "days since the last purchase": {"zh": "距上次购买天数"},
    "total spend": {"zh": "总消费额"},
    STABILITY_SAMPLE: {"zh": "该表基于最后一个截止日期前已购买的 {everyone} 位客户中的 {measured} 位计算（按客户编号选出，"
                             "与其购买行为无关；在更早的截止日期，是其中当时已到来的客户），因此其数字与上面基于全部客户的回测"
                             "略有不同：参数和误差是否随时间变化，在这么多客户身上同样看得出，耗时却只是一小部分。"},
    EDGE_FIT: {"zh": "在截止日期 {cutoff}，{model} 的拟合参数到达了参数空间的边界（{values}）：{meaning}"
                     "这样的拟合仍可能预测得不错（见该行）；但其参数不宜解读为客户的特征。"},
    EDGE_MEANING["pareto_nbd"]: {"zh": "此前的历史显示的流失太少，无法估计流失率，模型因此把客户视为几乎不会离开。"},
    EDGE_MEANING["bgnbd"]: {"zh": "此前的历史显示购买后的流失太少，无法估计，模型因此把客户视为几乎不会离开"
                                  "（此时 BG/NBD 变为没有流失的模型）。"},
    EDGE_MEANING["mbgnbd"]: {"zh": "此前的历史显示购买后的流失太少，无法估计，模型因此把客户视为几乎不会离开。"},
    EDGE_MEANING["ggomnbd"]: {"zh": "此前的历史显示流失风险不随客户年龄变化，模型因此等同于 Pareto/NBD（风险恒定），"
                                    "b 与 beta 只有二者之比有意义。"},
    ALIVE_DIP: {"zh": "{date} 这一概率降到 {p}：此前已有 {gap} 天没有购买，而该客户平均每 {mean_gap} 天购买一次；"
                      "对这位客户来说这么长的沉默很少见，所以模型怀疑其是否仍然活跃。"},
    ALIVE_DIP_BACK: {"zh": "下一次购买（{next}）使概率恢复。"},
    ML_COMPARISON: {"zh": "梯度提升预计购买 {ml} 次，比 {model_name} 的预测{vs_model}，比最近 {months} 个月的 "
                          "{past} 次购买{vs_past}。它学习的是每类客户在此前 {months} 个月中的购买表现{younger}；复购模型"
                          "则让每位客户随着时间推移可能流失。评估部分的回测显示哪一个在未见过的数据上更接近。"},
    "{pct} more than": {"zh": "多 {pct}"},
    "less than 1%": {"zh": "不到 1%"},
    "the export": {"zh": "导出文件"},
    "{pct} fewer than": {"zh": "少 {pct}"},
    ML_YOUNGER: {"zh": "，那时客户们年轻 {months} 个月，许多人刚刚完成首次购买"},
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
    "P(alive)": {"en": "probability still active", "zh": "仍活跃的概率"},
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
    "Expected purchases in the next {months} months": {"zh": "预计未来 {months} 个月的购买次数"},
    "time from first to last purchase ({unit})": {"zh": "首购到末次购买的时间（{unit}）"},
    "{mean}  ({share} of all CLV)": {"zh": "{mean}  ({share} 的总CLV)"},
    "Average predicted CLV per customer by {group}": {"zh": "各{group}的平均预测CLV"},
    "Holdout purchases by calibration-period frequency": {"zh": "按校准期频次的保留期平均购买次数"},
    "per period": {"zh": "每期"},
    "Repeat transactions, {what}: actual and predicted": {"zh": "{what}重复购买：实际与预测"},
    "{model}: predicted vs actual per customer": {"zh": "{model}：预测与实际"},
    "predicted holdout purchases": {"zh": "预测保留期购买次数"},
    "actual holdout purchases": {"zh": "实际保留期购买次数"},
    "top 20%: {pct}%": {"zh": "前20%：{pct}%"},
    "weeks": {"zh": "周"},
    "units of {n} days": {"zh": "{n}天单位"},
    # table columns and index values: raw names get a human English label ("en") and a Chinese one
    "role": {"zh": "角色"},
    "source column": {"zh": "源字段"},
    "customer_id": {"en": "customer id", "zh": "客户ID"},
    "order_date": {"en": "order date", "zh": "订单日期"},
    "amount": {"zh": "金额"},
    "customer id": {"zh": "客户ID"},
    "order date": {"zh": "订单日期"},
    "order_id": {"en": "order id", "zh": "订单号"},
    "quantity": {"zh": "数量"},
    "unit_price": {"en": "unit price", "zh": "单价"},
    "model": {"zh": "模型"},
    "metric": {"zh": "指标"},
    "group": {"zh": "分组"},
    "parameter": {"zh": "参数"},
    "standard error": {"zh": "标准误"},
    "file": {"zh": "文件"},
    "cutoff": {"zh": "截止日期"},
    "calibration frequency": {"zh": "校准期购买频次"},
    "all customers": {"zh": "全部客户"},
    "bgnbd": {"en": "BG/NBD", "zh": "BG/NBD"},
    "mbgnbd": {"en": "MBG/NBD", "zh": "MBG/NBD"},
    "pareto_nbd": {"en": "Pareto/NBD", "zh": "Pareto/NBD"},
    "ggomnbd": {"en": "GGompertz/NBD", "zh": "GGompertz/NBD"},
    "bgbb": {"en": "BG/BB", "zh": "BG/BB"},
    "naive": {"en": "naive (past rate continues)", "zh": "朴素外推（延续过去的购买率）"},
    "rfm": {"en": "RFM score ranking", "zh": "RFM得分排序"},
    "simple_formula": {"en": "simple LTV formula", "zh": "简单LTV公式"},
    "ml": {"en": "gradient boosting", "zh": "梯度提升模型"},
    "gradient boosting": {"zh": "梯度提升模型"},
    "{model} + Gamma-Gamma": {"zh": "{model} + Gamma-Gamma"},
    "mae": {"en": "mean absolute error", "zh": "平均绝对误差"},
    "rmse": {"en": "root-mean-square error", "zh": "均方根误差"},
    "predicted": {"en": "predicted purchases", "zh": "预测购买次数"},
    "predicted_low": {"en": "predicted purchases, 90% low", "zh": "预测购买次数 90% 下限"},
    "predicted_high": {"en": "predicted purchases, 90% high", "zh": "预测购买次数 90% 上限"},
    "inside": {"en": "actual inside the interval", "zh": "实际值在区间内"},
    "yes": {"zh": "是"},
    "no": {"zh": "否"},
    "charge": {"en": "charge (choice rule)", "zh": "扣分（选择规则）"},
    "actual purchases": {"zh": "实际购买次数"},
    "total_error_pct": {"en": "total error", "zh": "总量偏差"},
    "correlation": {"zh": "相关系数"},
    "spend_mae": {"en": "spend: mean absolute error", "zh": "消费额：平均绝对误差"},
    "spend_total_error_pct": {"en": "spend: total error", "zh": "消费额：总量偏差"},
    "spend_spearman": {"en": "spend: rank correlation", "zh": "消费额：秩相关"},
    "top10_capture": {"en": "revenue of the top 10%", "zh": "前10%客户的销售额占比"},
    "top20_capture": {"en": "revenue of the top 20%", "zh": "前20%客户的销售额占比"},
    "gains_gini": {"en": "Gini of the gains curve", "zh": "收益曲线基尼系数"},
    "top20_precision": {"en": "precision of the top 20%", "zh": "前20%命中率"},
    "log_likelihood": {"en": "log-likelihood", "zh": "对数似然"},
    "bic": {"en": "BIC (lower is better)", "zh": "BIC（越小越好）"},
    "expected_purchases": {"en": "expected purchases", "zh": "预计购买次数"},
    "purchases_low": {"en": "purchases, 90% low", "zh": "购买次数 90%下限"},
    "purchases_high": {"en": "purchases, 90% high", "zh": "购买次数 90%上限"},
    "expected_revenue": {"en": "expected revenue", "zh": "预计销售额"},
    "expected revenue": {"zh": "预计销售额"},
    "revenue_low": {"en": "revenue, 90% low", "zh": "销售额 90%下限"},
    "revenue_high": {"en": "revenue, 90% high", "zh": "销售额 90%上限"},
    "clv": {"en": "CLV", "zh": "CLV"},
    "clv_low": {"en": "CLV, 90% low", "zh": "CLV 90%下限"},
    "clv_high": {"en": "CLV, 90% high", "zh": "CLV 90%上限"},
    "p_alive": {"en": "probability still active", "zh": "仍活跃的概率"},
    "expected_spend": {"en": "expected order value", "zh": "预计客单价"},
    "r": {"en": "r", "zh": "r"},
    "top {share}": {"zh": "前 {share}"},
    # simple LTV explanations and notebook header lines
    "given by the consultant": {"zh": "由顾问给定"},
    LIFESPAN_FROM_CHURN: {"zh": "1 / 年流失率；在观察期结束前一年或更早获得的 {customers} 位客户中，{churn} 在最近 365 天内"
                                "没有购买"},
    "observed span of the data (less than a year of history: a lower bound)": {
        "zh": "数据覆盖的时间跨度（历史不足一年：为下限）"},
    "revenue / orders": {"zh": "销售额 / 订单数"},
    "orders / customer-years observed since first purchase": {"zh": "订单数 / 自首购以来观察到的客户年数"},
    "AOV x frequency x lifespan": {"zh": "平均订单金额 × 频次 × 生命周期"},
    "not checked on the holdout": {"zh": "未经保留期检验"},
    "Why there is no forecast": {"zh": "为何没有预测"},
    "Data to {end} · {customers} customers · money in {currency} · no forecast": {
        "zh": "数据截至 {end} · {customers} 位客户 · 货币单位 {currency} · 无预测"},
    NO_FORECAST_CUSTOMERS: {"zh": "购买模型至少需要 {needed} 位客户，才能学习客户的购买频率和流失时间；数据中只有 {customers} 位。"},
    NO_FORECAST_SPAN: {"zh": "所有订单都在同一天，既没有可供学习复购的历史，也没有可用于检验预测的后续时期。"},
    NO_FORECAST_REPEAT: {"zh": "只有 {repeat} 位客户在不止一天购买过；购买模型至少需要 {needed} 位复购客户，才能学习客户多久回购一次。"},
    NO_FORECAST_CALIBRATION: {"zh": "在 {calibration_end} 之前（即用于检验预测的前三分之二历史），只有 {repeat} 位客户在不止一天购买过；"
                                    "至少需要 {needed} 位。"},
    NO_FORECAST_WHAT: {"zh": "预测需要复购客户，且历史足够长，可以留出最后三分之一用于检验：请提供更长时间的导出，或合并客户所有渠道的数据。"
                             "如果导出文件为每笔订单单独生成客户 ID，请先把订单映射到对应客户（会员 ID、手机号的假名：即 OneID 步骤），再重新生成报告。"},
    HEADER_COLLECTION: {"zh": "客户：**{client}** · 货币：{currency}"},
    HEADER_SEGMENTATION: {"zh": "客户：**{client}** · {customers} 位客户 · 数据截至 {end}"},
    HEADER_PREDICTION: {"zh": "客户：**{client}** · {customers} 位客户 · 数据截至 {end} · 预测期 {months} 个月 · "
                              "年折现率 {rate} · 毛利率 {margin}"},
    HEADER_MODEL_CHOICE: {"zh": "保留期：{start} 至 {end}。采用的模型：**{model}**。"},
    CHOICE_RULE: {"zh": "模型按保留期上的一个扣分选出：它的单客户误差比最优模型高出的百分比，加上它的总量偏差的百分比。"
                        "扣分最低者胜出：排序略好但总量错得多的模型不会被选中。"},
    INTERVAL_NOTE: {"zh": "90% 区间考虑了三件事：模型参数是估计值（总购买次数约 ±{parameters}），单个客户有运气好坏"
                          "（±{customers}），以及模型自身看不到的偏差，例如市场变化（±{model}）。最后一项在该客户自己的历史上测得："
                          "同一模型在 {cutoffs} 个更早的截止日期拟合，对其后总量的预测偏差为 {misses}（负号表示预测偏低）。三者合并计算；"
                          "仍有约十分之一的预测会落在区间之外。"},
    INTERVAL_NOTE_UNMEASURED: {"zh": "90% 区间只考虑了模型参数的不确定性（总购买次数约 ±{parameters}）和单个客户的运气"
                                     "（±{customers}）：{reason}，因此无法测量模型自身的偏差。真实预测的偏差通常更大；"
                                     "请把该区间视为不确定性的下限。"},
    VERDICT_INTERVAL: {"zh": "仅用校准期做出的 90% 区间为 {low} 至 {high}：实际总量{inside}。"},
    "fell inside it": {"zh": "落在区间内"},
    "fell outside it": {"zh": "落在区间外"},
    "the history is too short to backtest at two earlier cut-offs": {"zh": "历史太短，无法在两个更早的截止日期做回测"},
    HEADER_EVALUATION: {"zh": "客户：**{client}** · 校准期截至 {start} · 保留期截至 {end}（{days} 天） · {customers} 位客户"},
    # lessons
    "LTV, {years} years": {"zh": "{years} 年 LTV"},
    "LTV, forever": {"zh": "永续 LTV"},
    "yearly retention": {"zh": "年留存率"},
    "{shown} of {total} customers: a random sample and the largest": {"zh": "{total} 位客户中的 {shown} 位：随机样本加上最大值"},
    # lessons 2 and 7: figures
    "LTV grows faster than retention": {"zh": "LTV 比留存率增长得更快"},
    "Net value of each lever, by tier": {"zh": "各分层每个杠杆的净价值"},
    "net value": {"zh": "净价值"},
    "simple: forever, nobody leaves": {"zh": "简单版：永续、无人流失"},
    "5 years; payback with churn and discounting": {"zh": "5 年；回收期计入流失和折现"},
    "payback (months)": {"zh": "回收期（月）"},
    # lesson 6: subscription cohorts
    "projection →": {"zh": "预测 →"},
    "Share of the cohort still active": {"zh": "队列中仍然活跃的比例"},
    "period (year)": {"zh": "期（年）"},
    "still active": {"zh": "仍然活跃"},
    "Retention rises with tenure": {"zh": "留存率随客龄上升"},
    "retention rate": {"zh": "留存率"},
    "cohort": {"zh": "队列"},
    "months since joining": {"zh": "加入后月数"},
    # lesson 4: customers compared
    "bought a month ago": {"zh": "上个月还买过"},
    "silent for ten months": {"zh": "沉默了十个月"},
    "1 repeat purchase": {"zh": "1 次重复购买"},
    "10 repeat purchases": {"zh": "10 次重复购买"},
    "margin": {"zh": "毛利"},
    "retention": {"zh": "留存率"},
    "discount": {"zh": "折现率"},
    "aov": {"en": "average order value", "zh": "平均订单金额"},
    "orders_per_year": {"en": "orders per year", "zh": "每年订单数"},
    "ltv": {"en": "LTV", "zh": "LTV"},
    "ltv_after": {"en": "LTV after", "zh": "调整后 LTV"},
    "gain": {"en": "gain per customer", "zh": "每客户增益"},
    "cost": {"en": "cost per customer", "zh": "每客户成本"},
    "return": {"en": "return (gain / cost)", "zh": "回报（增益 / 成本）"},
    "net_value": {"en": "net value", "zh": "净价值"},
    "change": {"zh": "变动幅度"},
    "lever": {"zh": "杠杆"},
    "order value": {"zh": "客单价"},
    "frequency": {"zh": "购买频次"},
    "truth": {"zh": "真值"},
    "fitted": {"zh": "拟合值"},
    "undiscounted": {"zh": "不折现"},
    "discounted at 10%": {"zh": "按 10% 折现"},
    "high end": {"zh": "高端客户"},
    "regular": {"zh": "普通客户"},
    "year": {"zh": "年"},
    "renewals": {"zh": "已续费次数"},
    "DERL (10%)": {"zh": "DERL（10%）"},
    "CLV, margin 100": {"zh": "CLV（每期毛利 100）"},
    "high end model": {"zh": "高端客户 模型"},
    "high end actual": {"zh": "高端客户 实际"},
    "regular model": {"zh": "普通客户 模型"},
    "regular actual": {"zh": "普通客户 实际"},
    # the report: summary page, contents, footer
    "Customer lifetime value report": {"zh": "客户终身价值报告"},
    "{client}: customer lifetime value": {"zh": "{client}：客户终身价值报告"},
    "Data to {end} · {customers} customers · money in {currency} · forecast over {months} months": {
        "zh": "数据截至 {end} · {customers} 位客户 · 货币单位 {currency} · 预测期 {months} 个月"},
    "Contents": {"zh": "目录"},
    "Technical appendix": {"zh": "技术附录"},
    NO_MARGIN: {"zh": "未提供，因此这里的 CLV 是折现后的预计销售额（CLV = 它 × 毛利率）"},
    "Glossary": {"zh": "术语表"},
    APPENDIX_INTRO: {"zh": "附录供技术读者查阅：数据质量明细、模型的选择与参数、诊断和回测。正文的结论不依赖于阅读附录。"},
    "Figure: {section}": {"zh": "图表：{section}"},
    "How this report was made": {"zh": "报告生成信息"},
    "run": {"zh": "运行"},
    RUN_STAMP: {"zh": "文件夹 {folder}，开始于 {started}，计算用时 {seconds} 秒"},
    "input data (SHA-256)": {"zh": "输入数据（SHA-256）"},
    "parameters": {"zh": "参数"},
    "versions": {"zh": "软件版本"},
    "90% interval {low} to {high}": {"zh": "90% 区间 {low} 至 {high}"},
    "next {months} months": {"zh": "未来 {months} 个月"},
    "revenue to date": {"zh": "累计销售额"},
    "bought more than once": {"zh": "复购客户占比"},
    "of revenue from the top 20% of customers": {"zh": "前 20% 客户贡献的销售额占比"},
    "CLV": {"zh": "CLV"},
    "{value} per customer": {"zh": "每位客户 {value}"},
    "discounted expected revenue": {"zh": "折现后的预计销售额"},
    "CLV = this x gross margin (a margin of 100% was used); discounted at {rate} a year; {interval}": {
        "zh": "CLV = 此值 × 毛利率（按 100% 毛利率计算）；年折现率 {rate}；{interval}"},
    "repeat-purchase model": {"zh": "复购模型"},
    "less error per customer than the best simple baseline": {"zh": "单客户误差低于最佳简单基准的幅度"},
    "repeat-purchase model, tested on the last {days} days": {"zh": "复购模型，在最后 {days} 天的数据上检验"},
    "no gain": {"zh": "没有改进"},
    "over the best simple baseline": {"zh": "相对最佳简单基准"},
    "read the forecast with caution": {"zh": "请谨慎使用该预测"},
    "margin {margin}, discounted at {rate} a year; {interval}": {"zh": "毛利率 {margin}，年折现率 {rate}；{interval}"},
    "{what}, {horizon}": {"zh": "{what}，{horizon}"},
    "forecast model": {"zh": "预测模型"},
    "{gain} smaller error per customer than the best baseline": {"zh": "单客户误差比最佳基准低 {gain}"},
    "no better than the best baseline": {"zh": "不优于最佳基准"},
    "{pct} above": {"zh": "比前期高 {pct}，前期为"},
    "{pct} below": {"zh": "比前期低 {pct}，前期为"},
    "against no revenue in": {"zh": "而前期销售额为"},
    "{pct} too low": {"zh": "偏低 {pct}"},
    "{pct} too high": {"zh": "偏高 {pct}"},
    FINDING_CONCENTRATION: {"zh": "前 20% 的客户贡献了 {top20} 的销售额；其中 {high} 位高价值客户"
                                           "（占客户 {high_share}）贡献了 {high_revenue}。"},
    FINDING_ONE_TIME: {"zh": "{one_time} 的客户只购买过一次，促成第二次购买是提升终身价值的首要抓手。"},
    FINDING_CHURN_RISK: {"zh": "{risk} 位消费不低于中位数的客户已经沉默（流失风险客户），他们贡献了 "
                                        "{risk_revenue} 的销售额，应优先对他们进行挽回。"},
    FINDING_FORECAST: {"zh": "未来 {months} 个月，现有客户预计购买 {purchases} 次，销售额 {revenue}"
                                      "（90% 区间 {low} 至 {high}），{change}最近 {months} 个月的 {past}。"},
    FINDING_MODEL_BETTER: {"zh": "在模型未见过的最后 {holdout} 天历史上，{model} 的预测平均每位客户偏差 "
                                          "{mae} 次购买，比最佳简单基准“{baseline}”低 {gain}；总量预测{error}。"},
    FINDING_MODEL_WORSE: {"zh": "在最后 {holdout} 天历史上，{model} 的预测平均每位客户偏差 {mae} 次购买，"
                                         "不优于简单基准 {baseline}：请谨慎使用该预测。"},
    # chosen model and baselines (evaluation)
    "repeat purchases per unit of time since the first purchase x holdout length, at the customer's own average "
    "order value": {"zh": "首购以来单位时间的重复购买次数 × 保留期长度，按客户自己的平均客单价计算"},
    "the R + F + M score: ranks customers, forecasts nothing": {"zh": "R + F + M 得分：只给客户排序，不做预测"},
    "for an average customer: population average order value x purchases per customer-day x holdout days, the "
    "same for everyone": {"zh": "平均客户：总体平均客单价 × 每客户每天购买次数 × 保留期天数，所有人相同"},
    "on RFM and tenure features, trained on the previous window (as long as the holdout, or the second half of "
    "the calibration period if that is shorter, scaled up)": {
        "zh": "基于RFM与客户年龄特征，在上一个时间窗（与保留期等长；若校准期较短则取其后半段并按比例放大）上训练"},
    # since the last report
    MONITORING_HEADER: {"zh": "上一份报告：运行 {run}，数据截至 {before} · 本报告：数据截至 {end} · 间隔 {days} 天 · "
                              "货币 {currency}"},
    MONITORING_CHECK: {"zh": "从 {start} 到 {end}，上一份报告预计其 {customers} 位客户会在 {predicted} 天购买（90% 区间 "
                             "{low} 至 {high}）；实际购买 {actual} 天，{verdict}。预计销售额 {revenue}（{revenue_low} 至 "
                             "{revenue_high}）；实际消费 {revenue_actual}。"},
    MONITORING_NEW: {"zh": "这段时间有 {new} 位客户首次购买（{revenue}）；他们不在检验之内，因为上一次预测针对的是当时的客户。"},
    MONITORING_UNMEASURED: {"zh": "上一份报告未能在自身历史上测出模型误差，因此这些区间只考虑了参数不确定性和客户个体的随机性。"},
    MIGRATION_NOTE: {"zh": "客户在上一份报告中的分层（行）与本报告中的分层（列）；两次都在的 {both} 位客户中有 {kept} 位分层不变，"
                           "{high} 位高价值客户中有 {high_kept} 位仍是高价值。"},
    WATCH_NOTE: {"zh": "有 {count} 位客户在上一份报告中属于高价值，此后其活跃概率已跌破 {threshold}；上一份报告在其预测期内预计他们贡献 "
                       "{value}。下表以化名列出涉及价值最高的 {shown} 位；含客户 ID 的完整名单以预警名单文件另行交给 CRM 团队。"},
    WATCH_NONE: {"zh": "上一份报告中的高价值客户，此后没有人的活跃概率跌破 {threshold}。"},
    WATCH_NO_FORECAST: {"zh": "本次运行没有预测，因此没有新的活跃概率可供预警；预警名单留待下一份有预测的报告。"},
    NO_BASELINE: {"zh": "该客户没有更早的运行可供检验：下一份生成到该客户文件夹的报告会检验本报告。"},
    FINDING_MONITORING: {"zh": "上一份报告（数据截至 {before}）预计其客户到 {end} 会在 {predicted} 天购买；实际购买 {actual} 天，"
                               "{verdict}。"},
    FINDING_WATCH: {"zh": "其中 {watch} 位高价值客户正在流失（见预警名单）。"},
    "within the interval": {"zh": "在区间之内"},
    "below the interval": {"zh": "低于区间"},
    "above the interval": {"zh": "高于区间"},
    "Since the last report": {"zh": "自上一份报告以来"},
    "last report": {"zh": "上一份报告"},
    "this report": {"zh": "本报告"},
    "new since the last report": {"zh": "上次报告后新增"},
    "not in this run": {"zh": "本次不在"},
    "predicted_purchases": {"en": "predicted purchase days", "zh": "预测购买天数"},
    "actual_purchases": {"en": "actual purchase days", "zh": "实际购买天数"},
    "predicted_revenue": {"en": "predicted revenue", "zh": "预测销售额"},
    "actual_revenue": {"en": "actual revenue", "zh": "实际销售额"},
    "tier_before": {"en": "tier then", "zh": "当时分层"},
    "tier_now": {"en": "tier now", "zh": "现在分层"},
    "p_alive_before": {"en": "P(alive) then", "zh": "当时活跃概率"},
    "p_alive_now": {"en": "P(alive) now", "zh": "现在活跃概率"},
    "p_alive_change": {"en": "P(alive) change", "zh": "活跃概率变化"},
    "value_at_stake": {"en": "value at stake", "zh": "涉及价值"},
    "clv_now": {"en": "CLV now", "zh": "现在 CLV"},
    "last_order": {"en": "last order", "zh": "末笔订单日期"},
    # channels and acquisition
    CHANNEL_NOTE: {"zh": "已实现价值：首单起 365 天内每位客户的销售额，只计 {end} 前至少一年获客的客户。"
                         "预测价值：未来 {months} 个月每位客户的 CLV 及其 90% 区间。"},
    CHANNEL_COSTS: {"zh": "CAC：成本表所列月份中每位新客户的获客花费。LTV/CAC：（已实现首年价值 × 毛利率 + 预测价值）/ CAC，区间取自预测价值的区间。"
                          "回本月数：首年价值 × 毛利率累计达到 CAC 所需的月数。获客不满一年的客户（首年尚未看到）的 LTV/CAC 和回本月数显示 –；"
                          "首年未回本时回本月数也显示 –。"},
    CHANNEL_NO_COSTS: {"zh": "未提供获客成本，因此表中只有价值；提供各渠道每月的花费（或每位新客户的成本）后，"
                             "会加上 CAC、LTV/CAC 和回本月数。"},
    CHANNEL_COST_MONTHS: {"zh": "成本表中没有以下渠道的花费：{channels}；它们的 CAC 和 LTV/CAC 为空。"},
    NEW_VALUE_NOTE: {"zh": "新客户价值：刚完成首单的客户在未来 {months} 个月的价值，来自以渠道为协变量重新拟合的模型（每个渠道有自己的购买率和流失率）。"},
    NEW_VALUE_ONE: {"zh": "新客户价值：所有渠道使用模型的同一个值，因为此处无法以渠道为协变量拟合（{reason}）"},
    NO_CHANNEL: {"zh": "数据中没有渠道列，无法按带来客户的渠道拆分；如果导出文件有渠道列，请传入 --channel <列名>。"},
    FINDING_CHANNEL: {"zh": "通过{channel}获得的客户带来其获客成本的 {ratio} 倍（90% 区间 {low} 至 {high}），明显低于其他渠道"
                            "（LTV/CAC 为 {others}）。"},
    "Channels and acquisition": {"zh": "渠道与获客"},
    "channel": {"zh": "渠道"},
    "quarter": {"zh": "季度"},
    "value_30d": {"en": "value, 30 days", "zh": "30 天价值"},
    "value_90d": {"en": "value, 90 days", "zh": "90 天价值"},
    "value_180d": {"en": "value, 180 days", "zh": "180 天价值"},
    "value_365d": {"en": "realised value, first 365 days", "zh": "首年已实现价值"},
    "predicted_value": {"en": "predicted value per customer", "zh": "每位客户预测价值"},
    "predicted_value_low": {"en": "predicted value, low", "zh": "预测价值下限"},
    "predicted_value_high": {"en": "predicted value, high", "zh": "预测价值上限"},
    "predicted value, 90% interval": {"zh": "预测价值 90% 区间"},
    "LTV/CAC, 90% interval": {"zh": "LTV/CAC 90% 区间"},
    "new_customer_value": {"en": "value of a new customer", "zh": "新客户价值"},
    "spend": {"en": "acquisition spend", "zh": "获客花费"},
    "cac": {"en": "CAC", "zh": "获客成本 CAC"},
    "ltv_cac": {"en": "LTV/CAC", "zh": "LTV/CAC"},
    "ltv_cac_low": {"en": "LTV/CAC, low", "zh": "LTV/CAC 下限"},
    "ltv_cac_high": {"en": "LTV/CAC, high", "zh": "LTV/CAC 上限"},
    "payback_months": {"en": "payback, months", "zh": "回本月数"},
    "unknown": {"zh": "未知"},
    "customer": {"zh": "客户"},
    # the figures of both sections
    "forecast": {"zh": "预测"},
    "90% interval": {"zh": "90% 区间"},
    "The last forecast of purchase days against what happened": {"zh": "上一次预测的购买天数与实际对比"},
    "purchase days in the window": {"zh": "期间内的购买天数"},
    "pays back its cost": {"zh": "收回获客成本"},
    "LTV/CAC by acquisition channel": {"zh": "各获客渠道的 LTV/CAC"},
    "Value per customer by acquisition channel": {"zh": "各获客渠道的每位客户价值"},
    "value per customer": {"zh": "每位客户价值"},
    "Realised value per customer since the first order": {"zh": "首单以来每位客户的已实现价值"},
    "days since the first order": {"zh": "首单后天数"},
}


#: Glossary terms of the segmentation alone (a report without a forecast defines only these).
HISTORY_TERMS = {"recency", "frequency", "Gini"}


def glossary_markdown(language: str = "en", forecast: bool = True) -> str:
    """The glossary as a Markdown list, each term in bold; without a forecast, only the terms of
    the data and the segmentation."""
    i = LANGUAGES.index(language) if language in LANGUAGES else 0
    return "\n".join(f"- **{term[i]}**: {text[i]}" for term, text in GLOSSARY if forecast or term[0] in HISTORY_TERMS)


def label(key: str, language: str = "en") -> str:
    """The text for ``key`` in ``language`` ("en" or "zh")."""
    if language not in LANGUAGES:
        raise LTVError(f"language must be one of {', '.join(LANGUAGES)}, got {language!r}.")
    texts = LABELS.get(key, {})
    return texts.get(language) or texts.get("en", key)


#: Characters that can start Markdown markup (CommonMark lets any ASCII punctuation be escaped
#: with a backslash; these are the ones that mean something to the renderer). ``& < >`` become
#: HTML entities instead, which survive the report's HTML sanitizer unchanged.
_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|~$^=:])")


def md_escape(value) -> str:
    r"""``value`` as literal Markdown text: ``& < >`` become HTML entities, every other character
    that could start markup (links, emphasis, math, lists) is backslash-escaped, and line breaks
    become spaces, so a client name, a currency or a column header shows as typed and never
    becomes live HTML.

    >>> md_escape("<script>x</script> *a*")
    '&lt;script&gt;x&lt;/script&gt; \\*a\\*'
    """
    text = html.escape(" ".join(str(value).split()), quote=False)
    return _MARKDOWN_SPECIAL.sub(r"\\\1", text)


def markdown(key: str, language: str = "en", **values) -> str:
    r"""The label ``key`` in ``language`` as Markdown, with ``values`` filled in as literal text
    (:func:`md_escape`): the template's own markup (``**{client}**``) stays, the values cannot add any.

    >>> markdown("Client: **{client}** · currency: {currency}", client="<b>x</b>", currency="CNY")
    'Client: **&lt;b&gt;x&lt;/b&gt;** · currency: CNY'
    """
    return label(key, language).format(**{k: md_escape(v) for k, v in values.items()})


def translate_index(frame, language: str):
    """A copy of ``frame`` with its index values and column names translated."""
    out = frame.copy()
    out.index = [label(str(k), language) for k in out.index]
    out.index.name = label(str(frame.index.name), language) if frame.index.name else None
    out.columns = [label(str(c), language) for c in out.columns]
    return out


#: Note values that name an option for the user to pass (spelt by ``options.spell``).
OPTION_KEYS = ("option", "dayfirst", "monthfirst", "date_format", "quantity", "comma_option", "dot_option")
#: Where a note's template splits into clauses: after a sentence or a semicolon.
_CLAUSE = re.compile(r"(?<=\.)\s+(?=[A-Z])|(?<=;)\s+|(?<=[。；])")


@dataclass(frozen=True)
class Note:
    """A sentence for the user kept as a :data:`LABELS` template and its values, so it can be
    shown in any language; ``str(note)`` is the English sentence.

    >>> Note(NOTE_ORDER_TIMES, {"orders": 2}).text("zh")
    '2 笔订单的明细行时间不一致；每笔订单取其最早一行的时间。'
    """

    key: str
    values: dict = field(default_factory=dict)

    def text(self, language: str = "en", part: str = "all") -> str:
        """The sentence in ``language``: ``part="all"``; ``"facts"``, without the clauses that
        tell the user which option to pass (a client's report states what was done, not how to
        run the tool); ``"advice"``, those clauses alone ('' when there are none)."""
        if part not in ("all", "facts", "advice"):
            raise LTVError(f"part must be 'all', 'facts' or 'advice', got {part!r}.")
        values = {k: label(v, language) if isinstance(v, str) else v for k, v in self.values.items()}
        if part == "facts" and "file" in values:  # a client's report names no file
            values["file"] = label("the export", language)
        template = label(self.key, language)
        if part != "all":
            clauses = [c.strip() for c in _CLAUSE.split(template) if c.strip()]
            kept = [c for c in clauses if any(f"{{{k}" in c for k in OPTION_KEYS) == (part == "advice")]
            if not kept:
                return ""
            stop = "。" if language == "zh" else "."
            template = ("" if language == "zh" else " ").join(kept).rstrip("；;")
            template = template[:1].upper() + template[1:]
            if template.startswith("{file}") and "file" in values:  # "The export is not UTF-8 text"
                values["file"] = values["file"][:1].upper() + values["file"][1:]
            template = template if template.endswith((".", "。")) else template + stop
        return template.format(**values)

    def __str__(self) -> str:
        return self.text("en")


def money(value: float, currency: str, decimals: int = 0) -> str:
    """``USD 1,234``: money rounded to whole units (or to ``decimals``, for values per customer or
    order), with thousands separators."""
    return f"{currency} {value:,.{decimals}f}".strip()
