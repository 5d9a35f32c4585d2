"""Trainer settings shared by every config; same keys as detectron2's
``common/train.py``, so detectron2's ``lazyconfig_train_net.py`` runs our configs too."""

train = dict(
    output_dir="./output",
    init_checkpoint="",
    max_iter=90000,
    amp=dict(enabled=False),
    ddp=dict(broadcast_buffers=False, find_unused_parameters=False, fp16_compression=False),
    checkpointer=dict(period=5000, max_to_keep=100),
    eval_period=5000,
    log_period=20,
    # Read by detectron2's default_setup; -1 draws a fresh seed per run.
    seed=-1,
    # An EMA of the weights (timm's ModelEmaV3), saved in checkpoints as "model_ema";
    # use_for_eval evaluates the average instead of the trained weights.
    model_ema=dict(enabled=False, decay=0.9998, use_for_eval=False),
    # Our trainer falls back to CPU when no GPU is present, so configs need not change.
    device="cuda",
)
