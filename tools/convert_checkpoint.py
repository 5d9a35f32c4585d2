#!/usr/bin/env python
"""Convert a foreign checkpoint to detector keys (a ``.pth`` that ``train.init_checkpoint`` loads as is).

    tools/convert_checkpoint.py --list
    tools/convert_checkpoint.py --zoo-table        # the README's model-zoo table
    tools/convert_checkpoint.py mae_pretrain_vit_base.pth --to d2 --output vit_b_d2.pth
    tools/convert_checkpoint.py convnext_tiny_1k_224.pth --from official_convnext --output convnext_t_d2.pth
    tools/convert_checkpoint.py zoo://mae/in1k/vit_base_full --family mimdet \\
        --config-file configs/MIMDet/COCO/mimdet_vit_base_mask_rcnn_fpn_sr_0p5_800_1333_4xdec_coco_3x.py \\
        --output mimdet_b_init.pth

The source is anything the checkpoint loader takes (path, ``https://``,
``detectron2://``, ``zoo://``). ``--from auto`` detects the format; ``--family`` picks
the converter where several families read one format (MAE: vitdet or mimdet);
``--config-file`` builds that config's model so converters that adapt to it (grid
sizes, window sizes, decoder depth) see the real target.
"""
import argparse
import logging
import sys

from detectron2.utils.logger import setup_logger

from d2backbones.checkpoint import (
    CheckpointError,
    ZOO,
    convert_checkpoint_file,
    registered_families,
    registered_formats,
)

TARGETS = ("d2",)


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("checkpoint", nargs="?", help="path, URL, detectron2://... or zoo://...")
    parser.add_argument("--from", dest="source_format", default="auto", help="source format, or auto (see --list)")
    parser.add_argument("--to", choices=TARGETS, default="d2", help="target: detectron2 detector keys")
    parser.add_argument("--family", choices=registered_families(), help="converter family (default: the config's, else the first)")
    parser.add_argument("--config-file", help="build this config's model as the conversion target")
    parser.add_argument("--output", help="output .pth")
    parser.add_argument("--allow-unsafe", action="store_true", help="allow files that need full unpickling")
    parser.add_argument("--list", action="store_true", help="list the formats and zoo names, then exit")
    parser.add_argument(
        "--zoo-table", action="store_true", help="print the zoo as a markdown table with the command for each entry"
    )
    return parser.parse_args(argv)


def list_everything():
    print("formats (detection order):")
    for checkpoint_format in registered_formats():
        print(f"  {checkpoint_format.name:<20} {checkpoint_format.description}  [{', '.join(checkpoint_format.converters)}]")
    print("zoo names:")
    for name, entry in sorted(ZOO.items()):
        print(f"  zoo://{name:<50} {entry.kind:<10} {entry.url}")


def zoo_command(entry):
    """The command that evaluates a detector entry, or trains its recipe from a pretrained one."""
    action = "--eval-only " if entry.kind == "detector" else ""
    return f"tools/train_net.py --config-file {entry.config} {action}train.init_checkpoint={entry.uri}"


def count_params_m(config_file):
    """Parameters of a config's model, in millions, counted on the meta device (no memory, no weights)."""
    import torch
    from detectron2.config import LazyConfig, instantiate

    with torch.device("meta"):
        model = instantiate(LazyConfig.load(config_file).model)
    return sum(p.numel() for p in model.parameters()) / 1e6


def zoo_table(count_params=True):
    """The model zoo as markdown: name, kind, published AP, our parameter count and
    the published one where it differs, and the command to run."""
    lines = ["| zoo name | kind | published box / mask AP | params | command |", "|---|---|---|---|---|"]
    for name, entry in sorted(ZOO.items()):
        ap = f"{entry.box_ap} / {entry.mask_ap}" if entry.box_ap is not None else "–"
        params = f"{count_params_m(entry.config):.1f}M" if count_params else "–"
        if count_params and entry.params_m and abs(entry.params_m - float(params[:-1])) / entry.params_m > 0.02:
            params += f" (published {entry.params_m:g}M)"
        lines.append(f"| {name} | {entry.kind} | {ap} | {params} | `{zoo_command(entry)}` |")
    return "\n".join(lines)


def build_model(config_file):
    from detectron2.config import LazyConfig, instantiate

    return instantiate(LazyConfig.load(config_file).model)


def main(argv=None):
    args = parse_args(argv)
    if args.list:
        list_everything()
        return
    if args.zoo_table:
        print(zoo_table())
        return
    if not args.checkpoint or not args.output:
        sys.exit("error: give a checkpoint and --output (or --list)")
    setup_logger(name="d2backbones", abbrev_name="d2b")
    logging.getLogger("d2backbones").setLevel(logging.INFO)
    try:
        model = build_model(args.config_file) if args.config_file else None
        format_name, num_keys = convert_checkpoint_file(
            args.checkpoint,
            args.output,
            checkpoint_format=args.source_format,
            family=args.family,
            model=model,
            allow_unsafe=args.allow_unsafe or None,
        )
    except (CheckpointError, FileNotFoundError, KeyError) as error:
        sys.exit(f"error: {error.args[0] if error.args else error}")
    print(f"converted {args.checkpoint} ({format_name}) -> {args.output} ({num_keys} detector keys)")


if __name__ == "__main__":
    main()
