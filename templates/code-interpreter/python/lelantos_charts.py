"""Charts of matplotlib figures as the e2b code-interpreter clients read them.

chart_of(figure) returns a dict with a "type" (line, scatter, bar, pie,
box_and_whisker, superchart or unknown), a "title" and "elements", plus axis
details for two-dimensional charts; None for a figure without axes.
"""

import datetime
import re

import matplotlib.dates as mdates
from matplotlib.collections import PathCollection
from matplotlib.container import BarContainer
from matplotlib.lines import Line2D
from matplotlib.patches import PathPatch, Rectangle, Wedge

_NO_LINE = ("None", "none", "", " ")
_UNIT = re.compile(r"\(([^()]*)\)|\[([^\[\]]*)\]")


def chart_of(fig):
    axes = [ax for ax in fig.get_axes() if ax.get_visible()]
    if not axes:
        return None
    fig.canvas.draw()  # tick labels are only set by a draw
    if len(axes) == 1:
        return _axes_chart(axes[0])
    title = fig._suptitle.get_text() if getattr(fig, "_suptitle", None) is not None else None
    return {"type": "superchart", "title": title or None, "elements": [_axes_chart(ax) for ax in axes]}


def _axes_chart(ax):
    lines = [ln for ln in ax.lines if ln.get_visible()]
    collections = [c for c in ax.collections if c.get_visible()]
    patches = [p for p in ax.patches if p.get_visible()]
    title = ax.get_title() or None
    boxes = [p for p in patches if isinstance(p, PathPatch)]
    if boxes and lines and len(boxes) == len(patches) and not collections:
        return _box(ax, title, boxes, lines)
    if patches and all(isinstance(p, Wedge) for p in patches) and not lines and not collections:
        return _pie(title, patches)
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    if patches and bars and all(isinstance(p, Rectangle) for p in patches) and not collections:
        return _bar(ax, title, bars)
    if lines and not patches and not collections:
        return _line(ax, title, lines)
    if collections and all(isinstance(c, PathCollection) for c in collections) and not lines and not patches:
        return _scatter(ax, title, collections)
    return {"type": "unknown", "title": title, "elements": []}


def _number(v):
    if isinstance(v, (datetime.datetime, datetime.date)):
        return v.isoformat()
    try:
        f = float(v)
    except (TypeError, ValueError):
        return str(v)
    if f != f or f in (float("inf"), float("-inf")):
        return None
    return int(f) if f.is_integer() and not isinstance(v, float) else f


def _unit(label):
    m = _UNIT.search(label or "")
    if not m:
        return None
    return m.group(1) if m.group(1) is not None else m.group(2)


def _axis_labels(ax, swap=False):
    x, y = ax.get_xlabel() or None, ax.get_ylabel() or None
    if swap:
        x, y = y, x
    return {"x_label": x, "y_label": y, "x_unit": _unit(x), "y_unit": _unit(y)}


def _is_date(axis):
    return isinstance(axis.get_major_formatter(), (mdates.DateFormatter, mdates.AutoDateFormatter, mdates.ConciseDateFormatter))


def _is_categorical(axis):
    units = getattr(axis, "units", None)
    return units is not None and hasattr(units, "_mapping")


def _scale(axis, scale):
    if _is_date(axis):
        return "datetime"
    if _is_categorical(axis):
        return "categorical"
    return scale


def _value(axis, v):
    if _is_date(axis):
        try:
            return mdates.num2date(float(v)).isoformat()
        except (TypeError, ValueError, OverflowError):
            return _number(v)
    if _is_categorical(axis):
        for name, index in axis.units._mapping.items():
            if index == v:
                return name
    return _number(v)


def _ticks(ax):
    out = {}
    for name, axis, scale in (("x", ax.xaxis, ax.get_xscale()), ("y", ax.yaxis, ax.get_yscale())):
        out[name + "_ticks"] = [_value(axis, t) for t in axis.get_ticklocs()]
        out[name + "_tick_labels"] = [t.get_text() for t in axis.get_ticklabels()]
        out[name + "_scale"] = _scale(axis, scale)
    return out


def _label(artist, kind, i):
    label = artist.get_label()
    if not label or label.startswith("_"):
        return "%s %d" % (kind, i)
    return label


def _line(ax, title, lines):
    elements = []
    for i, ln in enumerate(lines, 1):
        xs, ys = ln.get_xdata(orig=False), ln.get_ydata(orig=False)
        points = [[_value(ax.xaxis, x), _value(ax.yaxis, y)] for x, y in zip(xs, ys)]
        elements.append({"label": _label(ln, "Line", i), "points": points})
    return {"type": "line", "title": title, **_axis_labels(ax), **_ticks(ax), "elements": elements}


def _scatter(ax, title, collections):
    elements = []
    for i, c in enumerate(collections, 1):
        points = [[_value(ax.xaxis, x), _value(ax.yaxis, y)] for x, y in c.get_offsets()]
        elements.append({"label": _label(c, "Scatter", i), "points": points})
    return {"type": "scatter", "title": title, **_axis_labels(ax), **_ticks(ax), "elements": elements}


def _tick_label_at(axis, pos):
    best, dist = None, None
    for loc, lab in zip(axis.get_ticklocs(), axis.get_ticklabels()):
        d = abs(loc - pos)
        if dist is None or d < dist:
            best, dist = lab.get_text(), d
    return best if best is not None and dist < 0.5 else str(_value(axis, pos))


def _bar(ax, title, bars):
    horizontal = getattr(bars[0], "orientation", "vertical") == "horizontal"
    elements = []
    for gi, container in enumerate(bars, 1):
        group = container.get_label()
        if not group or group.startswith("_"):
            group = "Group %d" % gi
        for rect in container.patches:
            if horizontal:
                pos, value, axis = rect.get_y() + rect.get_height() / 2, rect.get_width(), ax.yaxis
            else:
                pos, value, axis = rect.get_x() + rect.get_width() / 2, rect.get_height(), ax.xaxis
            elements.append({"label": _tick_label_at(axis, pos), "group": group, "value": _number(value)})
    return {"type": "bar", "title": title, **_axis_labels(ax, swap=horizontal), "elements": elements}


def _pie(title, wedges):
    elements = []
    for i, w in enumerate(wedges, 1):
        elements.append({"label": _label(w, "Slice", i), "angle": _number(abs(w.theta2 - w.theta1)), "radius": _number(w.r)})
    return {"type": "pie", "title": title, "elements": elements}


def _box(ax, title, boxes, lines):
    segs = []
    for ln in lines:
        xs, ys = list(map(float, ln.get_xdata(orig=False))), list(map(float, ln.get_ydata(orig=False)))
        segs.append((ln, xs, ys))
    # Vertical boxes have vertical whiskers and horizontal caps and medians.
    const_x = sum(1 for ln, xs, ys in segs if len(set(xs)) == 1 and len(set(ys)) > 1 and ln.get_linestyle() not in _NO_LINE)
    const_y = sum(1 for ln, xs, ys in segs if len(set(ys)) == 1 and len(set(xs)) > 1 and ln.get_linestyle() not in _NO_LINE)
    vertical = const_y >= const_x
    elements = []
    for box in boxes:
        v = box.get_path().vertices
        along, across = (v[:, 1], v[:, 0]) if vertical else (v[:, 0], v[:, 1])
        lo, hi = float(across.min()), float(across.max())
        q1, q3 = float(along.min()), float(along.max())
        median, low, high, outliers = None, q1, q3, []
        for ln, xs, ys in segs:
            a, c = (ys, xs) if vertical else (xs, ys)
            if not c or min(c) < lo - 1e-9 or max(c) > hi + 1e-9:
                continue
            if ln.get_linestyle() in _NO_LINE:
                outliers.extend(_number(x) for x in a)
            elif len(set(a)) == 1 and len(set(c)) > 1:
                if q1 <= a[0] <= q3 and median is None:
                    median = a[0]
                else:  # a cap
                    low, high = min(low, a[0]), max(high, a[0])
            else:
                low, high = min(low, min(a)), max(high, max(a))
        axis = ax.xaxis if vertical else ax.yaxis
        elements.append({
            "label": _tick_label_at(axis, (lo + hi) / 2), "min": _number(low), "first_quartile": _number(q1),
            "median": _number(median), "third_quartile": _number(q3), "max": _number(high), "outliers": outliers,
        })
    return {"type": "box_and_whisker", "title": title, **_axis_labels(ax, swap=not vertical), "elements": elements}
