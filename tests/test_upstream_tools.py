"""detectron2's own LazyConfig tools run this project's demo configs, as a user's
detectron2 checkout runs them: nothing of this project is imported but what the
config imports, and the embedded datasets come from ``import d2backbones``.

This file is also the "user's tool". Run as a script in a fresh process, it does
what detectron2's ``tools/lazyconfig_train_net.py`` and ``tools/analyze_model.py``
do, written here from detectron2's public API (no upstream script is copied or
vendored, and this project's CLI, ``d2backbones.engine.cli``, is never imported):

    python tests/test_upstream_tools.py train CONFIG OVERRIDE...
    python tests/test_upstream_tools.py analyze CONFIG OVERRIDE...

Each prints one json line, after ``RESULT:``, for the tests below to check.
"""
import ast
import glob
import json
import os
import subprocess
import sys

import pytest
import torch
from detectron2.checkpoint import DetectionCheckpointer
from detectron2.config import LazyConfig, instantiate
from detectron2.engine import AMPTrainer, SimpleTrainer, default_argument_parser, default_setup, hooks
from detectron2.engine.defaults import create_ddp_model, default_writers
from detectron2.evaluation import inference_on_dataset, print_csv_format
from detectron2.utils import comm
from detectron2.utils.analysis import FlopCountAnalysis, parameter_count, parameter_count_table

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DEMO = "configs/demo/vitdet_tiny.py"
DEMO_CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "demo", "*.py")))
RESULT = "RESULT:"
ENV = dict(os.environ, OMP_NUM_THREADS="1")
# The demo ViT: patch 8 on 128-px images (16 x 16 tokens), width 128, 4 blocks of
# qkv (3C^2), proj (C^2) and a 4x MLP (8C^2) multiply-adds per token.
DEMO_TOKENS, DEMO_WIDTH, DEMO_DEPTH = (128 // 8) ** 2, 128, 4
DEMO_VIT_LINEAR_FLOPS = DEMO_DEPTH * DEMO_TOKENS * 12 * DEMO_WIDTH**2
# An untrained detector keeps 100 boxes per image, and predicting and pasting their masks takes
# about a minute on the 300 validation images (measured: 57 s); 3 per image take 13 s.
FEW_DETECTIONS = ["model.roi_heads.box_predictor.test_topk_per_image=3", "model.proposal_generator.post_nms_topk=[300,20]"]


# ---- the user's tool: run in a fresh process ----------------------------------


def lazyconfig_train(config_file, overrides):
    """Train and evaluate as ``lazyconfig_train_net.py`` does; returns the final results."""
    args = default_argument_parser().parse_args(["--config-file", config_file, *overrides])
    cfg = LazyConfig.apply_overrides(LazyConfig.load(args.config_file), args.opts)
    default_setup(cfg, args)

    evaluations = []

    def evaluate(model):
        results = inference_on_dataset(model, instantiate(cfg.dataloader.test), instantiate(cfg.dataloader.evaluator))
        print_csv_format(results)
        evaluations.append(results)
        return results

    model = instantiate(cfg.model).to(cfg.train.device)
    cfg.optimizer.params.model = model
    optimizer = instantiate(cfg.optimizer)
    loader = instantiate(cfg.dataloader.train)
    model = create_ddp_model(model, **cfg.train.ddp)
    trainer = (AMPTrainer if cfg.train.amp.enabled else SimpleTrainer)(model, loader, optimizer)
    checkpointer = DetectionCheckpointer(model, cfg.train.output_dir, trainer=trainer)
    trainer.register_hooks(
        [
            hooks.IterationTimer(),
            hooks.LRScheduler(scheduler=instantiate(cfg.lr_multiplier)),
            hooks.PeriodicCheckpointer(checkpointer, **cfg.train.checkpointer) if comm.is_main_process() else None,
            hooks.EvalHook(cfg.train.eval_period, lambda: evaluate(model)),
            hooks.PeriodicWriter(default_writers(cfg.train.output_dir, cfg.train.max_iter), period=cfg.train.log_period)
            if comm.is_main_process()
            else None,
        ]
    )
    checkpointer.resume_or_load(cfg.train.init_checkpoint, resume=False)
    trainer.train(0, cfg.train.max_iter)
    return {"results": evaluations[-1], "evaluations": len(evaluations)}


def analyze_model(config_file, overrides):
    """``analyze_model.py --tasks flop`` on one test batch, and ``--tasks parameter``."""
    cfg = LazyConfig.apply_overrides(LazyConfig.load(config_file), overrides)
    model = instantiate(cfg.model).to(cfg.train.device).eval()
    batch = next(iter(instantiate(cfg.dataloader.test)))
    with torch.no_grad():
        flops = FlopCountAnalysis(model, batch).unsupported_ops_warnings(False).uncalled_modules_warnings(False)
        per_module = flops.by_module_and_operator()
        total = flops.total()
    table = parameter_count_table(model, max_depth=5)
    return {
        "images": len(batch),
        "total_flops": total,
        "vit_linear_flops": per_module["model.backbone.net"].get("linear", 0),
        "parameters": parameter_count(model)[""],
        "parameters_by_sum": sum(p.numel() for p in model.parameters()),
        "table_rows": [line.split("|")[1].strip() for line in table.splitlines()[2:]],
    }


def main(argv):
    task, config_file, *overrides = argv
    imported_before_config = "d2backbones" in sys.modules
    result = {"train": lazyconfig_train, "analyze": analyze_model}[task](config_file, overrides)
    result["imported_before_config"] = imported_before_config
    result["cli_imported"] = "d2backbones.engine.cli" in sys.modules
    print(RESULT + json.dumps(result, default=float))


# ---- the tests ------------------------------------------------------------------


def imports_d2backbones(path):
    """Whether the config file at ``path``, or a config it imports relatively, imports d2backbones."""
    with open(path) as f:
        tree = ast.parse(f.read())
    for node in ast.walk(tree):
        if isinstance(node, ast.Import) and any(a.name.split(".")[0] == "d2backbones" for a in node.names):
            return True
        if isinstance(node, ast.ImportFrom):
            if node.level == 0 and node.module.split(".")[0] == "d2backbones":
                return True
            if node.level > 0:
                base = os.path.dirname(path)
                for _ in range(node.level - 1):
                    base = os.path.dirname(base)
                imported = os.path.join(base, *node.module.split(".")) + ".py"
                if os.path.isfile(imported) and imports_d2backbones(imported):
                    return True
    return False


@pytest.mark.parametrize("path", DEMO_CONFIGS, ids=os.path.basename)
def test_every_demo_config_imports_the_package_that_registers_its_datasets(path):
    dataloader = LazyConfig.load(path).dataloader
    names = {dataloader.train.dataset.names, dataloader.test.dataset.names}
    assert names == {"synthetic_shapes_train", "synthetic_shapes_val"}
    assert imports_d2backbones(path)


def run_tool(*argv):
    """This file as a script in a fresh interpreter; its RESULT json."""
    completed = subprocess.run(
        [sys.executable, os.path.abspath(__file__), *argv],
        cwd=ROOT, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=600,
    )
    assert completed.returncode == 0, completed.stdout[-3000:]
    lines = [line for line in completed.stdout.splitlines() if line.startswith(RESULT)]
    assert len(lines) == 1, completed.stdout[-3000:]
    return json.loads(lines[0][len(RESULT):])


def test_lazyconfig_train_net_flow_trains_and_evaluates_the_demo_config(tmp_path):
    result = run_tool(
        "train", DEMO,
        f"train.output_dir={tmp_path}",
        "train.max_iter=5",
        "train.eval_period=0",
        "train.log_period=1",
        "train.checkpointer.period=5",
        "dataloader.train.total_batch_size=2",
        "dataloader.train.num_workers=0",
        "dataloader.test.num_workers=0",
        *FEW_DETECTIONS,
    )
    assert not result["imported_before_config"] and not result["cli_imported"]
    with open(tmp_path / "metrics.json") as f:
        records = [json.loads(line) for line in f]
    assert [r["iteration"] for r in records if "total_loss" in r] == [0, 1, 2, 3, 4]
    # The final evaluation ran once, on synthetic_shapes_val, and reached metrics.json.
    assert result["evaluations"] == 1
    assert set(result["results"]) == {"bbox", "segm"}
    assert {"AP", "AP50", "APs"} <= set(result["results"]["bbox"])
    assert any(k.startswith("bbox/AP") for r in records for k in r)
    assert (tmp_path / "model_final.pth").is_file()


def test_analyze_model_counts_flops_and_parameters_of_the_demo_config():
    result = run_tool("analyze", DEMO, "dataloader.test.batch_size=1", "dataloader.test.num_workers=0")
    assert not result["imported_before_config"] and not result["cli_imported"]
    assert result["images"] == 1
    # fvcore traced the ViT through detectron2's TracingAdapter: every linear layer of
    # every block, on every token, and nothing else in the ViT is a linear layer.
    assert result["vit_linear_flops"] == DEMO_VIT_LINEAR_FLOPS
    assert result["total_flops"] > 2 * DEMO_VIT_LINEAR_FLOPS
    assert result["parameters"] == result["parameters_by_sum"] > 1e6
    assert {"backbone.net", "proposal_generator", "roi_heads"} <= set(result["table_rows"])


if __name__ == "__main__":
    main(sys.argv[1:])
