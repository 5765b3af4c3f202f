"""`make demo`: the mini reproduction's headline, on 2 CPU cores in under 10 minutes.

1. The engine table: the mini teacher (mnist1d, 88.8k-param CNN) and students (6.5k-param
   CNN) trained with CE, KD (KL tau 4, alpha 0.9), KL tau 20 and logit MSE, seed 0.
2. Paper 1's headline: the mini tau sweep (table + figure) from reproduce/kl_vs_mse.py,
   reusing the runs of step 1 where the configs coincide.

Outputs: results/demo/ (tables and figures). One seed, so differences of a few tenths are
noise here; the committed 3-seed results are under results/kl_vs_mse/mini/.
"""
import argparse
import time
from pathlib import Path

from engine import make_config, teacher_config, train, train_group
from engine.rundir import results_root
from reproduce.cli import main_guard
from reproduce.profiles import get_profile

STUDENTS = [  # (label, loss, hyperparameters)
    ("CE (no teacher)", "ce", {}),
    ("KD: KL tau 4, alpha 0.9", "kl", {"tau": 4.0, "alpha": 0.9}),
    ("KL tau 20", "kl", {"tau": 20.0}),
    ("logit MSE", "mse", {}),
]


def engine_table(profile_name: str, seed: int, quiet: bool) -> str:
    p = get_profile(profile_name)
    tcfg = teacher_config(p.dataset, p.teacher, seed=0, recipe=p.teacher_recipe, dataset_options=p.dataset_options)
    teacher = train(tcfg, quiet=quiet, log_every=10)
    configs = []
    for label, loss, hp in STUDENTS:
        teachers = [] if loss == "ce" else [tcfg.run_id]
        configs.append(make_config("demo", p.dataset, p.student, loss=loss, loss_hparams=hp, teachers=teachers,
                                   recipe=p.student_recipe, seed=seed, dataset_options=p.dataset_options,
                                   model_options=p.student_options))
    # CE has no teacher, so it trains on its own; the KD students share one teacher pass.
    runs = train_group(configs[:1], quiet=quiet, log_every=50) + train_group(configs[1:], quiet=quiet, log_every=50)
    lines = [f"Mini engine table ({p.note}); seed {seed}, final epoch test top-1 (%).", "",
             "| model | test top-1 | agreement with teacher | train time (s) |", "|---|---|---|---|",
             f"| teacher {p.teacher} (CE) | {teacher.summary()['final']['test_top1']:.2f} | | "
             f"{teacher.summary()['train_time_s']:.0f} |"]
    for (label, _, _), rd in zip(STUDENTS, runs):
        s = rd.summary()
        agree = s["final"].get("agree_top1")
        lines.append(f"| {p.student}: {label} | {s['final']['test_top1']:.2f} | "
                     f"{'' if agree is None else f'{agree:.2f}'} | {s['train_time_s']:.0f} |")
    return "\n".join(lines) + "\n"


@main_guard
def main(argv=None):
    ap = argparse.ArgumentParser(prog="python -m reproduce.demo", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--profile", default="mini", help="mini (default) or smoke (tests)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--quiet", action="store_true")
    args = ap.parse_args(argv)
    start = time.time()
    out = results_root() / "demo"
    out.mkdir(parents=True, exist_ok=True)
    table = engine_table(args.profile, args.seed, args.quiet)
    (out / "engine_table.md").write_text(table)
    print("\n" + table)
    try:
        from reproduce.kl_vs_mse import demo_headline
    except ImportError:
        demo_headline = None
    if demo_headline is not None:
        for path in demo_headline(profile=args.profile, seeds=(args.seed,), out_dir=out, quiet=args.quiet):
            print(f"wrote {path}")
    print(f"demo finished in {time.time() - start:.0f} s; outputs in {Path(out)}")


if __name__ == "__main__":
    main()
