"""`vast models` and `vast flops`: the model table and per-input complexity."""

from __future__ import annotations

import argparse

import torch

from vast.errors import InputShapeError
from vast.models import count_flops, create_model, list_models


def register(subparsers: argparse._SubParsersAction) -> None:
    models = subparsers.add_parser("models", help="table of models: params, GMACs at the default input")
    models.add_argument("--pattern", default="*", help="shell-style filter, e.g. 'vast_*'")
    models.add_argument("--markdown", action="store_true", help="print a Markdown table (as in the README)")
    models.set_defaults(func=run_models)

    flops = subparsers.add_parser("flops", help="params and GMACs of a model for an input shape")
    flops.add_argument("model", help="model name, e.g. vast_tiny")
    flops.add_argument(
        "--input",
        type=parse_shape,
        default=None,
        help="input shape, e.g. 1,3,8,224,224 (default: the model's)",
    )
    flops.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="model option, e.g. --set t_patch=2 --set norm=layernorm",
    )
    flops.set_defaults(func=run_flops)


def parse_shape(text: str) -> tuple[int, ...]:
    try:
        shape = tuple(int(part) for part in text.replace("x", ",").split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a shape: {text!r}; write it like 1,3,8,224,224") from None
    if not shape or any(d <= 0 for d in shape):
        raise argparse.ArgumentTypeError(f"shape dimensions must be positive integers, got {text!r}")
    return shape


def parse_overrides(items: list[str]) -> dict[str, object]:
    """``key=value`` strings to keyword arguments; values are read as Python literals when possible."""
    import ast

    out: dict[str, object] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InputShapeError(f"--set expects KEY=VALUE, got {item!r}")
        try:
            out[key] = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            out[key] = value
    return out


def default_input_shape(model: torch.nn.Module) -> tuple[int, ...]:
    return (1, *model.pretrained_cfg["input_size"])


def model_table(pattern: str = "*") -> list[dict[str, object]]:
    """One row per model: name, params (M), GMACs and the default input shape (counted on `meta`)."""
    rows = []
    for name in list_models(pattern):
        with torch.device("meta"):
            model = create_model(name)
        shape = default_input_shape(model)
        gmacs, params = count_flops(model, shape)
        rows.append(dict(model=name, params_m=params / 1e6, gmacs=gmacs, input=shape))
    return rows


def format_table(rows: list[dict[str, object]], markdown: bool = False) -> str:
    header = ("model", "params (M)", "GMACs", "input (B, C, [T,] H, W)")
    lines = [(r["model"], f"{r['params_m']:.2f}", f"{r['gmacs']:.2f}", "x".join(map(str, r["input"]))) for r in rows]
    if markdown:
        out = ["| " + " | ".join(header) + " |", "|---|---:|---:|---|"]
        out += ["| " + " | ".join(line) + " |" for line in lines]
        return "\n".join(out)
    widths = [max(len(h), *(len(line[i]) for line in lines)) for i, h in enumerate(header)]
    fmt = "  ".join(f"{{:{'<' if i in (0, 3) else '>'}{w}}}" for i, w in enumerate(widths))
    return "\n".join([fmt.format(*header), fmt.format(*("-" * w for w in widths))] + [fmt.format(*ln) for ln in lines])


def run_models(args: argparse.Namespace) -> int:
    rows = model_table(args.pattern)
    if not rows:
        print(f"no model matches {args.pattern!r}; known: {', '.join(list_models())}")
        return 1
    print(format_table(rows, markdown=args.markdown))
    print("\nGMACs: multiply-adds of one view at the input shown (torch.utils.flop_counter; the shift is 0).")
    return 0


def run_flops(args: argparse.Namespace) -> int:
    with torch.device("meta"):
        model = create_model(args.model, **parse_overrides(args.overrides))
    shape = args.input or default_input_shape(model)
    model.check_input(torch.empty(shape, device="meta"))
    gmacs, params = count_flops(model, shape)
    print(f"model   {args.model}")
    print(f"input   {'x'.join(map(str, shape))}")
    print(f"params  {params / 1e6:.2f} M ({params:,})")
    print(f"GMACs   {gmacs:.3f}  (multiply-adds, torch.utils.flop_counter; GFLOPs = 2 x GMACs)")
    return 0
