"""`digitkit tune`: an Optuna study whose trials are ordinary `digitkit.api.train` runs on a (subset of a)
dataset, judged by validation accuracy (never the test set), pruned on their per-epoch validation accuracy.

The study lives in a storage (SQLite in the run directory by default; any Optuna RDB URL, or a journal file),
so a killed study resumes where it stopped and several processes, on one machine or many, can share one study:
`--trials N` counts the study's trials, whoever ran them.
"""

from __future__ import annotations

import os
import socket
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitkit.errors import DigitkitError
from digitkit.report import Reporter

SAMPLERS = ("tpe", "random", "grid")
PRUNERS = ("median", "hyperband", "none")
# this many trials in a row failing with one and the same error (the dataset cannot be had, the disk is full) end
# the study: other values would fail the same way. A size the data cannot take fails with its own values named.
SAME_FAILURES = 3
_HOST = socket.gethostname()


@dataclass
class TuneResult:
    out: Path
    storage: str
    study_name: str
    best: dict[str, Any] | None  # number, value (val accuracy), params, config path
    trials: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"out": str(self.out), "storage": self.storage, "study": self.study_name, "best": self.best, "trials": self.trials}


class TuningInterrupted(DigitkitError):
    exit_code = 130


def _quiet_optuna() -> None:
    """Our own lines say what each trial did."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)


def _storage(url: str | None, out: Path):
    """An Optuna storage for a URL: RDB URLs (sqlite://, postgresql://, mysql://...) with heartbeats so a
    trial whose process died is failed by the others; `journal:PATH` for Optuna's file journal."""
    import optuna

    url = url or f"sqlite:///{(out / 'study.db').as_posix()}"
    if url.startswith("journal:"):
        from optuna.storages.journal import JournalFileBackend, JournalStorage

        path = Path(url[len("journal:"):])
        path.parent.mkdir(parents=True, exist_ok=True)
        try:  # the journal is replayed here: a file of other JSON lines fails deep inside Optuna
            return url, JournalStorage(JournalFileBackend(str(path)))
        except (KeyError, ValueError, TypeError, AttributeError, IndexError) as exc:
            raise DigitkitError(f"{path} is not an Optuna journal file ({type(exc).__name__}: {exc}); "
                                f"give a new file or one an earlier `digitkit tune --storage journal:` wrote") from None
    if "://" not in url:
        raise DigitkitError(f"--storage takes an Optuna RDB URL (sqlite:///study.db, postgresql://...) or journal:PATH, not {url!r}")
    if url.startswith("sqlite:///"):
        Path(url[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
    engine = {"connect_args": {"timeout": 60}} if url.startswith("sqlite") else None
    for attempt in range(6):
        try:
            return url, optuna.storages.RDBStorage(url, heartbeat_interval=20, grace_period=60, engine_kwargs=engine)
        except Exception as exc:  # SQLAlchemy's many errors: a bad URL, an unreachable server, or a race
            # two processes creating the same new database race on its schema tables; the loser retries
            error = exc
            time.sleep(0.5 * (attempt + 1))
    raise DigitkitError(f"cannot open study storage {url}: {str(error).splitlines()[0]}") from None


def _sampler(name: str, space: dict[str, Any], seed: int | None):
    import optuna

    from digitkit.tuning.space import grid

    if name == "tpe":
        return optuna.samplers.TPESampler(seed=seed)
    if name == "random":
        return optuna.samplers.RandomSampler(seed=seed)
    return optuna.samplers.GridSampler(grid(space), seed=seed)


def _pruner(name: str, epochs: int):
    import optuna

    if name == "median":
        # judged from the end of epoch epochs//3 + 1 on, once 3 trials have finished: the first epoch of a short
        # trial says too little (on 3-epoch MNIST trials, pruning after epoch 1 stopped 16 of 20)
        return optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=epochs // 3 + 1)  # steps are epochs, from 1
    if name == "hyperband":
        return optuna.pruners.HyperbandPruner(min_resource=1, max_resource=max(epochs, 1), reduction_factor=3)
    return optuna.pruners.NopPruner()


def _open_study(storage: Any, name: str, sampler_name: str, space: dict, seed: int, pruner: Any):
    """Load the study, or create it. Only the process that creates it seeds its sampler with --seed: a second
    process joining the same study with the same seed would otherwise propose the same parameters."""
    import optuna

    try:
        study = optuna.load_study(study_name=name, storage=storage, sampler=_sampler(sampler_name, space, None), pruner=pruner)
        return study, False
    except KeyError:
        pass
    try:
        study = optuna.create_study(study_name=name, storage=storage, direction="maximize",
                                    sampler=_sampler(sampler_name, space, seed), pruner=pruner)
        return study, True
    except optuna.exceptions.DuplicatedStudyError:
        return optuna.load_study(study_name=name, storage=storage, sampler=_sampler(sampler_name, space, None), pruner=pruner), False


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _fail_orphans(study: Any, reporter: Reporter) -> None:
    """Trials left RUNNING by a process of this machine that no longer exists (killed, crashed) are failed,
    so a resumed study re-runs them instead of waiting for them. Other machines' are left to the heartbeat."""
    from optuna.trial import TrialState

    for t in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        pid = t.user_attrs.get("pid")
        if t.user_attrs.get("host") == _HOST and isinstance(pid, int) and pid != os.getpid() and not _alive(pid):
            study.tell(t.number, state=TrialState.FAIL, skip_if_finished=True)
            reporter.warn(f"trial {t.number} was left running by a process that is gone (pid {pid}); marked failed, it will be re-run")


def _counted(study: Any) -> list:
    from optuna.trial import TrialState

    return study.get_trials(deepcopy=False, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.RUNNING))


def tune(
    dataset: str,
    *,
    model: str | None = None,
    trials: int = 20,
    timeout: float | None = None,
    epochs: int = 3,
    limit: int | None = None,
    seed: int = 0,
    out: str | os.PathLike | None = None,
    storage: str | None = None,
    study_name: str | None = None,
    sampler: str = "tpe",
    pruner: str = "median",
    space: str | os.PathLike | None = None,
    plot: str | os.PathLike | None = None,
    data_dir: str | os.PathLike | None = None,
    device: str = "auto",
    base: dict[str, Any] | None = None,
    reporter: Reporter | None = None,
) -> TuneResult:
    """Run (or join, or resume) a study until it holds `trials` finished trials or `timeout` seconds pass;
    write the best trial's config as `best.toml` in `out`, ready for `digitkit train --config`."""
    from digitkit.configfile import to_toml
    from digitkit.models.registry import config_class
    from digitkit.tuning.space import load_space, starting_point, suggest, to_options

    reporter = reporter or Reporter()
    _check_arguments(sampler, pruner, trials, timeout)
    base = dict(base or {})
    base.update({k: v for k, v in {"model": model, "epochs": epochs, "limit": limit, "seed": seed}.items() if v is not None})
    cfg, recipe_has_no_val = _trial_config(dataset, base, device)
    search = load_space(cfg.model, space)
    to_options(suggest(_Probe(search), search), config_class(cfg.model))  # every name maps to an option
    out = Path(out) if out is not None else Path("runs") / f"tune-{cfg.dataset}"
    try:
        (out / "trials").mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DigitkitError(f"cannot create {out}: {exc.strerror or exc}") from None

    _quiet_optuna()
    url, store = _storage(storage, out)
    name = study_name or f"{cfg.dataset}-{cfg.model}"
    study, created = _open_study(store, name, sampler, search, seed, _pruner(pruner, cfg.epochs))
    if created and sampler != "grid":
        start = starting_point(search, cfg, config_class(cfg.model))
        if start is not None:  # trial 0 is the default config, so the best is never worse on validation
            study.enqueue_trial(start)
    _fail_orphans(study, reporter)
    done = len(_counted(study))
    reporter.info(f"study {name!r} in {url}: {'new' if created else f'{done} trial(s) already'}; "
                  f"running up to {trials} in all, {cfg.epochs} epoch(s) each on {cfg.dataset}"
                  + (f" (first {cfg.limit:,} samples)" if cfg.limit else ""))
    _run_trials(study, _Objective(trials, search, cfg, out, data_dir, device, reporter), trials, timeout, out, reporter)
    best = _best(study, cfg, out, to_toml, recipe_has_no_val)
    rows = trial_rows(study)
    if plot is not None:
        write_plots(study, Path(plot), reporter)
    return TuneResult(out=out, storage=url, study_name=name, best=best, trials=rows)


def _check_arguments(sampler: str, pruner: str, trials: int, timeout: float | None) -> None:
    if sampler not in SAMPLERS:
        raise DigitkitError(f"--sampler must be one of {', '.join(SAMPLERS)}, not {sampler!r}")
    if pruner not in PRUNERS:
        raise DigitkitError(f"--pruner must be one of {', '.join(PRUNERS)}, not {pruner!r}")
    if trials < 1:
        raise DigitkitError("--trials must be at least 1")
    if timeout is not None and timeout <= 0:
        raise DigitkitError("--timeout must be positive")


def _trial_config(dataset: str, base: dict[str, Any], device: str) -> tuple[Any, bool]:
    """(the trials' base config, whether the recipe itself has no validation split). Checks the dataset, model and
    options before any trial."""
    from digitkit import api
    from digitkit.device import pick_device

    pick_device(device)  # the trials train there: a device that is not here fails now, not in every trial
    cfg = api.resolve_config(dataset, device=device, **base)
    recipe_has_no_val = cfg.val_split <= 0 and "val_split" not in base
    if recipe_has_no_val:  # e.g. the resnet recipe trains on every image; trials still need held-out data
        cfg = api.resolve_config(dataset, device=device, **{**base, "val_split": 0.1})
    if cfg.val_split <= 0:
        raise DigitkitError("tuning scores trials on validation data: give a --val-split above 0")
    return cfg, recipe_has_no_val


def _run_trials(study: Any, objective: Any, trials: int, timeout: float | None, out: Path, reporter: Reporter) -> None:
    started = time.perf_counter()
    while not objective.surplus:
        if timeout is not None and time.perf_counter() - started >= timeout:
            reporter.info(f"--timeout {timeout:g} s reached")
            break
        if len(_counted(study)) >= trials:
            break
        # one trial per call: Optuna's optimize runs the storage heartbeat and fails other processes' stale trials
        try:
            study.optimize(objective, n_trials=1, catch=(DigitkitError,))
        except KeyboardInterrupt:  # Optuna has marked the running trial failed; the next run repeats it
            raise TuningInterrupted(f"interrupted; finished trials are kept in {out}: run the same command to continue the study") from None
        if len(objective.failures) >= SAME_FAILURES and len(set(objective.failures)) == 1:
            raise DigitkitError(f"the last {len(objective.failures)} trials failed the same way, whatever their "
                                f"values, so the study stops: {objective.failures[0]}")


class _Probe:
    """A stand-in trial that proposes the first value of every parameter, to check a space before running it."""

    def __init__(self, space: dict[str, Any]):
        self.space = space

    def suggest_categorical(self, name, choices):
        return choices[0]

    def suggest_int(self, name, low, high, step=1, log=False):
        return low

    def suggest_float(self, name, low, high, step=None, log=False):
        return low


class _Surplus(DigitkitError):
    """Another process asked for the study's last trial first."""


class _Objective:
    """One trial: suggest values, train with them, report each epoch's val accuracy to the pruner."""

    def __init__(self, trials: int, search: dict, cfg: Any, out: Path, data_dir: Any, device: str, reporter: Reporter):
        self.trials, self.search, self.cfg, self.out = trials, search, cfg, out
        self.data_dir, self.device, self.reporter = data_dir, device, reporter
        self.surplus = False
        self.failures: list[str] = []  # the errors of the trials that failed since the last one that ran

    def __call__(self, trial: Any) -> float:
        import optuna

        from digitkit import api
        from digitkit.models.registry import config_class
        from digitkit.tuning.space import suggest, to_options

        trial.set_user_attr("host", _HOST)
        trial.set_user_attr("pid", os.getpid())
        if sum(t.number < trial.number for t in _counted(trial.study)) >= self.trials:
            trial.set_user_attr("surplus", True)  # left failed and out of every count; this process stops
            self.surplus = True
            raise _Surplus(f"trial {trial.number} not needed: the study already has {self.trials} trials")
        cfg = self.cfg
        values = suggest(trial, self.search)
        options = to_options(values, config_class(cfg.model))
        run = {k: v for k, v in cfg.to_dict().items() if k != "dataset"}
        run["model_options"] = {**run.get("model_options", {}), **options.pop("model_options", {})}
        run.update(options)
        path = self.out / "trials" / f"trial-{trial.number:04d}.safetensors"
        shown = " ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items())

        def report(row: dict[str, Any]) -> None:
            self.reporter.info(f"trial {trial.number} epoch {row['epoch']}/{run['epochs']}: val accuracy "
                               f"{row['val_accuracy']:.4f} ({row['seconds']:.0f} s)")
            trial.report(row["val_accuracy"], row["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"pruned at epoch {row['epoch']}")

        t0 = time.perf_counter()
        try:
            result = api.train(cfg.dataset, out=path, data_dir=self.data_dir, device=self.device, epoch_callback=report,
                               test=False, allow_download=True, **run)
        except optuna.TrialPruned as exc:
            trial.set_user_attr("seconds", time.perf_counter() - t0)
            path.unlink(missing_ok=True)
            self.reporter.info(f"trial {trial.number}: {exc} ({time.perf_counter() - t0:.0f} s)  {shown}")
            self.failures = []
            raise
        except DigitkitError as exc:  # e.g. a model size the data cannot take: that trial fails, the study goes on
            trial.set_user_attr("error", str(exc))
            self.reporter.warn(f"trial {trial.number} failed: {exc}")
            self.failures.append(str(exc))
            raise
        self.failures = []
        value = result.metrics["val_accuracy"]
        trial.set_user_attr("seconds", time.perf_counter() - t0)
        trial.set_user_attr("checkpoint", str(path))
        self.reporter.info(f"trial {trial.number}: val accuracy {value:.4f} ({time.perf_counter() - t0:.0f} s)  {shown}")
        return value


def _best(study: Any, cfg: Any, out: Path, to_toml: Any, recipe_val_split: bool = False) -> dict[str, Any] | None:
    """The best finished trial, its config written as best.toml: the study's fixed options and the trial's
    values, but the full run's epochs and no --limit (the trials' short budget is not the final recipe), and
    the recipe's own val split where only the trials needed one."""
    from optuna.trial import TrialState

    from digitkit import api
    from digitkit.models.registry import config_class
    from digitkit.tuning.space import to_options

    complete = [t for t in study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,))]
    if not complete:
        return None
    top = max(complete, key=lambda t: t.value)
    options = to_options(dict(top.params), config_class(cfg.model))
    fixed = {k: v for k, v in cfg.to_dict().items() if k not in ("dataset", "epochs", "limit", "model_options")}
    model_options = {**cfg.model_options, **options.pop("model_options", {})}
    final = api.resolve_config(cfg.dataset, **{**fixed, **options, "model_options": model_options,
                                               "epochs": None, "limit": None,
                                               **({"val_split": None} if recipe_val_split else {})})
    path = out / "best.toml"
    header = (f"best of {len(complete)} finished trial(s) of study {study.study_name!r}: trial {top.number}, "
              f"val accuracy {top.value:.4f}\nrepeat it in full with: digitkit train --config {path}")
    from digitkit.atomic import atomic_path

    with atomic_path(path) as tmp:
        tmp.write_text(to_toml(final, header))
    return {"number": top.number, "value": top.value, "params": dict(top.params), "config": str(path),
            "checkpoint": top.user_attrs.get("checkpoint")}


def trial_rows(study: Any) -> list[dict[str, Any]]:
    rows = []
    for t in study.get_trials(deepcopy=False):
        if t.user_attrs.get("surplus"):
            continue
        rows.append({"number": t.number, "state": t.state.name.lower(), "value": t.value, "params": dict(t.params),
                     "epochs": len(t.intermediate_values), "seconds": t.user_attrs.get("seconds")})
    return rows


IMPORTANCE_TRIALS = 10  # fewer finished trials than this give parameter importances too noisy to act on


def write_plots(study: Any, folder: Path, reporter: Reporter) -> list[Path]:
    """Optimization history and parameter importances as PNGs (Optuna's matplotlib views), with integer trial
    numbers, the objective named, and a warning on importances computed from too few trials."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator
    from optuna.trial import TrialState
    from optuna.visualization import matplotlib as views

    folder.mkdir(parents=True, exist_ok=True)
    finished = len(study.get_trials(deepcopy=False, states=(TrialState.COMPLETE,)))
    written = []
    for name, view in (("optimization-history", views.plot_optimization_history), ("param-importances", views.plot_param_importances)):
        try:
            ax = view(study)
        except (ValueError, RuntimeError) as exc:  # e.g. importances need two finished trials that differ
            reporter.warn(f"no {name} plot: {exc}")
            continue
        ax = ax if hasattr(ax, "figure") else ax.flat[0]
        if name == "optimization-history":
            ax.set_xlabel("trial")
            ax.set_ylabel("validation accuracy")
            ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        elif finished < IMPORTANCE_TRIALS:
            reporter.warn(f"parameter importances from {finished} finished trial(s) are noise more than signal; "
                          f"run at least {IMPORTANCE_TRIALS} before acting on them")
            ax.set_title(f"{ax.get_title()}\n(from only {finished} finished trials: not reliable)")
        fig = ax.figure
        fig.set_size_inches(8, 5)
        fig.tight_layout()
        path = folder / f"{name}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        written.append(path)
    return written
