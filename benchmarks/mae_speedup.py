#!/usr/bin/env python
"""MAE's saving: the encoder on the visible 25% of the tokens against the same encoder
fed all of them, at ViT-B and 224 px.

    benchmarks/mae_speedup.py                      # ViT-B, 224 px, batch 8, 3 rounds
    benchmarks/mae_speedup.py --model tiny --rounds 2

One process builds ``configs/Pretrain/mae_vit_base_1600ep.py``'s model once (random
init, train mode) and times, alternating round by round on one batch:

- ``mae encoder, ratio 0.75``: the encoder on the 49 visible tokens (+ cls), forward
  and backward of its output's mean;
- ``encoder, all tokens``: the same encoder and weights on all 196 tokens (ratio 0);
- ``mae step, ratio 0.75``: MAE's whole training step (encoder, 8-block decoder over
  all positions, loss on the masked patches, backward);
- ``mae step, encoder on all tokens``: the same step with the encoder fed every token
  (MAE's "encoder w/ [M]" row, Table 1c), the decoder unchanged.

Before timing, each variant is checked: the encoder keeps ``int(196 * 0.25) + 1``
tokens at ratio 0.75 and all ``197`` at ratio 0, and the losses are finite. Images per
second are batch / median wall seconds. The issue's target is the first pair: at least
3x; the second pair shows what the decoder, which always sees all positions, leaves of it.
"""
import argparse
import json

import torch

from detectron2.config import instantiate

from d2backbones.benchmarking import machine_description, time_alternately
from d2backbones.engine.config import load_config
from d2backbones.layers import num_visible_tokens
from d2backbones.pretrain import masked_patch_mse

CONFIG = "configs/Pretrain/mae_vit_base_1600ep.py"
TINY = ["model.img_size=64", "model.patch_size=8", "model.embed_dim=64", "model.depth=2", "model.num_heads=2",
        "model.decoder_embed_dim=32", "model.decoder_depth=1", "model.decoder_num_heads=2"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=["base", "tiny"], default="base")
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--warmup-rounds", type=int, default=1)
    parser.add_argument("--output", default=None, help="write the record as JSON here")
    return parser.parse_args()


def main():
    args = parse_args()
    torch.manual_seed(0)
    model = instantiate(load_config(CONFIG, TINY if args.model == "tiny" else []).model).train()
    size = model.grid * model.patch_size
    images = torch.randn(args.batch_size, 3, size, size)
    num_tokens = model.grid * model.grid

    def encoder(ratio):
        def step():
            model.zero_grad(set_to_none=True)
            latent, _, _ = model.forward_encoder(images, ratio)
            latent.mean().backward()
            return latent.shape[1]
        return step

    # MAE's masked positions, for the loss of the all-token step (its encoder sees every
    # token, so which ones are masked changes only the loss, not the work).
    masked = (torch.rand(args.batch_size, num_tokens).argsort(1).argsort(1) >= num_visible_tokens(num_tokens, 0.75))

    def mae_step(encoder_sees_all):
        def step():
            model.zero_grad(set_to_none=True)
            if encoder_sees_all:
                latent, _, ids_restore = model.forward_encoder(images, 0.0)
                loss = masked_patch_mse(model.forward_decoder(latent, ids_restore), model.target(images),
                                        masked.float())
            else:
                loss = model.forward_images(images)["loss"]
            loss.backward()
            return loss.item()
        return step

    variants = {
        "mae encoder, ratio 0.75": encoder(0.75),
        "encoder, all tokens": encoder(0.0),
        "mae step, ratio 0.75": mae_step(False),
        "mae step, encoder on all tokens": mae_step(True),
    }
    assert variants["mae encoder, ratio 0.75"]() == num_visible_tokens(num_tokens, 0.75) + 1
    assert variants["encoder, all tokens"]() == num_tokens + 1
    assert all(torch.isfinite(torch.tensor(variants[name]())) for name in list(variants)[2:])
    times = time_alternately(variants, args.rounds, args.warmup_rounds)
    record = {"model": args.model, "image_size": size, "batch_size": args.batch_size, "rounds": args.rounds,
              "machine": machine_description(), "wall_s": times.wall_s, "cpu_s": times.cpu_s,
              "images_per_s": {name: args.batch_size / s for name, s in times.wall_s.items()}}
    record["encoder_speedup"] = times.wall_s["encoder, all tokens"] / times.wall_s["mae encoder, ratio 0.75"]
    record["step_speedup"] = times.wall_s["mae step, encoder on all tokens"] / times.wall_s["mae step, ratio 0.75"]
    for name, seconds in times.wall_s.items():
        print(f"{name:34s} {seconds:8.3f} s  {args.batch_size / seconds:7.1f} images/s")
    print(f"encoder speed-up {record['encoder_speedup']:.2f}x (target >= 3x); "
          f"whole MAE step {record['step_speedup']:.2f}x")
    if args.output:
        with open(args.output, "w") as f:
            json.dump(record, f, indent=1)


if __name__ == "__main__":
    main()
