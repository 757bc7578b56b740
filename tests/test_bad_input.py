"""Bad input (issue 7): each mistake gives one `framepred: error:` line naming the key,
file or value, a non-zero exit, no traceback, and no change to an earlier run's files.

The cases run through the real entry points (`main()` of framepred.train / evaluate /
predict, with sys.argv as the shell gives it). To pay TensorFlow's import once rather
than per case, one subprocess imports them and forks a child per case.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import subprocess
import sys
from pathlib import Path

from tests.conftest import REPO, snapshot

DRIVER = r"""
import importlib, json, os, sys
cases, out = json.loads(sys.argv[1]), sys.argv[2]
modules = {m: importlib.import_module(m) for m in {c["module"] for c in cases}}
results = []
for i, case in enumerate(cases):
    err, std = f"{out}/{i}.err", f"{out}/{i}.out"
    pid = os.fork()
    if pid == 0:
        os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT), 2)
        os.dup2(os.open(std, os.O_WRONLY | os.O_CREAT), 1)
        sys.argv = [case["module"], *case["args"]]
        code = 0
        try:
            modules[case["module"]].main()
        except SystemExit as stop:
            code = stop.code if isinstance(stop.code, int) else 1
        except BaseException:
            import traceback; traceback.print_exc(); code = 99
        sys.stdout.flush(); sys.stderr.flush()
        os._exit(code)
    _, status = os.waitpid(pid, 0)
    results.append({"rc": os.waitstatus_to_exitcode(status),
                    "stderr": open(err).read(), "stdout": open(std).read()})
print(json.dumps(results))
"""

# TensorFlow's C++ start-up lines are not ours to count.
TF_NOISE = re.compile(r"^([IWEF]\d{4} |WARNING: All log messages before absl)")


def run_cases(cases: list[dict], workdir: Path) -> list[dict]:
    out = workdir / "cli-output"
    out.mkdir(parents=True)
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2"}
    env.pop("HYDRA_FULL_ERROR", None)
    done = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(cases), str(out)],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def has(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def train_cases(tmp: Path) -> list[tuple[str, list[str], list[str]]]:
    """(id, argv, substrings the one error line must hold)."""
    afile = tmp / "afile"
    afile.write_text("not a folder")

    def run(name):
        return f"hydra.run.dir={tmp / 'runs' / name}"

    cases = [
        ("unknown-group-option", ["loss=foo"], ["loss/foo", "blend", "ssim"]),
        ("misspelled-key", ["trainer.epoch=3"], ["trainer.epoch", "epoch"]),
        ("wrong-type", ["trainer.epochs=abc"], ["trainer.epochs", "abc"]),
        ("alpha-negative", ["loss=blend", "loss.alpha=-0.1"], ["loss.alpha=-0.1", "[0, 1]"]),
        ("alpha-above-one", ["loss=blend", "loss.alpha=1.5"], ["loss.alpha=1.5", "[0, 1]"]),
        ("zero-epochs", ["trainer.epochs=0"], ["trainer.epochs=0", ">= 1"]),
        ("negative-epochs", ["trainer.epochs=-2"], ["trainer.epochs=-2", ">= 1"]),
        ("zero-batch", ["trainer.batch_size=0"], ["trainer.batch_size=0", ">= 1"]),
        ("negative-batch", ["trainer.batch_size=-4"], ["trainer.batch_size=-4", ">= 1"]),
        ("frame-below-ssim-window",
         ["data.frame_size=[10,10]", "data.digit_size=[4,6]"],
         ["data.frame_size=[10, 10]", "loss.filter_size=11"]),
        ("ms-ssim-frames-too-small", ["loss=ms_ssim"], ["MS-SSIM", "data.frame_size=[16, 16]"]),
        ("output-under-a-file", [f"hydra.run.dir={afile / 'run'}"], [str(afile)]),
        ("output-in-proc", ["hydra.run.dir=/proc/framepred-run"], ["/proc/framepred-run"]),
        ("npy-without-path", ["data=npy", "data.frame_size=[16,16]"], ["data.path"]),
        ("npy-missing-file", ["data=npy", "data.frame_size=[16,16]",
                              f"data.path={tmp / 'missing.npy'}"], ["missing.npy"]),
        ("frames-missing-folder", ["data=frames", "data.frame_size=[16,16]",
                                   f"data.path={tmp / 'no-such-folder'}"], ["no-such-folder"]),
    ]
    return [
        (name, ["debug=fast", *args,
                *([] if any(a.startswith("hydra.run.dir") for a in args) else [run(name)])],
         expect)
        for name, args, expect in cases
    ]


def checkpoint_cases(tmp: Path, earlier: Path) -> list[tuple[str, str, list[str], list[str]]]:
    notes = tmp / "notes.txt"
    notes.write_text("not a model")
    fake = tmp / "fake.keras"
    fake.write_text("not a zip")
    best = earlier / "checkpoints" / "best.keras"
    out = tmp / "predict-out.gif"
    cases = []
    if has("framepred.evaluate"):
        cases += [
            ("evaluate-missing-checkpoint", "framepred.evaluate",
             [f"checkpoint={tmp / 'missing.keras'}"], ["missing.keras", "does not exist"]),
            ("evaluate-not-keras", "framepred.evaluate", [f"checkpoint={notes}"],
             ["notes.txt", ".keras"]),
            ("evaluate-corrupt-keras", "framepred.evaluate", [f"checkpoint={fake}"],
             ["fake.keras"]),
            ("evaluate-other-channels", "framepred.evaluate",
             [f"checkpoint={best}", "data.channels=3"], ["channel", "3"]),
            ("evaluate-other-frame-size", "framepred.evaluate",
             [f"checkpoint={best}", "data.frame_size=[32,32]"], ["frame"]),
        ]
    if has("framepred.predict"):
        cases += [
            ("predict-missing-checkpoint", "framepred.predict",
             [f"checkpoint={tmp / 'missing.keras'}", f"input={tmp / 'clip.npy'}",
              f"output={out}"], ["missing.keras"]),
            ("predict-not-keras", "framepred.predict",
             [f"checkpoint={notes}", f"input={tmp / 'clip.npy'}", f"output={out}"],
             ["notes.txt"]),
        ]
    return cases


def check(case_id: str, result: dict, expect: list[str]) -> list[str]:
    """Problems with one case's outcome, as readable strings (empty when it passed)."""
    lines = [line for line in result["stderr"].splitlines()
             if line.strip() and not TF_NOISE.match(line)]
    problems = []
    if result["rc"] in (0, 99):
        problems.append(f"exit status {result['rc']}")
    if "Traceback" in result["stderr"]:
        problems.append("traceback")
    if len(lines) != 1 or not lines[0].startswith("framepred: error: "):
        problems.append(f"not one `framepred: error:` line: {lines[:6]}")
    else:
        missing = [text for text in expect if text not in lines[0]]
        if missing:
            problems.append(f"line lacks {missing}: {lines[0]}")
    return [f"{case_id}: {p}" for p in problems]


def finished_run_cases(earlier: Path) -> list[tuple[str, list[str], list[str]]]:
    """Mistakes made while restarting a finished run in its own folder."""
    cases = [
        ("epochs-zero-in-finished-run", ["trainer.epochs=0"], ["trainer.epochs=0"]),
        ("other-model-in-finished-run", ["model.filters=[8]"],
         ["model.filters", "hydra.run.dir", "trainer.resume=false"]),
    ]
    return [(name, ["debug=fast", *args, f"hydra.run.dir={earlier}"], expect)
            for name, args, expect in cases]


def test_bad_input_suite(tmp_path, fast_run):
    """All cases in two subprocesses; one assertion lists every failing case."""
    import shutil

    # A finished run restarted by mistake in its own folder. (fast_run trained
    # in-process, so it lacks the train.log a CLI run has; Hydra records each start
    # under .hydra/ before our code runs, which is its record, not the run's results.)
    earlier_here = tmp_path / "finished"
    shutil.copytree(fast_run, earlier_here)
    (earlier_here / "train.log").write_text("")
    before = snapshot(fast_run)
    before_here = snapshot(earlier_here, skip={".hydra"})

    train = train_cases(tmp_path) + finished_run_cases(earlier_here)
    ckpt = checkpoint_cases(tmp_path, fast_run)
    # Train apart from evaluate/predict: importing framepred.train installs its Hydra
    # error handler, which the other commands must not borrow here.
    results = run_cases([{"module": "framepred.train", "args": args} for _, args, _ in train],
                        tmp_path / "train")
    if ckpt:
        results += run_cases([{"module": module, "args": args} for _, module, args, _ in ckpt],
                             tmp_path / "checkpoint")
    expects = [(name, expect) for name, _, expect in train] + [
        (name, expect) for name, _, _, expect in ckpt]
    problems = [p for (name, expect), result in zip(expects, results)
                for p in check(name, result, expect)]
    assert not problems, "\n".join(problems)
    assert snapshot(fast_run) == before, "an earlier run's files changed"
    assert snapshot(earlier_here, skip={".hydra"}) == before_here, \
        "a finished run's files changed when restarted with bad input"


def test_hydra_error_text_folds_onto_one_line():
    from framepred.errors import one_line

    text = ("In 'train': Could not find 'loss/foo'\n\nAvailable options in 'loss':\n"
            "\tblend\n\tmae\n\tssim\nConfig search path:\n\tprovider=hydra, path=pkg://x\n")
    assert one_line(text) == ("In 'train': Could not find 'loss/foo'; "
                              "Available options in 'loss': blend, mae, ssim")
    text = ("Could not override 'trainer.epoch'.\nKey 'epoch' not in 'TrainerConfig'\n"
            "    full_key: trainer.epoch\n    reference_type=TrainerConfig\n"
            "    object_type=TrainerConfig")
    assert one_line(text) == ("Could not override 'trainer.epoch'; Key 'epoch' not in "
                              "'TrainerConfig'; full_key: trainer.epoch")
