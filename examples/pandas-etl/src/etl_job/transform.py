"""Parse one partition of orders, keep the sizeable ones, and aggregate them per region and
product: the shape of most pandas ETL steps (read, clean, derive, group, aggregate)."""

from __future__ import annotations

import os
from typing import Any

import pandas as pd


def partitions(data_dir: str) -> list[str]:
    """The input files, in a fixed order, so task ``i`` reads the same one everywhere."""
    return sorted(os.path.join(data_dir, f) for f in os.listdir(data_dir) if f.endswith(".csv.gz"))


def run(task_id: int, data_dir: str, min_amount: float = 20.0) -> dict[str, Any]:
    """Aggregate partition ``task_id % n``; return the top region/product by revenue."""
    files = partitions(data_dir)
    orders = pd.read_csv(files[task_id % len(files)], parse_dates=["day"],
                         dtype={"region": "category", "product": "category"})
    orders["amount"] = orders["price"] * orders["qty"]
    orders = orders[orders["amount"] >= min_amount]
    orders["week"] = orders["day"].dt.isocalendar().week
    summary = (
        orders.groupby(["region", "product", "week"], observed=True)
        .agg(orders=("order_id", "count"), revenue=("amount", "sum"), mean_price=("price", "mean"))
        .reset_index()
        .sort_values("revenue", ascending=False)
    )
    top = summary.iloc[0]
    return {"rows": int(len(orders)), "groups": int(len(summary)),
            "top": f"{top['region']}/{top['product']}", "revenue": float(top["revenue"])}
