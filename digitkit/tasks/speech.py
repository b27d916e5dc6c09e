"""Speech end to end: FSDD, Speech Commands and `digits` (every real digit source) recordings, read and
silence-trimmed; every epoch packs the training recordings into connected-word sequences (single words too; for
`digits`, the wild recipe of `data.sequences`: recorded strings, other speech, noise, waveform augmentation),
computes log-mel features per batch with SpecAugment masking, and trains with CTC; validation is single-word
accuracy on held-out recordings; the test figures (single words, WER on connected strings joined from test
recordings, and WER on recorded strings of held-out speakers) for training and `evaluate`. A user's audio is
transcribed by `digitkit.recognize`."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

import torch
import torch.nn.functional as F

from digitkit.ctc import batch_greedy, word_error_rate
from digitkit.data.audio import LogMel, pad_batch
from digitkit.data.sequences import (LEVEL_DB, Pools, Recipe, by_length, frame_utterance, join_words, plan_epoch,
                                     planned_samples, present, present_training, render, sample_lengths,
                                     set_level)
from digitkit.device import model_device
from digitkit.training.distributed import World, shard


# the datasets that hold FSDD's speakers, so `--holdout-speaker` can keep one of them out
HOLDOUT_SPEAKER_DATASETS = ("fsdd", "digits")

ALIGNED_FRACTION = 0.4  # share of the epochs trained on the known alignment before CTC takes over
SEQUENCE_TEST_COUNT = 300  # connected-digit strings joined from test recordings for the WER figure
SEQUENCE_TEST_WORDS = (3, 7)
N_MELS = 40
WORD_REPEATS = 4  # digits: each epoch's draws of a single-word recording from a corpus with many speakers
BUCKET_WINDOW = 8  # --bucket: batches' worth of sequences sorted by length together


def framed(trimmed: torch.Tensor, sample_rate: int, level_db: float | None) -> torch.Tensor:
    """A recording already trimmed by `load_waves`, presented as `transcribe` presents a user's (`present`)."""
    return frame_utterance(trimmed, sample_rate) if level_db is None else present(trimmed, sample_rate, level_db)[0]


def spec_augment(feats: torch.Tensor, lengths: torch.Tensor, freq_masks: int = 2, freq_width: int = 6,
                 time_masks: int = 2, time_width: int = 8) -> torch.Tensor:
    """Zero random bands of mel bins and runs of frames, per utterance (Park et al., 2019). The bands are drawn on
    the host, one small draw each, and applied to the whole batch in one masked fill wherever `feats` are."""
    b, t, f = feats.shape
    frames = lengths.tolist()
    bands = []  # per utterance: (first, end) of each frequency band, then of each time run
    for i in range(b):
        row = []
        for _ in range(freq_masks):
            w = int(torch.randint(0, freq_width + 1, ()))
            f0 = int(torch.randint(0, max(1, f - w), ()))
            row.append((f0, f0 + w))
        for _ in range(time_masks):
            w = int(torch.randint(0, time_width + 1, ()))
            t0 = int(torch.randint(0, max(1, int(frames[i]) - w), ()))
            row.append((t0, t0 + w))
        bands.append(row)
    edges = torch.tensor(bands, dtype=torch.long).view(b, freq_masks + time_masks, 2)
    if feats.is_cuda:
        edges = edges.pin_memory().to(feats.device, non_blocking=True)
    freq, time = edges[:, :freq_masks], edges[:, freq_masks:]
    bins = torch.arange(f, device=feats.device).view(1, 1, f)
    steps = torch.arange(t, device=feats.device).view(1, 1, t)
    in_freq = ((bins >= freq[..., :1]) & (bins < freq[..., 1:])).any(1)  # [B, F]
    in_time = ((steps >= time[..., :1]) & (steps < time[..., 1:])).any(1)  # [B, T]
    return feats.masked_fill(in_time[:, :, None] | in_freq[:, None, :], 0)


def featurize(features: LogMel, waves: list[torch.Tensor], device: torch.device, augment: bool = False):
    """Pad a batch of recordings, move it to `device` once, and compute its log-mel features there."""
    padded, lengths = pad_batch(waves)
    if device.type == "cuda":
        padded = padded.pin_memory().to(device, non_blocking=True)
    feats, frames = features(padded.to(device), lengths)
    if augment:
        feats = spec_augment(feats, frames)
    return feats, frames


@torch.inference_mode()
def score_clips(model, features: LogMel, waves: list[torch.Tensor], targets: list[list[int]],
                batch_size: int = 64) -> tuple[float, float, float, list[list[int]]]:
    """(CTC loss per clip, exact-match accuracy, word error rate, hypotheses) of clips against token targets, run
    where the model is."""
    model.eval()
    device = model_device(model)
    losses, hyps = [], []
    for start in range(0, len(waves), batch_size):
        feats, frames = featurize(features, waves[start : start + batch_size], device)
        log_probs, out_lengths = model(feats, frames)
        losses.append(ctc_loss(log_probs, out_lengths, targets[start : start + batch_size], reduction="sum").item())
        hyps += batch_greedy(log_probs, out_lengths)
    accuracy = sum(h == t for h, t in zip(hyps, targets)) / max(len(targets), 1)
    return sum(losses) / max(len(targets), 1), accuracy, word_error_rate(targets, hyps), hyps


class SpeechBatches:
    """What the training loop draws from. Without a `recipe`, each epoch joins the single-word recordings into
    sequences; with one (the `digits` dataset), each epoch is `recipe`'s mixture for recordings in the wild."""

    def __init__(self, pools: Pools, val_waves: list[torch.Tensor], val_tokens: list[int], sample_rate: int,
                 n_mels: int, device: torch.device, augment: bool = True, max_words: int = 7, p_single: float = 0.3,
                 recipe: Recipe | None = None, level_db: float | None = None, bucket: bool = False,
                 feature_norm: str = "cmvn"):
        self.pools, self.recipe, self.level_db, self.bucket = pools, recipe, level_db, bucket
        self.train_waves, self.train_tokens = pools.words, pools.word_tokens
        self.val_waves = [framed(w, sample_rate, level_db) for w in val_waves]
        self.val_tokens = val_tokens
        self.sample_rate, self.device, self.augment = sample_rate, device, augment
        self.features = LogMel(sample_rate, n_mels, feature_norm)
        self.max_words, self.p_single = max_words, p_single
        mean_words = p_single + (1 - p_single) * (2 + max_words) / 2
        self.sequences = max(1, math.ceil(len(pools.words) / mean_words))  # each recording about once per epoch
        self.aligned_phase = True

    def steps_per_epoch(self, batch_size: int) -> int:
        if self.recipe is not None:  # the plan's size does not depend on its draws
            return (len(self._plan(torch.Generator().manual_seed(0))) + batch_size - 1) // batch_size
        return (self.sequences + batch_size - 1) // batch_size

    def featurize(self, waves: list[torch.Tensor], augment: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
        return featurize(self.features, waves, self.device, augment)

    def _plan(self, order_rng: torch.Generator | None) -> list:
        # recorded strings have no known alignment, so they join once CTC takes over
        return plan_epoch(self.pools, self.recipe, not self.aligned_phase, order_rng)

    def _joined(self, order_rng: torch.Generator | None) -> list:
        order = torch.randperm(len(self.train_waves), generator=order_rng).tolist()
        counts = sample_lengths(self.sequences, self.max_words, self.p_single, generator=order_rng)
        cursor, sequences = 0, []
        for k in counts:
            sequences.append(("words", [order[(cursor + j) % len(order)] for j in range(k)]))
            cursor += k
        return sequences

    def _render(self, item) -> tuple[torch.Tensor, list[int], list[tuple[int, int]] | None]:
        if self.recipe is not None:
            wave, tokens, spans = render(item, self.pools, self.recipe, self.sample_rate)
            if self.level_db is not None:  # as `transcribe` will present a user's recording
                wave, spans = present_training(wave, spans, self.sample_rate, self.level_db)
            return wave, tokens, spans
        spans: list[tuple[int, int]] = []
        picks = item[1]
        wave = join_words([self.train_waves[i] for i in picks], self.sample_rate, spans=spans)
        return wave, [self.train_tokens[i] for i in picks], spans

    def planned_length(self, item) -> int:
        """A planned sequence's length in samples before rendering (`planned_samples`): what `--bucket` sorts by."""
        return planned_samples(item, self.pools, self.sample_rate)

    def batches(self, sequences: list, batch_size: int, bucket: bool, order_rng: torch.Generator | None = None) -> list[list]:
        """An epoch's planned sequences cut into batches: of similar length where `bucket` (`by_length`), else in
        their (already random) order."""
        if bucket:
            return by_length(sequences, batch_size, self.planned_length, BUCKET_WINDOW, order_rng)
        return [sequences[start : start + batch_size] for start in range(0, len(sequences), batch_size)]

    def train_batches(self, batch_size: int, order_rng: torch.Generator | None = None, world: World = World()) -> Iterator[tuple[tuple, tuple, int]]:
        sequences = self._plan(order_rng) if self.recipe is not None else self._joined(order_rng)
        for chunk in self.batches(sequences, batch_size, self.bucket, order_rng):
            if len(chunk) < world.size:  # too few to give every rank one
                continue
            waves, targets, spans = zip(*(self._render(item) for item in shard(chunk, world)))
            feats, frames = self.featurize(list(waves), augment=self.augment)
            yield (feats, frames), (list(targets), list(spans)), len(waves)

    def frame_labels(self, spans: list[list[tuple[int, int]]], targets: list[list[int]], frames: int, stride: int) -> torch.Tensor:
        """Each output frame's token on the known alignment: the word over its samples, blank (0) elsewhere."""
        labels = torch.zeros(len(targets), frames, dtype=torch.long)
        step = self.features.hop * stride
        for i, (seq_spans, seq_tokens) in enumerate(zip(spans, targets)):
            for (start, end), token in zip(seq_spans, seq_tokens):
                labels[i, start // step : min(frames, -(-end // step))] = token
        return labels

    def set_epoch(self, epoch: int, epochs: int) -> None:
        self.aligned_phase = epoch <= round(ALIGNED_FRACTION * epochs)

    def loss(self, model, inputs, targets, label_smoothing):
        """First cross-entropy on the known alignment of the joined sequences (each word's token over its frames,
        blank elsewhere): it teaches the acoustics in a fraction of the steps CTC needs to find alignments on its
        own. Then CTC alone, which sharpens that into CTC's usual one-spike-per-word output. Summing the two does
        not work: CTC pulls towards spikes, the frame loss towards dense runs, and the model stalls on blanks."""
        feats, frames = inputs
        tokens, spans = targets
        log_probs, out_lengths = model(feats, frames)
        if self.aligned_phase:
            labels = self.frame_labels(spans, tokens, log_probs.shape[1], getattr(model, "module", model).frame_stride).to(log_probs.device)
            valid = torch.arange(log_probs.shape[1], device=log_probs.device)[None, :] < out_lengths[:, None]
            loss = F.nll_loss(log_probs[valid], labels[valid], reduction="mean")
        else:
            loss = ctc_loss(log_probs, out_lengths, tokens)
        hyps = batch_greedy(log_probs.detach(), out_lengths)
        return loss, sum(h == t for h, t in zip(hyps, tokens))

    def validate(self, model) -> tuple[float, float] | None:
        if not self.val_waves:
            return None
        loss, accuracy, _, _ = score_clips(model, self.features, self.val_waves, [[t] for t in self.val_tokens])
        return loss, accuracy


def ctc_loss(log_probs: torch.Tensor, lengths: torch.Tensor, targets: list[list[int]], reduction: str = "mean") -> torch.Tensor:
    flat = torch.tensor([t for seq in targets for t in seq], dtype=torch.long)
    target_lengths = torch.tensor([len(seq) for seq in targets], dtype=torch.long)
    return F.ctc_loss(log_probs.transpose(0, 1).float(), flat, lengths.cpu(), target_lengths, blank=0,
                      reduction=reduction, zero_infinity=True)


def load_speech_splits(dataset: str, folder: Path, cfg: Any):
    from digitkit.data.speech import get_speech_dataset, load_digits, load_fsdd, load_speechcommands
    from digitkit.errors import DigitkitError

    spec = get_speech_dataset(dataset)
    if cfg.words and spec.name != "speechcommands":
        raise DigitkitError(f"--words is for speechcommands; {spec.name}'s words are the digits 0-9")
    if cfg.holdout_speaker and spec.name not in HOLDOUT_SPEAKER_DATASETS:
        raise DigitkitError("--holdout-speaker is for fsdd and digits (FSDD's speakers); speechcommands already splits by speaker")
    if cfg.holdout_fold is not None and spec.name != "digits":
        raise DigitkitError("--holdout-fold is for digits (its AN4 speaker folds)")
    if spec.name == "fsdd":
        return spec, load_fsdd(folder, cfg.val_split, cfg.seed, cfg.holdout_speaker)
    if spec.name == "digits":
        return spec, load_digits(folder, cfg.val_split, cfg.seed, cfg.holdout_fold, cfg.holdout_speaker)
    return spec, load_speechcommands(folder, cfg.words)


def load_waves(utterances: list, sample_rate: int, reporter: Any) -> tuple[list[torch.Tensor], list]:
    """Read recordings, free them of any constant offset and silence-trim them, as `transcribe` hears them;
    unreadable or silent ones are skipped with one warning."""
    from digitkit.data.audio import DCBlocker, read_audio, trim_silence
    from digitkit.errors import InputError

    waves, kept, skipped = [], [], []
    for u in utterances:
        try:
            wave, _ = trim_silence(DCBlocker(sample_rate)(read_audio(u.path, sample_rate)), sample_rate)
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
                      seed: int = 1234, level_db: float | None = None) -> tuple[list[torch.Tensor], list[list[int]]]:
    """Connected strings of 3-7 words joined from held-out recordings, the same ones every time."""
    g = torch.Generator().manual_seed(seed)
    clips, targets = [], []
    for _ in range(count if waves else 0):
        k = int(torch.randint(SEQUENCE_TEST_WORDS[0], SEQUENCE_TEST_WORDS[1] + 1, (), generator=g))
        picks = torch.randint(0, len(waves), (k,), generator=g).tolist()
        clip = join_words([waves[i] for i in picks], sample_rate, generator=g)
        clips.append(set_level(clip, level_db) if level_db is not None else clip)
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
    recorded_wer: float | None = None  # strings recorded as spoken (fluent speech), where the test set has them
    recorded_accuracy: float | None = None
    recorded: int = 0


def score_speech_test(model: torch.nn.Module, utterances: list, vocab: list[str], sample_rate: int, features: Any,
                      reporter: Any, level_db: float | None = None) -> SpeechTestScore:
    """The test figures of a speech model, the same for the end of training and for `evaluate`; each recording
    presented as `transcribe` presents a user's (`sequences.present`)."""
    waves, kept = load_waves(utterances, sample_rate, reporter)
    single = [i for i, u in enumerate(kept) if len(u.words) == 1]
    tokens = [vocab.index(kept[i].word) + 1 for i in single]
    clips = [framed(waves[i], sample_rate, level_db) for i in single]
    loss, accuracy, _, hyps = score_clips(model, features, clips, [[t] for t in tokens])
    clips, targets = sequence_test_set([waves[i] for i in single], tokens, sample_rate, level_db=level_db)
    _, seq_accuracy, wer, _ = score_clips(model, features, clips, targets, batch_size=32)
    score = SpeechTestScore(loss, accuracy, tokens, hyps, wer, seq_accuracy, len(clips))
    strings = [i for i, u in enumerate(kept) if len(u.words) > 1]
    if strings:
        refs = [[vocab.index(w) + 1 for w in kept[i].words] for i in strings]
        _, score.recorded_accuracy, score.recorded_wer, _ = score_clips(
            model, features, [framed(waves[i], sample_rate, level_db) for i in strings], refs, batch_size=16)
        score.recorded = len(strings)
    return score


OTHER = "(other)"  # a clip decoded as no word or as several words


class SpeechTask:
    kind = "speech"
    models = ("lstm", "gru")
    convolutional = False  # the recurrent layers dominate; bf16 autocast gained 1.1x on a CPU, not worth it
    use = "transcribe"

    def dataset_name(self, name: str) -> str | None:
        from digitkit.data.speech import get_speech_dataset, is_speech

        return get_speech_dataset(name).name if is_speech(name) else None

    def dataset_names(self) -> list[str]:
        from digitkit.data.speech import SPEECH_DATASETS

        return list(SPEECH_DATASETS)

    def evaluable_on(self, ckpt: Any) -> list[str]:
        """Any speech dataset: whether its recordings hold the model's words is known only once they are read."""
        return self.dataset_names()

    def model_base(self, cfg: Any, words: int = 10) -> dict[str, Any]:
        """Its features, and one output per word plus CTC's blank."""
        return {"n_mels": N_MELS, "num_tokens": words + 1, "rnn": cfg.model}

    def _pools(self, train: list, splits: Any, token: dict[str, int], sr: int, reporter: Any) -> Pools:
        """The training recordings, read and trimmed, sorted into single words, recorded strings and fillers."""
        words, strings = [u for u in train if len(u.words) == 1], [u for u in train if len(u.words) > 1]
        # FSDD's 6 voices outnumber the other corpora's ~40 twenty to one: the others' words come several times
        words += [u for u in words if u.corpus not in ("", "fsdd") for _ in range(WORD_REPEATS - 1)]
        word_waves, word_kept = load_waves(words, sr, reporter)
        string_waves, string_kept = load_waves(strings, sr, reporter)
        filler_waves, _ = load_waves(splits.fillers, sr, reporter)
        return Pools(word_waves, [token[u.word] for u in word_kept], [u.speaker for u in word_kept],
                     string_waves, [[token[w] for w in u.words] for u in string_kept], filler_waves,
                     len(splits.vocab) + 1)

    def prepare(self, cfg: Any, folder: Path, device: torch.device, allow_download: bool, reporter: Any) -> Any:
        from digitkit.errors import DataError
        from digitkit.tasks import Prepared, model_config

        spec, splits = load_speech_splits(cfg.dataset, folder, cfg)
        reporter.info(f"{spec.title}: {len(splits.train):,} train / {len(splits.val):,} val / {len(splits.test):,} test "
                      f"recordings of {len(splits.vocab)} words from {splits.source}")
        if splits.note:
            reporter.info(splits.note)
        train = splits.train[: cfg.limit] if cfg.limit is not None else splits.train
        sr = spec.sample_rate
        token = {w: i + 1 for i, w in enumerate(splits.vocab)}  # 0 is CTC's blank
        pools = self._pools(train, splits, token, sr, reporter)
        val_waves, val_kept = load_waves(splits.val, sr, reporter)
        if not pools.words:
            raise DataError(f"no usable training recordings in {splits.source}")
        recipe = Recipe(max_words=cfg.max_words) if spec.name == "digits" and cfg.augment else None
        level_db = LEVEL_DB if recipe is not None else None
        batches = SpeechBatches(pools, val_waves, [token[u.word] for u in val_kept], sr, N_MELS, device,
                                augment=cfg.augment, max_words=cfg.max_words, recipe=recipe, level_db=level_db,
                                bucket=cfg.bucket, feature_norm=cfg.feature_norm)

        def test(model: torch.nn.Module) -> dict[str, Any]:
            r = score_speech_test(model, splits.test, splits.vocab, sr, batches.features, reporter, level_db)
            out = {"test_accuracy": r.accuracy, "test_loss": r.loss, "test_samples": len(r.tokens),
                   "test_sequence_wer": r.sequence_wer, "test_sequence_accuracy": r.sequence_accuracy,
                   "test_sequences": r.sequences}
            if r.recorded:
                out.update(test_recorded_wer=r.recorded_wer, test_recorded_accuracy=r.recorded_accuracy,
                           test_recorded=r.recorded)
            return out

        return Prepared(
            batches=batches,
            model_config=model_config(cfg, self.model_base(cfg, len(splits.vocab) + bool(splits.fillers))),
            dataset=spec.name,
            classes=list(splits.vocab),
            input_meta={"kind": self.kind, "sample_rate": sr, "n_mels": N_MELS, "preprocess": "logmel",
                        "feature_norm": cfg.feature_norm,
                        **({"filler": True} if splits.fillers else {}),
                        **({"level_db": level_db} if level_db is not None else {})},
            data_info={"source": splits.source, "note": splits.note, "train": len(pools.words) + len(pools.strings), "val": len(val_waves),
                       "holdout_speaker": cfg.holdout_speaker, "holdout_fold": cfg.holdout_fold},
            test=test,
            channels_last=False,
        )

    def export_io(self, ckpt: Any) -> Any:
        from digitkit.export import IO

        n_mels, sr = int(ckpt.input["n_mels"]), int(ckpt.input["sample_rate"])
        features = LogMel.of(ckpt)
        bands = ("each band standardised over the utterance's own frames" if features.norm == "cmvn" else
                 "each band's mean over the utterance's own frames taken off and all bands divided by one standard "
                 "deviation over those frames")
        filler = " and, last, other speech" if ckpt.input.get("filler") else ""
        return IO(("features", "lengths"), ("log_probs", "out_lengths"),
                  {"features": {0: "batch", 1: "frames"}, "lengths": {0: "batch"}, "log_probs": {0: "batch", 1: "steps"},
                   "out_lengths": {0: "batch"}},
                  (torch.randn(2, 100, n_mels), torch.tensor([100, 60])), {
            "features": f"float32 [batch, frames, {n_mels}]: log-mel features of {sr} Hz mono audio: power spectrum of "
                        f"a {features.mel.win_length}-sample Hann window every {features.hop} samples (n_fft "
                        f"{features.mel.n_fft}, centred, reflect padding), {n_mels} HTK mel bands from 20 Hz to "
                        f"{sr // 2} Hz, log(x + 1e-6), then {bands}; padded frames are zero" + ("; audio first scaled so its louder half of 20 ms frames has "
                        f"power {ckpt.input['level_db']} dBFS" if "level_db" in ckpt.input else ""),
            "lengths": f"int64 [batch]: real frames of each utterance (samples // {features.hop} + 1)",
            "log_probs": "float32 [batch, steps, tokens]: CTC log-probabilities per step; token 0 is the blank, token "
                         f"i the word classes[i - 1]{filler}; greedy decoding keeps each step's best token, drops "
                         "repeats, then blanks",
            "out_lengths": "int64 [batch]: valid steps of each utterance",
        })

    def export_check(self, ckpt: Any, folder: Path, allow_download: bool, limit: int | None) -> tuple[Iterator[tuple], str]:
        """Batches of the model's inputs made from its dataset's test recordings, presented as `transcribe` does."""
        from digitkit.config import TrainConfig

        cfg = TrainConfig.from_dict(ckpt.train_config)
        spec, splits = load_speech_splits(ckpt.dataset, folder, cfg)
        sr, level_db = int(ckpt.input["sample_rate"]), ckpt.input.get("level_db")
        features = LogMel.of(ckpt)

        class Quiet:  # unreadable test recordings are skipped here as in `evaluate`; the count tells
            def warn(self, message: str) -> None:
                pass

        waves, _ = load_waves(splits.test[:limit], sr, Quiet())
        clips = [framed(w, sr, level_db) for w in waves]
        batches = (featurize(features, clips[i : i + 32], torch.device("cpu")) for i in range(0, len(clips), 32))
        return batches, f"{spec.title} test recordings"

    def export_decisions(self, outputs: tuple[torch.Tensor, ...]) -> list[list[int]]:
        return batch_greedy(outputs[0], outputs[1])

    def evaluate(self, ckpt: Any, path: Path, model: torch.nn.Module, folder: Path, batch_size: int,
                 allow_download: bool, reporter: Any, dataset: str | None = None) -> Any:
        """The test split of the model's own dataset, or of `dataset` (one with the same words: a `digits` model
        on FSDD's standard test split, say); another dataset's split ignores the run's holdout options."""
        import dataclasses

        from digitkit.config import TrainConfig
        from digitkit.errors import DataError
        from digitkit.metrics import confusion_matrix, per_class
        from digitkit.tasks import EvalResult

        cfg = TrainConfig.from_dict(ckpt.train_config)
        name = self.dataset_name(dataset) if dataset else ckpt.dataset
        if name != ckpt.dataset:  # an FSDD speaker the model never heard stays its test speaker on the other dataset
            cfg = dataclasses.replace(cfg, holdout_fold=None,
                                      holdout_speaker=cfg.holdout_speaker if name in HOLDOUT_SPEAKER_DATASETS else None)
        spec, splits = load_speech_splits(name, folder, cfg)
        if splits.vocab != ckpt.classes:
            raise DataError(f"the words in {splits.source} ({', '.join(splits.vocab)}) differ from the model's ({', '.join(ckpt.classes)})")
        sr = int(ckpt.input["sample_rate"])
        reporter.info(f"evaluating {path} on the {spec.title} test recordings" + (f" ({splits.note})" if splits.note else ""))
        score = score_speech_test(model, splits.test, list(ckpt.classes), sr, LogMel.of(ckpt), reporter,
                                  ckpt.input.get("level_db"))
        n = len(ckpt.classes)
        predicted = torch.tensor([h[0] - 1 if len(h) == 1 else n for h in score.hyps], dtype=torch.long)
        conf = confusion_matrix(torch.tensor(score.tokens) - 1, predicted, n + 1)
        classes = list(ckpt.classes) + [OTHER]
        return EvalResult(
            checkpoint=str(path), dataset=spec.name, samples=len(score.tokens), accuracy=score.accuracy, loss=score.loss,
            classes=classes, per_class=[row for row in per_class(conf, classes) if row["class"] != OTHER],
            confusion=conf.tolist(), history=ckpt.history, note=splits.note, sequence_wer=score.sequence_wer,
            sequences=score.sequences, recorded_wer=score.recorded_wer, recorded=score.recorded,
        )


SPEECH = SpeechTask()
