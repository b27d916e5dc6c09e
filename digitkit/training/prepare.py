"""Turn a training config into what the one loop needs: the data as a task, the model's config, the metadata a
checkpoint must carry to be used later, and how to score the final model on the test set."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from digitkit.errors import DataError, DigitkitError
from digitkit.training.config import TrainConfig

SEQUENCE_TEST_COUNT = 300  # connected-digit strings joined from test recordings for the WER figure
SEQUENCE_TEST_WORDS = (3, 7)
N_MELS = 40


@dataclass
class Prepared:
    task: Any
    model_config: Any
    dataset: str
    classes: list[str]
    input_meta: dict[str, Any]
    data_info: dict[str, Any]
    test: Callable[[torch.nn.Module], dict[str, Any]]
    channels_last: bool


def image_model_base(spec: Any) -> dict[str, Any]:
    """The model options an image dataset fixes (its `-o` options cannot change these)."""
    return {"in_channels": spec.channels, "num_classes": len(spec.classes), "image_size": spec.size}


def speech_model_base(cfg: TrainConfig, words: int) -> dict[str, Any]:
    """The model options a speech dataset fixes: its features, and one output per word plus CTC's blank."""
    return {"n_mels": N_MELS, "num_tokens": words + 1, "rnn": cfg.model}


def _bad_model_options(cfg: TrainConfig, exc: Exception) -> DigitkitError:
    return DigitkitError(f"bad model options {cfg.model_options}: {exc}")


def model_config(cfg: TrainConfig, base: dict[str, Any]) -> Any:
    from digitkit.models.registry import make_config

    try:
        return make_config(cfg.model, {**base, **cfg.model_options})
    except (TypeError, ValueError) as exc:
        raise _bad_model_options(cfg, exc) from None


def build_model(cfg: TrainConfig, model_cfg: Any) -> Any:
    """The model for a config; options the config accepted can still be rejected by the model's constructor."""
    from digitkit.models.registry import build_model as build

    try:
        return build(cfg.model, model_cfg)
    except (TypeError, ValueError, RuntimeError) as exc:
        raise _bad_model_options(cfg, exc) from None


def split_holdout(x: torch.Tensor, y: torch.Tensor, val_split: float, seed: int):
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(len(x), generator=g)
    n_val = int(round(len(x) * val_split))
    val_idx, train_idx = order[:n_val], order[n_val:]
    return x[train_idx], y[train_idx], x[val_idx], y[val_idx]


def prepare_image(cfg: TrainConfig, folder: Path, device: torch.device, allow_download: bool, reporter: Any) -> Prepared:
    from digitkit.data.registry import get_dataset, load
    from digitkit.training.image_task import ImageTask, Normalization, logits_for, loss_and_accuracy, tta_views

    spec = get_dataset(cfg.dataset)
    splits = load(spec, folder, allow_download=allow_download)
    reporter.info(f"{spec.title}: {len(splits.train_y):,} train / {len(splits.test_y):,} test images from {splits.source}")
    if splits.note:
        reporter.warn(splits.note)
    # the validation split comes from the whole training set, and --limit caps only what is trained on: a quick
    # run (or a tuning trial) is then judged on as many held-out images as a full one, not on a noisy few
    train_x, train_y, val_x, val_y = split_holdout(splits.train_x, splits.train_y, cfg.val_split, cfg.seed)
    if cfg.limit is not None:
        train_x, train_y = train_x[: cfg.limit], train_y[: cfg.limit]
    norm = Normalization(spec.mean, spec.std)
    task = ImageTask(train_x, train_y, val_x, val_y, norm, spec.augment if cfg.augment else None, device)
    tta = tta_views(spec.augment.hflip) if cfg.tta else []

    def test(model: torch.nn.Module) -> dict[str, Any]:
        loss, accuracy = loss_and_accuracy(logits_for(model, splits.test_x, norm, tta=tta), splits.test_y)
        return {"test_accuracy": accuracy, "test_loss": loss, "test_samples": len(splits.test_y)}

    return Prepared(
        task=task,
        model_config=model_config(cfg, image_model_base(spec)),
        dataset=spec.name,
        classes=list(spec.classes),
        input_meta={"kind": "image", "channels": spec.channels, "size": spec.size, "mean": list(spec.mean),
                    "std": list(spec.std), "preprocess": spec.preprocess, "tta": tta},
        data_info={"source": splits.source, "note": splits.note, "train": len(train_y), "val": len(val_y)},
        test=test,
        channels_last=True,
    )


def load_speech_splits(dataset: str, folder: Path, val_split: float, seed: int, holdout_speaker: str | None, words: list[str] | None):
    from digitkit.data.speech import get_speech_dataset, load_fsdd, load_speechcommands

    spec = get_speech_dataset(dataset)
    if spec.name == "fsdd":
        if words:
            raise DigitkitError("--words is for speechcommands; FSDD's words are the digits 0-9")
        return spec, load_fsdd(folder, val_split, seed, holdout_speaker)
    if holdout_speaker:
        raise DigitkitError("--holdout-speaker is for fsdd; speechcommands already splits by speaker")
    return spec, load_speechcommands(folder, words)


def load_waves(utterances: list, sample_rate: int, reporter: Any) -> tuple[list[torch.Tensor], list]:
    """Read and silence-trim recordings; unreadable or silent ones are skipped with one warning."""
    from digitkit.data.audio import read_audio, trim_silence
    from digitkit.errors import InputError

    waves, kept, skipped = [], [], []
    for u in utterances:
        try:
            wave, _ = trim_silence(read_audio(u.path, sample_rate), sample_rate)
        except InputError as exc:
            skipped.append(str(exc))
            continue
        if len(wave) == 0:
            skipped.append(f"{u.path}: silent")
            continue
        waves.append(wave)
        kept.append(u)
    if skipped:
        reporter.warn(f"skipped {len(skipped)} unusable recording(s), e.g. {skipped[0]}")
    return waves, kept


def sequence_test_set(waves: list[torch.Tensor], tokens: list[int], sample_rate: int, count: int = SEQUENCE_TEST_COUNT,
                      seed: int = 1234) -> tuple[list[torch.Tensor], list[list[int]]]:
    """Connected strings of 3-7 words joined from held-out recordings, the same ones every time."""
    from digitkit.data.sequences import join_words

    g = torch.Generator().manual_seed(seed)
    clips, targets = [], []
    for _ in range(count if waves else 0):
        k = int(torch.randint(SEQUENCE_TEST_WORDS[0], SEQUENCE_TEST_WORDS[1] + 1, (), generator=g))
        picks = torch.randint(0, len(waves), (k,), generator=g).tolist()
        clips.append(join_words([waves[i] for i in picks], sample_rate, generator=g))
        targets.append([tokens[i] for i in picks])
    return clips, targets


@dataclass
class SpeechTestScore:
    loss: float
    accuracy: float  # single words, each framed like a training sequence
    tokens: list[int]
    hyps: list[list[int]]
    sequence_wer: float  # connected 3-7-word strings joined from the same recordings
    sequence_accuracy: float
    sequences: int


def score_speech_test(model: torch.nn.Module, utterances: list, vocab: list[str], sample_rate: int, features: Any,
                      reporter: Any) -> SpeechTestScore:
    """The test figures of a speech model, the same for the end of training and for `evaluate`."""
    from digitkit.data.sequences import frame_utterance
    from digitkit.training.speech_task import score_clips

    waves, kept = load_waves(utterances, sample_rate, reporter)
    tokens = [vocab.index(u.word) + 1 for u in kept]
    framed = [frame_utterance(w, sample_rate) for w in waves]
    loss, accuracy, _, hyps = score_clips(model, features, framed, [[t] for t in tokens])
    clips, targets = sequence_test_set(waves, tokens, sample_rate)
    _, seq_accuracy, wer, _ = score_clips(model, features, clips, targets, batch_size=32)
    return SpeechTestScore(loss, accuracy, tokens, hyps, wer, seq_accuracy, len(clips))


def prepare_speech(cfg: TrainConfig, folder: Path, device: torch.device, reporter: Any) -> Prepared:
    from digitkit.training.speech_task import SpeechTask

    spec, splits = load_speech_splits(cfg.dataset, folder, cfg.val_split, cfg.seed, cfg.holdout_speaker, cfg.words)
    reporter.info(f"{spec.title}: {len(splits.train):,} train / {len(splits.val):,} val / {len(splits.test):,} test recordings "
                  f"of {len(splits.vocab)} words from {splits.source}")
    if splits.note:
        reporter.info(splits.note)
    train = splits.train[: cfg.limit] if cfg.limit is not None else splits.train
    sr = spec.sample_rate
    token = {w: i + 1 for i, w in enumerate(splits.vocab)}  # 0 is CTC's blank
    train_waves, train_kept = load_waves(train, sr, reporter)
    val_waves, val_kept = load_waves(splits.val, sr, reporter)
    if not train_waves:
        raise DataError(f"no usable training recordings in {splits.source}")
    task = SpeechTask(train_waves, [token[u.word] for u in train_kept], val_waves, [token[u.word] for u in val_kept],
                      sr, N_MELS, device, augment=cfg.augment, max_words=cfg.max_words)

    def test(model: torch.nn.Module) -> dict[str, Any]:
        r = score_speech_test(model, splits.test, splits.vocab, sr, task.features, reporter)
        return {"test_accuracy": r.accuracy, "test_loss": r.loss, "test_samples": len(r.tokens),
                "test_sequence_wer": r.sequence_wer, "test_sequence_accuracy": r.sequence_accuracy,
                "test_sequences": r.sequences}

    return Prepared(
        task=task,
        model_config=model_config(cfg, speech_model_base(cfg, len(splits.vocab))),
        dataset=spec.name,
        classes=list(splits.vocab),
        input_meta={"kind": "speech", "sample_rate": sr, "n_mels": N_MELS, "preprocess": "logmel"},
        data_info={"source": splits.source, "note": splits.note, "train": len(train_waves), "val": len(val_waves),
                   "holdout_speaker": cfg.holdout_speaker},
        test=test,
        channels_last=False,
    )
