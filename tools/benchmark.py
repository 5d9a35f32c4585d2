#!/usr/bin/env python
"""Speed and memory of any d2backbones LazyConfig, on random data.

    tools/benchmark.py --config-file configs/ViTDet/COCO/mask_rcnn_vitdet_b_100ep.py \
        --input-size 1024 --iters 5 --warmup 1 --output-dir output/benchmark
    tools/benchmark.py --config-file A.py B.py --device cuda --amp bf16 --compile

For each config, in a fresh process (so peak memory is that config's own), it reports:

- ``params`` / ``backbone_params``: parameter counts of the model and of ``model.backbone``;
- ``gflops`` / ``backbone_gflops``: fvcore's count for one image at ``--input-size``
  (fvcore counts one multiply-add as one flop, as the papers' tables do);
- ``train_s_per_iter``: median seconds of a training step (forward, backward,
  optimizer step) after ``--warmup`` steps, over ``--iters`` steps;
- ``infer_s_per_image`` and ``backbone_infer_s_per_image``: median inference time;
- ``peak_rss_mb`` (process peak resident memory), ``rss_after_build_mb`` and their
  difference ``peak_rss_growth_mb``; on CUDA also ``cuda_max_allocated_mb``;
- with ``--matmul``: the machine's measured float32 matmul GFLOP/s beside the
  backbone's achieved rate (2 x fvcore multiply-adds per second).

Results go to ``<output-dir>/benchmark.json`` (a list of flat records; ``--append``
adds to an existing file), ``benchmark.md`` (one markdown row per record) and
``benchmark.png`` (time and memory of every record).
"""
import argparse
import dataclasses
import datetime
import json
import os
import platform
import resource
import statistics
import subprocess
import sys
import time

import psutil
import torch

# Columns of the markdown table: (record key, header, format).
TABLE_COLUMNS = [
    ("name", "config", "{}"),
    ("input_size", "input", "{}"),
    ("batch_size", "batch", "{}"),
    ("device", "device", "{}"),
    ("amp", "amp", "{}"),
    ("params", "params (M)", "{:.1f}"),
    ("backbone_params", "backbone (M)", "{:.1f}"),
    ("gflops", "GFLOPs", "{:.1f}"),
    ("train_s_per_iter", "train s/iter", "{:.3f}"),
    ("infer_s_per_image", "infer s/im", "{:.3f}"),
    ("peak_rss_mb", "peak RSS (MB)", "{:.0f}"),
    ("peak_rss_growth_mb", "RSS growth (MB)", "{:.0f}"),
    ("cuda_max_allocated_mb", "CUDA max alloc (MB)", "{:.0f}"),
]


# ---- measuring --------------------------------------------------------------
def rss_mb():
    """Resident memory of this process now, in MiB."""
    return psutil.Process().memory_info().rss / 2**20


def peak_rss_mb():
    """Peak resident memory of this process since start or :func:`reset_peak_rss`, in MiB.

    Read from VmHWM: ``getrusage``'s ru_maxrss also remembers, across exec, the RSS
    of the parent that forked this process, which would hide the peak of a small child."""
    try:
        with open("/proc/self/status") as status:
            return next(int(line.split()[1]) for line in status if line.startswith("VmHWM:")) / 1024
    except (OSError, StopIteration):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def reset_peak_rss():
    """Restart the peak-RSS count from the current RSS (Linux >= 4.0), so that transient
    peaks of imports and model building do not hide the peak of what follows.

    Returns False where the kernel does not allow it (the peak then counts from start)."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_growth_mb(fn):
    """Peak RSS growth (MiB) of one call of ``fn`` over the RSS just before it.

    Other allocations of the process count too, so call it in a fresh process that
    has only built what ``fn`` needs (see :func:`run_worker`)."""
    reset_peak_rss()
    before = rss_mb()
    fn()
    return peak_rss_mb() - before


def run_worker(script, *args):
    """Run ``script`` with ``args`` in a fresh interpreter; the number its last output line prints."""
    command = [sys.executable, os.path.abspath(script), *map(str, args)]
    output = subprocess.run(command, stdout=subprocess.PIPE, text=True, check=True).stdout
    return float(output.strip().splitlines()[-1])


def synchronize(device):
    if str(device).startswith("cuda"):
        torch.cuda.synchronize()


def time_calls(fn, iters, warmup, device="cpu", clock=time.perf_counter):
    """Seconds of each of ``iters`` calls of ``fn`` after ``warmup`` untimed calls.

    ``clock=time.process_time`` counts this process's CPU seconds (all threads)
    instead of wall seconds: steadier when other processes share the CPU."""
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(iters):
        synchronize(device)
        start = clock()
        fn()
        synchronize(device)
        times.append(clock() - start)
    return times


def median_time(fn, iters, warmup, device="cpu", clock=time.perf_counter):
    return statistics.median(time_calls(fn, iters, warmup, device, clock))


@dataclasses.dataclass
class AlternatingTimes:
    """What :func:`time_alternately` measured, each a dict keyed by variant name:
    ``wall_s`` / ``cpu_s``, the median wall and CPU seconds (CPU: this process, all
    threads); ``wall_s_all`` / ``cpu_s_all``, the lists of every timed round; and
    ``first_results``, what each variant's first call returned."""

    wall_s: dict
    cpu_s: dict
    wall_s_all: dict
    cpu_s_all: dict
    first_results: dict


def time_alternately(variants, rounds, warmup_rounds=0, device="cpu", on_call=None):
    """Time several variants of one computation, alternating them round by round.

    Each round calls every variant once, in order, so that a change of the machine's
    load during the run hits all variants alike; timing one variant's rounds after
    another's would hand the change to one of them.

    Args:
        variants (dict[str, Callable[[], Any]]): variant name -> the call to time.
        rounds (int): timed calls of each variant, at least 1.
        warmup_rounds (int): untimed rounds first, alternating as well.
        device: CUDA work is synchronized before and after each call.
        on_call (Callable[[str, float, float, bool], Any] | None): called after every
            call with (name, wall seconds, CPU seconds, whether the call is timed),
            e.g. to print progress.

    Returns:
        AlternatingTimes: medians and every timed round's wall and CPU seconds, and the
        value each variant's first call returned (to check that the variants agree).
    """
    if rounds < 1 or warmup_rounds < 0:
        raise ValueError(f"need rounds >= 1 and warmup_rounds >= 0; got {rounds} and {warmup_rounds}")
    wall = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    first_results = {}
    for round_index in range(warmup_rounds + rounds):
        timed = round_index >= warmup_rounds
        for name, fn in variants.items():
            synchronize(device)
            start_wall, start_cpu = time.perf_counter(), time.process_time()
            result = fn()
            synchronize(device)
            wall_s, cpu_s = time.perf_counter() - start_wall, time.process_time() - start_cpu
            first_results.setdefault(name, result)
            if timed:
                wall[name].append(wall_s)
                cpu[name].append(cpu_s)
            if on_call is not None:
                on_call(name, wall_s, cpu_s, timed)
    return AlternatingTimes(
        wall_s={name: statistics.median(seconds) for name, seconds in wall.items()},
        cpu_s={name: statistics.median(seconds) for name, seconds in cpu.items()},
        wall_s_all=wall,
        cpu_s_all=cpu,
        first_results=first_results,
    )


def matmul_gflop_per_s(size=2048, iters=5, device="cpu"):
    """Measured float32 matmul rate of this machine (2 * size^3 flops per product)."""
    a = torch.randn(size, size, device=device)
    b = torch.randn(size, size, device=device)
    seconds = min(time_calls(lambda: a @ b, iters, warmup=1, device=device))
    return 2 * size**3 / seconds / 1e9


def machine_description():
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            cpu = next(line.split(":", 1)[1].strip() for line in cpuinfo if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores, {psutil.virtual_memory().total / 2**30:.0f} GiB RAM, torch {torch.__version__}"


# ---- the model and its inputs -------------------------------------------------
def synthetic_batch(batch_size, input_size, num_classes, seed=0, boxes_per_image=5, device="cpu"):
    """Random images with random boxes, classes and box-shaped masks (detectron2's input format)."""
    from detectron2.structures import BitMasks, Boxes, Instances

    generator = torch.Generator().manual_seed(seed)
    height, width = input_size
    batch = []
    for _ in range(batch_size):
        image = torch.randint(0, 256, (3, height, width), generator=generator, dtype=torch.uint8)
        corners = torch.rand(boxes_per_image, 2, 2, generator=generator) * torch.tensor([width, height])
        top_left = corners.min(1).values
        bottom_right = torch.maximum(corners.max(1).values, top_left + 8).minimum(torch.tensor([width, height]))
        boxes = torch.cat([top_left, bottom_right], dim=1)
        masks = torch.zeros(boxes_per_image, height, width, dtype=torch.bool)
        for mask, (x0, y0, x1, y1) in zip(masks, boxes.round().long().tolist()):
            mask[y0:y1, x0:x1] = True
        instances = Instances(
            (height, width),
            gt_boxes=Boxes(boxes),
            gt_classes=torch.randint(0, num_classes, (boxes_per_image,), generator=generator),
            gt_masks=BitMasks(masks),
        )
        batch.append({"image": image.to(device), "height": height, "width": width, "instances": instances.to(device)})
    return batch


def enable_activation_checkpointing(model, config_name):
    """Switch on every ``use_act_checkpoint`` flag in the model (ViT-style backbones)."""
    flagged = [module for module in model.modules() if hasattr(module, "use_act_checkpoint")]
    if not flagged:
        raise ValueError(f"{config_name}: no module has a use_act_checkpoint option, so --activation-checkpointing cannot apply")
    for module in flagged:
        module.use_act_checkpoint = True


def build(args, config_file):
    from detectron2.config import instantiate

    from d2backbones.engine.config import load_config

    cfg = load_config(config_file, args.opts)
    model = instantiate(cfg.model).to(args.device)
    if args.activation_checkpointing:
        enable_activation_checkpointing(model, config_file)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    if args.compile:
        # Compiled in place, so detectron2 still sees the backbone's own attributes.
        model.backbone.compile()
    num_classes = cfg.model.roi_heads.num_classes if "roi_heads" in cfg.model else 1
    return model, optimizer, num_classes


def autocast(args):
    dtype = {"off": None, "fp16": torch.float16, "bf16": torch.bfloat16}[args.amp]
    return torch.autocast(device_type=torch.device(args.device).type, dtype=dtype, enabled=dtype is not None)


def count_flops(model, image):
    """fvcore multiply-adds, in G, of the whole model and of its backbone on one image."""
    from detectron2.utils.analysis import FlopCountAnalysis
    from fvcore.nn import FlopCountAnalysis as TensorFlopCountAnalysis

    model.eval()
    # fvcore traces with torch.jit, which refuses a torch.compile'd module: count the eager one.
    compiled_call = model.backbone._compiled_call_impl
    model.backbone._compiled_call_impl = None
    try:
        with torch.no_grad():
            total = FlopCountAnalysis(model, [{"image": image}]).unsupported_ops_warnings(False).total()
            images = model.preprocess_image([{"image": image}]).tensor
            backbone = TensorFlopCountAnalysis(model.backbone, (images,)).unsupported_ops_warnings(False).total()
    finally:
        model.backbone._compiled_call_impl = compiled_call
    return total / 1e9, backbone / 1e9


def measure_config(args, config_file):
    """One record of every measurement for one config (run in its own process)."""
    torch.manual_seed(0)
    model, optimizer, num_classes = build(args, config_file)
    reset_peak_rss()
    rss_after_build = rss_mb()
    batch = synthetic_batch(args.batch_size, args.input_size, num_classes, device=args.device)
    record = {
        "config": config_file,
        "name": args.name or os.path.splitext(os.path.basename(config_file))[0],
        "input_size": format_size(args.input_size),
        "batch_size": args.batch_size,
        "device": args.device,
        "amp": args.amp,
        "compile": args.compile,
        "activation_checkpointing": args.activation_checkpointing,
        "iters": args.iters,
        "warmup": args.warmup,
        "params": sum(p.numel() for p in model.parameters()) / 1e6,
        "backbone_params": sum(p.numel() for p in model.backbone.parameters()) / 1e6,
        "machine": machine_description(),
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    scaler = torch.amp.GradScaler(enabled=args.amp == "fp16" and args.device.startswith("cuda"))

    def train_step():
        with autocast(args):
            losses = sum(model(batch).values())
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(losses).backward()
        scaler.step(optimizer)
        scaler.update()
        record["last_train_loss"] = losses.item()

    if args.iters > 0:
        from detectron2.utils.events import EventStorage

        model.train()
        with EventStorage():  # detectron2's losses log into one
            record["train_s_per_iter"] = median_time(train_step, args.iters, args.warmup, args.device)

    inputs = [{key: item[key] for key in ("image", "height", "width")} for item in batch]
    images = None

    def infer():
        with torch.no_grad(), autocast(args):
            model(inputs)

    def infer_backbone():
        with torch.no_grad(), autocast(args):
            model.backbone(images)

    if args.iters > 0 and not args.no_infer:
        model.eval()
        record["infer_s_per_image"] = median_time(infer, args.iters, args.warmup, args.device) / args.batch_size
        with torch.no_grad():
            images = model.preprocess_image(inputs).tensor
        record["backbone_infer_s_per_image"] = (
            median_time(infer_backbone, args.iters, args.warmup, args.device) / args.batch_size
        )
    record["peak_rss_mb"] = peak_rss_mb()
    record["rss_after_build_mb"] = rss_after_build
    record["peak_rss_growth_mb"] = record["peak_rss_mb"] - rss_after_build
    if args.device.startswith("cuda"):
        record["cuda_max_allocated_mb"] = torch.cuda.max_memory_allocated() / 2**20

    if not args.no_flops:
        # After the timings: tracing allocates too, and must not count in the peak above.
        record["gflops"], record["backbone_gflops"] = count_flops(model, batch[0]["image"])
    if args.matmul:
        record["matmul_gflop_per_s"] = matmul_gflop_per_s(args.matmul_size, device=args.device)
        if "backbone_gflops" in record and "backbone_infer_s_per_image" in record:
            achieved = 2 * record["backbone_gflops"] / record["backbone_infer_s_per_image"]
            record["backbone_achieved_gflop_per_s"] = achieved
            record["backbone_fraction_of_matmul"] = achieved / record["matmul_gflop_per_s"]
    return record


# ---- reporting ----------------------------------------------------------------
def markdown_header():
    headers = [header for _, header, _ in TABLE_COLUMNS]
    return "| " + " | ".join(headers) + " |\n|" + "---|" * len(headers)


def markdown_row(record):
    cells = []
    for key, _, fmt in TABLE_COLUMNS:
        value = record.get(key)
        cells.append("-" if value is None else fmt.format(value))
    return "| " + " | ".join(cells) + " |"


def plot(records, path):
    """Bar charts of training time, inference time and peak memory, one bar per record."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = [f"{r['name']}\n{r['input_size']}px {r['device']} {r['amp']}" for r in records]
    memory_key = "cuda_max_allocated_mb" if all("cuda_max_allocated_mb" in r for r in records) else "peak_rss_mb"
    panels = [
        ("train_s_per_iter", "train s/iter"),
        ("infer_s_per_image", "inference s/image"),
        (memory_key, "CUDA max allocated (MB)" if memory_key.startswith("cuda") else "peak RSS (MB)"),
    ]
    figure, axes = plt.subplots(1, len(panels), figsize=(4 + 1.5 * len(records), 4))
    for axis, (key, title) in zip(axes, panels):
        axis.bar(range(len(records)), [r.get(key) or 0 for r in records], color="tab:blue")
        axis.set_xticks(range(len(records)), labels, rotation=30, ha="right", fontsize=7)
        axis.set_title(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def write_outputs(records, output_dir):
    os.makedirs(output_dir, exist_ok=True)
    with open(os.path.join(output_dir, "benchmark.json"), "w") as f:
        json.dump(records, f, indent=1)
    with open(os.path.join(output_dir, "benchmark.md"), "w") as f:
        f.write(markdown_header() + "\n" + "\n".join(markdown_row(r) for r in records) + "\n")
    plot(records, os.path.join(output_dir, "benchmark.png"))


# ---- command line -------------------------------------------------------------
def parse_size(text):
    """'1024' -> (1024, 1024); '800x1333' -> (800, 1333)."""
    try:
        sides = [int(side) for side in text.lower().split("x")]
    except ValueError:
        sides = []
    if len(sides) not in (1, 2) or min(sides) <= 0:
        raise argparse.ArgumentTypeError(f"input size must be N or HEIGHTxWIDTH in pixels, got {text!r}")
    return (sides[0], sides[-1])


def format_size(size):
    return size[0] if size[0] == size[1] else f"{size[0]}x{size[1]}"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config-file", nargs="+", required=True, help="one or more LazyConfig .py files")
    parser.add_argument("--input-size", type=parse_size, default=(1024, 1024),
                        help="input size in pixels: 1024 (square) or HEIGHTxWIDTH, e.g. 800x1333")
    parser.add_argument("--batch-size", type=int, default=1)
    parser.add_argument("--iters", type=int, default=5, help="timed iterations (median is reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed iterations first")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--amp", choices=["off", "fp16", "bf16"], default="off")
    parser.add_argument("--compile", action="store_true", help="torch.compile the backbone")
    parser.add_argument("--activation-checkpointing", action="store_true")
    parser.add_argument("--no-flops", action="store_true", help="skip the fvcore count (it traces the model)")
    parser.add_argument("--no-infer", action="store_true", help="time training only")
    parser.add_argument("--matmul", action="store_true", help="also measure the machine's matmul GFLOP/s")
    parser.add_argument("--matmul-size", type=int, default=2048, help="side of the square matrices of --matmul")
    parser.add_argument("--name", default=None, help="label of the record (default: the config's file name)")
    parser.add_argument("--output-dir", default="output/benchmark")
    parser.add_argument("--append", action="store_true", help="add to <output-dir>/benchmark.json")
    parser.add_argument("--in-process", action="store_true", help="measure in this process (one config)")
    parser.add_argument("opts", nargs=argparse.REMAINDER, default=[], help="config overrides key=value")
    args = parser.parse_args(argv)
    # "--config-file a.py key=value" puts the override among the config files.
    args.opts = [f for f in args.config_file if "=" in f] + args.opts
    args.config_file = [f for f in args.config_file if "=" not in f]
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: no CUDA device is available here")
    if args.in_process and len(args.config_file) > 1:
        parser.error("--in-process measures one config")
    for config_file in args.config_file:
        if not os.path.isfile(config_file):
            parser.error(f"config file not found: {config_file}")
    return args


def run_in_subprocess(argv, config_file):
    """Measure one config in a fresh interpreter; return its record."""
    child = [arg for arg in argv if arg not in ("--append",)]
    command = [sys.executable, os.path.abspath(__file__), "--in-process", "--config-file", config_file]
    command += _without_config_files(child)
    result = subprocess.run(command, stdout=subprocess.PIPE, text=True)
    if result.returncode != 0:
        raise SystemExit(f"benchmark of {config_file} failed (exit {result.returncode})")
    return json.loads(result.stdout.strip().splitlines()[-1])


def _without_config_files(argv):
    out, skipping = [], False
    for arg in argv:
        if arg == "--config-file":
            skipping = True
            continue
        if skipping and (arg.startswith("-") or "=" in arg):
            skipping = False
        if not skipping:
            out.append(arg)
    return out


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    if args.in_process:
        record = measure_config(args, args.config_file[0])
        print(json.dumps(record))
        return [record]
    records = []
    json_path = os.path.join(args.output_dir, "benchmark.json")
    if args.append and os.path.isfile(json_path):
        with open(json_path) as f:
            records = json.load(f)
    print(markdown_header())
    for config_file in args.config_file:
        record = run_in_subprocess(argv, config_file)
        records.append(record)
        print(markdown_row(record))
        if "matmul_gflop_per_s" in record:
            print(f"  matmul {record['matmul_gflop_per_s']:.1f} GFLOP/s; backbone forward achieves "
                  f"{record.get('backbone_achieved_gflop_per_s', float('nan')):.1f} GFLOP/s "
                  f"({100 * record.get('backbone_fraction_of_matmul', float('nan')):.0f}%)")
    write_outputs(records, args.output_dir)
    print(f"wrote {json_path}, benchmark.md and benchmark.png")
    return records


if __name__ == "__main__":
    main()
