"""Convert a published NASNet checkpoint to a Detectron2 checkpoint for MODEL.WEIGHTS.

    python tools/convert_pretrained.py nasnetalarge-dc4a7b8b.pth nasnet_a_large_d2.pth
    python tools/convert_pretrained.py nasnetamobile-7e03cead.pth nasnet_a_mobile_d2.pth --model nasnet_a_mobile

Takes timm's or Cadene's nasnetalarge / nasnetamobile / pnasnet5large state_dict files. The
weights are loaded strictly into our network first, so a file of another network fails with the
keys named. Weights ported from TF keep TF's average-pool padding semantics (our default).
"""
from .. import cli
from ..errors import CheckpointError
from ..modeling import CONFIGS, PUBLISHED, build_nasnet, penultimate_width
from ..modeling.convert import load_reference_weights, read_checkpoint, save_for_detectron2, unwrap_state_dict

# the ImageNet networks, recognised by their classifier's input width
GUESS = {penultimate_width(name): name for name, p in PUBLISHED.items() if p.options.get("stem", "imagenet") == "imagenet"}


def main(argv=None):
    parser = cli.ArgumentParser(description=__doc__)
    parser.add_argument("source", help="timm/Cadene .pth state_dict")
    parser.add_argument("output", help="Detectron2 checkpoint to write")
    parser.add_argument("--model", choices=sorted(CONFIGS), help="default: guessed from the classifier width")
    args = parser.parse_args(argv)
    state = unwrap_state_dict(read_checkpoint(args.source))
    name = args.model
    if name is None:
        width = state["last_linear.weight"].shape[1] if "last_linear.weight" in state else None
        name = GUESS.get(width)
        if name is None:
            raise CheckpointError(f"cannot tell the network of {args.source} (classifier width {width}); "
                                  f"name it with --model ({', '.join(sorted(CONFIGS))})")
    options = dict(CONFIGS[name])
    num_classes = state["last_linear.weight"].shape[0] if "last_linear.weight" in state else 0
    model = build_nasnet(options.pop("genotype"), **{**options, "num_classes": num_classes})
    load_reference_weights(model, state)
    save_for_detectron2(model, args.output)
    print(f"{args.source} -> {args.output} ({name}, {sum(p.numel() for p in model.parameters()) / 1e6:.2f} M params)")


if __name__ == "__main__":
    cli.run(main)
