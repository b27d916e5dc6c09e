"""`kill -9` at random moments of training runs that write one checkpoint: after every kill the checkpoint is either
absent (killed before the first epoch ended) or loads whole, and the next run (a resume, or a fresh start where
nothing was saved) removes the temp files the killed one left. The epochs are tiny (300 MNIST images) so that many
kills land while a checkpoint is being written.

    DIGITKIT_DATA=../shared/datasets python bench/kill_soak.py [--kills 50] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def soak(kills: int, folder: Path, seed: int = 0, log=print) -> dict[str, int]:
    """Run, kill, check, `kills` times; then one run to its end. -> counts of what each kill found."""
    sys.path.insert(0, str(ROOT))
    from digitkit import checkpoint as ckpt_io

    rng = random.Random(seed)
    out = folder / "run.safetensors"
    env = {**os.environ, "DIGITKIT_DATA": os.environ.get("DIGITKIT_DATA", str(ROOT.parent / "shared" / "datasets"))}
    fresh = [sys.executable, "-m", "digitkit", "train", "mnist", "--limit", "300", "--epochs", "400", "--out", str(out),
             "--schedule", "plateau", "--patience", "0", "-q"]
    counts = {"absent": 0, "loaded": 0, "parts_left_by_kill": 0}
    for k in range(kills):
        command = [sys.executable, "-m", "digitkit", "train", "--resume", str(out), "-q"] if out.exists() else fresh
        before = out.stat().st_mtime_ns if out.exists() else None
        proc = subprocess.Popen(command, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        if rng.random() < 0.1:  # now and then during start-up
            time.sleep(rng.uniform(0.0, 2.0))
        else:  # else once this run has written an epoch, a moment later: an epoch and its write take ~0.3 s
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline and proc.poll() is None and (
                    not out.exists() or out.stat().st_mtime_ns == before):
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 1.0))
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        if proc.returncode != -signal.SIGKILL:
            raise AssertionError(f"kill {k}: the run ended by itself ({proc.returncode}): {proc.stderr.read()[-500:]!r}")
        counts["parts_left_by_kill"] += len(list(folder.glob("run.safetensors.*.part")))
        if out.exists():
            ckpt = ckpt_io.load(out)  # a corrupt file raises here
            ckpt.build_model()
            counts["loaded"] += 1
        else:
            counts["absent"] += 1
        log(f"kill {k + 1}/{kills}: checkpoint {'whole' if out.exists() else 'not yet written'}, "
            f"{counts['parts_left_by_kill']} temp files left by kills so far")
    done = subprocess.run([sys.executable, "-m", "digitkit", "train", "--resume", str(out), "--epochs",
                           str(ckpt_io.load(out).train_state["epoch"] + 1), "-q"] if out.exists() else fresh[:-1],
                          cwd=ROOT, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise AssertionError(f"the run after the kills failed: {done.stderr[-500:]}")
    left = list(folder.glob("*.part"))
    if left:
        raise AssertionError(f"temp files left after a finished run: {left}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kills", type=int, default=50)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    start = time.perf_counter()
    with tempfile.TemporaryDirectory() as tmp:
        counts = soak(args.kills, Path(tmp), args.seed)
    print(f"{args.kills} kills in {time.perf_counter() - start:.0f} s: checkpoint whole after {counts['loaded']}, "
          f"not yet written after {counts['absent']}, never corrupt; {counts['parts_left_by_kill']} temp files left by "
          f"kills, none after the next run finished")


if __name__ == "__main__":
    main()
