"""Student groups of the mini profiles, ways of training them compared epoch by epoch in one process.

    python -m bench.groups mini7 --epochs 20        # paper 1's 7-student group (cnn1d_student, no BN)
    python -m bench.groups mini100 --epochs 4       # 8 BatchNorm students (cnn1d_s100_shallow)

Variants (each in its own run directories; the recipe's `source` text differs, nothing else):
- `separate, before`: one run at a time, each with its own teacher forward, torch's pooling,
  run-directory writes in line (what `python -m reproduce.train` did for each run before
  engine/fastops.py and the trainer's I/O threads);
- `group, before`: the runs as one group (one teacher forward per batch), as before (what
  `make mini` did: the 160-170 s of the issue for the 7-student group);
- `group`: the same with engine/fastops.py and the I/O threads (today's default; bit-identical
  to `group, before`);
- `group, stacked`: stacked students (engine/stacked.py), fastops.
The variants' epochs are interleaved (epoch e of every variant, then epoch e + 1), so a shared
machine's changing load falls on all of them alike; each epoch's wall and CPU seconds
(`time.process_time`, I/O threads included) are recorded and extrapolated to the recipe's length
(mean non-evaluated epoch x their number + mean evaluated epoch x theirs). Setup (data, teacher
load) and the final outputs are left out: the same for every variant, small against 300 epochs.
"""
from __future__ import annotations

import argparse
import os
import statistics
import time

from bench.profile_group import SETTINGS, run_in_scratch_store

VARIANTS = {
    "separate, before": {"separate": True, "fast_ops": False, "io_threads": False, "stack": False},
    "group, before": {"separate": False, "fast_ops": False, "io_threads": False, "stack": False},
    "group": {"separate": False, "fast_ops": True, "io_threads": True, "stack": False},
    "group, stacked": {"separate": False, "fast_ops": True, "io_threads": True, "stack": True},
}


def _trainers(configs, spec):
    from engine.trainer import Trainer

    groups = [[c] for c in configs] if spec["separate"] else [configs]
    out = []
    for g in groups:
        before = os.environ.get("LOGIT_KD_FASTOPS")
        os.environ["LOGIT_KD_FASTOPS"] = "1" if spec["fast_ops"] else "0"     # read by Trainer (teachers too)
        try:
            tr = Trainer(g, quiet=True, force=True, stack=spec["stack"])
        finally:
            if before is None:
                del os.environ["LOGIT_KD_FASTOPS"]
            else:
                os.environ["LOGIT_KD_FASTOPS"] = before
        tr.io_threads = spec["io_threads"]
        members = [tr._make_member(c) for c in g]
        tr.stacked = tr._maybe_stack(members)
        if spec["stack"] and tr.stacked is None:
            raise RuntimeError("the stacked variant did not stack")
        out.append((tr, members))
    return out


def compare(setting: str, epochs: int, variants=None, log=print) -> dict:
    """Train `epochs` epochs of the setting's group in each variant, interleaved; returns the
    per-variant epoch times and their extrapolation to the recipe's full length."""
    from engine import make_config, train
    from engine.recipes import evaluates

    dataset, teacher_model, teacher_recipe, options, group = SETTINGS[setting]
    teacher = train(make_config("teachers", dataset, teacher_model, recipe=teacher_recipe,
                                recipe_overrides={"epochs": 1}, dataset_options=options), quiet=True)
    base = group(teacher.config.run_id)
    recipe = base[0].recipe_obj()
    names = list(variants or VARIANTS)
    runs = {}
    for name in names:
        configs = [make_config(c.experiment, c.dataset, c.model, loss=c.loss, loss_hparams=c.loss_hparams,
                               teachers=c.teachers, recipe=recipe.replace(source=f"bench variant {name}"),
                               dataset_options=c.dataset_options) for c in base]
        runs[name] = _trainers(configs, VARIANTS[name])
    times = {n: [] for n in names}
    for e in range(epochs):
        for n in names:
            w, c = time.perf_counter(), time.process_time()
            for tr, members in runs[n]:
                tr._train_epoch(members, e)
            times[n].append((time.perf_counter() - w, time.process_time() - c, evaluates(recipe, e + 1)))
        log(f"  epoch {e + 1}/{epochs}: " + ", ".join(f"{n} {times[n][-1][0]:.2f} s" for n in names))
    n_eval = sum(evaluates(recipe, e + 1) for e in range(recipe.epochs))
    out = {"setting": setting, "students": len(base), "models": sorted({c.model for c in base}),
           "epochs_measured": epochs, "epochs": recipe.epochs, "evals": n_eval, "load": os.getloadavg(),
           "date": time.strftime("%Y-%m-%d %H:%M"), "variants": {}}
    for n in names:
        full = {}
        for k, idx in (("wall_s", 0), ("cpu_s", 1)):
            ev = [t[idx] for t in times[n] if t[2]]
            plain = [t[idx] for t in times[n] if not t[2]] or ev
            full[k] = statistics.mean(plain) * (recipe.epochs - n_eval) + statistics.mean(ev or plain) * n_eval
        out["variants"][n] = {**full, "per_student_wall_s": full["wall_s"] / len(base),
                              "measured_wall_s": sum(t[0] for t in times[n]),
                              "measured_cpu_s": sum(t[1] for t in times[n])}
    return out


def report(r: dict, baseline: str = "group, before") -> str:
    v = r["variants"]
    lines = [f"{r['setting']}: {r['students']} students ({', '.join(r['models'])}); {r['epochs_measured']} epochs "
             f"measured (interleaved), extrapolated to {r['epochs']} epochs with {r['evals']} evaluations; "
             f"load {r['load'][0]:.2f} {r['load'][1]:.2f} {r['load'][2]:.2f}; {r['date']}", "",
             f"| variant | group wall s | per student s | CPU s | vs {baseline} (wall) | measured wall s |",
             "|---|---|---|---|---|---|"]
    for n, x in v.items():
        ratio = v[baseline]["wall_s"] / x["wall_s"] if baseline in v else float("nan")
        lines.append(f"| {n} | {x['wall_s']:.1f} | {x['per_student_wall_s']:.1f} | {x['cpu_s']:.1f} | "
                     f"{ratio:.2f}x | {x['measured_wall_s']:.1f} |")
    return "\n".join(lines)


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.groups", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("setting", choices=sorted(SETTINGS))
    p.add_argument("--epochs", type=int, default=None, help="epochs per variant (default 20 mini7, 4 mini100)")
    p.add_argument("--variants", nargs="+", choices=list(VARIANTS), help="default: all")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the result here")
    args = p.parse_args(argv)
    epochs = args.epochs or (20 if args.setting == "mini7" else 4)
    run_in_scratch_store(lambda: compare(args.setting, epochs, args.variants), report,
                         threads=args.threads, json_path=args.json)


if __name__ == "__main__":
    main()
