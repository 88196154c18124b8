# Display formatters of the code-interpreter template: pandas DataFrames as
# `e2b/data` (a dict of column lists) and matplotlib figures as `e2b/chart` (see
# lelantos_charts). Both are registered by type name, so nothing is imported until
# the user's code imports pandas or matplotlib.
def _lelantos_register():
    import datetime
    import math

    from IPython import get_ipython
    from IPython.core.formatters import BaseFormatter

    class DictFormatter(BaseFormatter):
        """A formatter whose results are JSON objects."""

        _return_type = (dict,)

    ip = get_ipython()
    if ip is None:
        return
    formatters = ip.display_formatter.formatters

    def plain(v):
        if v is None or isinstance(v, (str, bool)):
            return v
        if isinstance(v, float):
            return None if math.isnan(v) or math.isinf(v) else v
        if isinstance(v, int):
            return v
        if hasattr(v, "isoformat"):
            try:
                return v.isoformat()
            except Exception:
                return str(v)
        if hasattr(v, "item"):
            return plain(v.item())
        if isinstance(v, datetime.timedelta):
            return str(v)
        return str(v)

    def dataframe(df):
        try:
            return {str(k): [plain(x) for x in col] for k, col in df.to_dict(orient="list").items()}
        except Exception:
            return None

    def figure(fig):
        try:
            import lelantos_charts

            return lelantos_charts.chart_of(fig)
        except Exception:
            return None

    data = DictFormatter(parent=ip.display_formatter, format_type="e2b/data", print_method="_repr_e2b_data_")
    data.for_type_by_name("pandas.core.frame", "DataFrame", dataframe)
    formatters["e2b/data"] = data
    chart = DictFormatter(parent=ip.display_formatter, format_type="e2b/chart", print_method="_repr_e2b_chart_")
    chart.for_type_by_name("matplotlib.figure", "Figure", figure)
    formatters["e2b/chart"] = chart


_lelantos_register()
del _lelantos_register
