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
from d2backbones.benchmarking.cli import main

if __name__ == "__main__":
    main()
