"""The first-stage recall curve as a small PNG: the ceiling any reranker of the top-k works
under, with the reranking depths marked."""

from __future__ import annotations

import io
from collections.abc import Iterable, Mapping
from pathlib import Path

from rerank_eval.files import atomic_write_bytes


def write_recall_plot(curve: Mapping[int, float], path: Path, *, title: str,
                      depths: Iterable[int] = ()) -> Path:
    """Recall@k against k (log scale), one marker per cutoff, dashed lines at ``depths``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ks = sorted(curve)
    fig, ax = plt.subplots(figsize=(5.5, 3.6), dpi=110)
    ax.plot(ks, [curve[k] for k in ks], marker="o", markersize=3)
    for d in depths:
        if d in curve:
            ax.axvline(d, color="grey", linestyle="--", linewidth=0.7)
            ax.annotate(f"{curve[d]:.3f}", (d, curve[d]), textcoords="offset points",
                        xytext=(3, -10), fontsize=7)
    if len(ks) > 1:
        ax.set_xscale("log")
        ax.set_xticks(ks, [str(k) for k in ks], fontsize=7)
        ax.minorticks_off()
    ax.set_ylim(0, 1.02)
    ax.set_xlabel("first-stage depth k")
    ax.set_ylabel("recall@k")
    ax.set_title(title, fontsize=9)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    png = io.BytesIO()
    fig.savefig(png, format="png")
    plt.close(fig)
    return atomic_write_bytes(path, png.getvalue())
