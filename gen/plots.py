"""The generated report's figure: one self-contained SVG (``OUT/report.svg``, shown by
``report.md``) drawn from ``report.json``'s layer rows, no plotting library.

Top panel: the image's schedule from the cycle model, one track per engine resource (the shift
array, the adder array, and the stream and vector ops), one bar per layer from its ``start`` to its
``end`` cycle, coloured by PE utilization. Bottom panel: PE utilization per conv layer against the
85 % and 95 % lines (DESIGN.md section 7). Every bar carries a ``<title>`` (name, op, cycles,
utilization) for a viewer's tooltip, and ``data-*`` attributes with the numbers it was drawn from.
"""

from __future__ import annotations

from xml.sax.saxutils import escape, quoteattr

WIDTH = 960
LEFT = 120           # room for the track and axis labels
RIGHT = 20
TRACK_H = 26
BAR_H = 120          # the utilization panel's plot height
TARGETS = (0.85, 0.95)  # PE utilization: the minimum and its aim

# track of each op (report row "op" without "+add")
TRACKS = {"shift_conv": "shift array", "adder_conv": "adder array"}
OTHER = "stream / vector"


def track_of(op: str) -> str:
    return TRACKS.get(op.split("+")[0], OTHER)


def colour(u: float | None) -> str:
    """Red (0 %) through amber to green (100 %); grey for ops without utilization."""
    if u is None:
        return "#9e9e9e"
    u = min(max(u, 0.0), 1.0)
    r = int(round(220 * (1 - u) + 40 * u))
    g = int(round(60 * (1 - u) + 170 * u))
    return f"#{r:02x}{g:02x}50"


def ticks(total: int, count: int = 8) -> list[int]:
    """Round tick positions 0 .. total (1, 2 or 5 times a power of ten apart)."""
    if total <= 0:
        return [0]
    raw = total / count
    mag = 10 ** (len(str(int(raw))) - 1)
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return list(range(0, total + 1, step))


def _title(x: dict) -> str:
    u = f", {100 * x['utilization']:.1f} % PE utilization" if "utilization" in x else ""
    return f"{x['name']} ({x['op']}): {x['cycles']} cycles, {x['start']} .. {x['end']}{u}"


def report_svg(rep: dict) -> str:
    layers = rep["layers"]
    total = max([rep["cycles_per_image"], *(x["end"] for x in layers)], default=1) or 1
    plot_w = WIDTH - LEFT - RIGHT

    def sx(c: float) -> float:
        return round(LEFT + plot_w * c / total, 2)

    tracks = [t for t in (*TRACKS.values(), OTHER) if any(track_of(x["op"]) == t
                                                          for x in layers)]
    out: list[str] = []
    y0 = 40
    out.append(f'<text x="{LEFT}" y="24" class="h">Schedule of one image '
               f'({rep["cycles_per_image"]} cycles at {rep["clock_mhz"]} MHz, cycle model)'
               f'</text>')
    for i, t in enumerate(tracks):
        y = y0 + i * (TRACK_H + 6)
        out.append(f'<text x="{LEFT - 8}" y="{y + TRACK_H / 2 + 4}" text-anchor="end">'
                   f'{escape(t)}</text>')
        out.append(f'<rect x="{LEFT}" y="{y}" width="{plot_w}" height="{TRACK_H}" '
                   f'class="track"/>')
        for x in layers:
            if track_of(x["op"]) != t:
                continue
            u = x.get("utilization")
            w = max(sx(x["end"]) - sx(x["start"]), 0.5)
            out.append(f'<rect class="layer" x="{sx(x["start"])}" y="{y + 2}" width="{w:.2f}" '
                       f'height="{TRACK_H - 4}" fill="{colour(u)}" '
                       f'data-name={quoteattr(x["name"])} data-start="{x["start"]}" '
                       f'data-end="{x["end"]}"><title>{escape(_title(x))}</title></rect>')
    axis_y = y0 + len(tracks) * (TRACK_H + 6)
    for c in ticks(total):
        out.append(f'<line x1="{sx(c)}" y1="{y0 - 4}" x2="{sx(c)}" y2="{axis_y}" '
                   f'class="grid"/><text x="{sx(c)}" y="{axis_y + 14}" '
                   f'text-anchor="middle">{c}</text>')
    out.append(f'<text x="{LEFT + plot_w / 2}" y="{axis_y + 30}" text-anchor="middle">'
               f'cycle</text>')

    convs = [x for x in layers if "utilization" in x]
    top = axis_y + 70
    out.append(f'<text x="{LEFT}" y="{top - 16}" class="h">PE utilization per conv layer '
               f'(lane operations / (cycles x lanes of its array))</text>')
    for frac in (0.0, 0.5, 1.0):
        y = round(top + BAR_H * (1 - frac), 2)
        out.append(f'<line x1="{LEFT}" y1="{y}" x2="{LEFT + plot_w}" y2="{y}" class="grid"/>'
                   f'<text x="{LEFT - 8}" y="{y + 4}" text-anchor="end">{100 * frac:.0f} %'
                   f'</text>')
    for frac in TARGETS:
        y = round(top + BAR_H * (1 - frac), 2)
        out.append(f'<line x1="{LEFT}" y1="{y}" x2="{LEFT + plot_w}" y2="{y}" '
                   f'class="target"/><text x="{LEFT + plot_w}" y="{y - 3}" '
                   f'text-anchor="end" class="small">{100 * frac:.0f} %</text>')
    slot = plot_w / max(len(convs), 1)
    for i, x in enumerate(convs):
        u = x["utilization"]
        h = round(BAR_H * min(max(u, 0.0), 1.0), 2)
        bx = round(LEFT + i * slot + slot * 0.15, 2)
        out.append(f'<rect class="util" x="{bx}" y="{round(top + BAR_H - h, 2)}" '
                   f'width="{slot * 0.7:.2f}" height="{h}" fill="{colour(u)}" '
                   f'data-name={quoteattr(x["name"])} data-utilization="{u}">'
                   f'<title>{escape(_title(x))}</title></rect>')
        lx, ly = bx + slot * 0.35, top + BAR_H + 10
        out.append(f'<text x="{lx:.2f}" y="{ly}" class="small" text-anchor="end" '
                   f'transform="rotate(-60 {lx:.2f} {ly})">{escape(x["name"])}</text>')
    height = top + BAR_H + 125
    style = ("text{font-family:sans-serif;font-size:12px;fill:#222}.h{font-weight:bold}"
             ".small{font-size:9px}"
             ".track{fill:#f4f4f4}.grid{stroke:#ccc;stroke-width:0.5}"
             ".target{stroke:#1565c0;stroke-dasharray:4 3}.layer,.util{stroke:#fff;"
             "stroke-width:0.3}")
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
            f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif">'
            f'<style>{style}</style><rect width="100%" height="100%" fill="#fff"/>\n'
            + "\n".join(out) + "\n</svg>\n")
