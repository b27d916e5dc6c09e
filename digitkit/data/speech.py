"""Speech datasets: where their recordings live, how they split, and their word vocabularies.

- `fsdd`: `<data-dir>/fsdd/recordings/<digit>_<speaker>_<index>.wav`, 8 kHz. Standard split: index 0-4 of every
  speaker is the test set; or hold one speaker out entirely (speaker-independent).
- `speechcommands`: `<data-dir>/SpeechCommands/speech_commands_v0.0X/<word>/<speaker>_nohash_<n>.wav`, 16 kHz.
  The dataset's own validation_list.txt / testing_list.txt when present, else a split by a hash of the speaker,
  so that no speaker is in two splits.
- `an4-digits` (a source of `digits`, not trained alone): `<data-dir>/an4-digits/transcripts.tsv` + `wav/`, real
  digit strings spoken fluently, 16 kHz; split into speaker folds, no speaker in two.
- `digits`: every real digit recording present, for a recognizer of digit strings by any voice: FSDD, the digit
  words of Speech Commands v0.01, the AN4 strings, and every other Speech Commands word as a "not a digit" example
  (the model's filler token, so that other speech is reported as not recognised). Each corpus keeps its own test
  recordings out: FSDD's index 0-4, Speech Commands' testing list or test speakers, and with `--holdout-fold K`
  the AN4 speakers of fold K (of AN4_FOLDS).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from digitkit.errors import DataError


@dataclass(frozen=True)
class SpeechDataset:
    name: str
    title: str
    sample_rate: int
    folder: str
    hint: str  # where to get it


@dataclass
class Utterance:
    path: Path
    word: str  # a single word, or for a recorded string its words joined by spaces
    speaker: str
    corpus: str = ""

    @property
    def words(self) -> list[str]:
        return self.word.split(" ")


@dataclass
class SpeechSplits:
    vocab: list[str]
    train: list[Utterance]
    val: list[Utterance]
    test: list[Utterance]
    source: str
    note: str = ""
    speakers: list[str] = field(default_factory=list)
    fillers: list[Utterance] = field(default_factory=list)  # other speech, trained as "not a word of vocab"
    filler_test: list[Utterance] = field(default_factory=list)


SPEECH_DATASETS = {
    "fsdd": SpeechDataset(
        "fsdd", "Free Spoken Digit Dataset", 8000, "fsdd/recordings",
        "clone https://github.com/Jakobovski/free-spoken-digit-dataset and copy its recordings/ folder there",
    ),
    "speechcommands": SpeechDataset(
        "speechcommands", "Speech Commands", 16000, "SpeechCommands",
        "unpack speech_commands_v0.02.tar.gz (or v0.01) from the dataset's official release into "
        "SpeechCommands/speech_commands_v0.02/",
    ),
    "digits": SpeechDataset(
        "digits", "real spoken digits (FSDD, Speech Commands, AN4)", 8000, "fsdd/recordings",
        "put at least the Free Spoken Digit Dataset's recordings/ in fsdd/recordings/ (Speech Commands in "
        "SpeechCommands/ and CMU AN4 digit strings in an4-digits/ are added when present)",
    ),
}

AN4_FOLDS = 4
DIGIT_WORDS = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
_SPOKEN_DIGIT = {**{w: str(i) for i, w in enumerate(DIGIT_WORDS)}, "oh": "0"}

_FSDD_NAME = re.compile(r"^(\d)_([A-Za-z]+)_(\d+)\.wav$")


def _key(name: str) -> str:
    """"Speech-Commands", "speech_commands" and "speechcommands" all name the same dataset."""
    return name.lower().replace("-", "").replace("_", "")


def is_speech(name: str) -> bool:
    return _key(name) in SPEECH_DATASETS


def get_speech_dataset(name: str) -> SpeechDataset:
    return SPEECH_DATASETS[_key(name)]


def _missing(spec: SpeechDataset, folder: Path) -> DataError:
    return DataError(f"{spec.title} not found in {folder}: {spec.hint}, or point --data-dir / $DIGITKIT_DATA at a folder that has {spec.folder}/")


def _hold_out(items: list[Utterance], fraction: float, seed: int) -> tuple[list[Utterance], list[Utterance]]:
    import torch

    if fraction <= 0:
        return items, []
    order = torch.randperm(len(items), generator=torch.Generator().manual_seed(seed)).tolist()
    n_val = int(round(len(items) * fraction))
    return [items[i] for i in order[n_val:]], [items[i] for i in order[:n_val]]


def load_fsdd(data_dir: Path, val_split: float, seed: int, holdout_speaker: str | None = None) -> SpeechSplits:
    spec = SPEECH_DATASETS["fsdd"]
    folder = data_dir / spec.folder
    files = sorted(folder.glob("*.wav")) if folder.is_dir() else []
    items, indices = [], []
    for f in files:
        m = _FSDD_NAME.match(f.name)
        if m:
            items.append(Utterance(f, m.group(1), m.group(2)))
            indices.append(int(m.group(3)))
    if not items:
        raise _missing(spec, folder)
    speakers = sorted({u.speaker for u in items})
    if holdout_speaker is not None:
        if holdout_speaker not in speakers:
            raise DataError(f"no FSDD speaker {holdout_speaker!r}; speakers are: {', '.join(speakers)}")
        test = [u for u in items if u.speaker == holdout_speaker]
        rest = [u for u in items if u.speaker != holdout_speaker]
        note = f"speaker-independent: {holdout_speaker} held out ({len(test)} recordings)"
    else:
        test = [u for u, i in zip(items, indices) if i < 5]
        rest = [u for u, i in zip(items, indices) if i >= 5]
        note = ""
    train, val = _hold_out(rest, val_split, seed)
    return SpeechSplits([str(d) for d in range(10)], train, val, test, str(folder), note, speakers)


def _speaker_bucket(speaker: str) -> int:
    return int(hashlib.sha1(speaker.encode()).hexdigest(), 16) % 100


def load_speechcommands(data_dir: Path, words: list[str] | None = None) -> SpeechSplits:
    spec = SPEECH_DATASETS["speechcommands"]
    root = data_dir / spec.folder
    versions = sorted(root.glob("speech_commands_v0.0*"), reverse=True) if root.is_dir() else []
    version = next((v for v in versions if any(d.is_dir() and not d.name.startswith("_") for d in v.iterdir())), None)
    if version is None:
        raise _missing(spec, root)
    present = sorted(d.name for d in version.iterdir() if d.is_dir() and not d.name.startswith("_"))
    if words:
        unknown = sorted(set(words) - set(present))
        if unknown:
            raise DataError(f"no Speech Commands word(s) {', '.join(unknown)} in {version}; present: {', '.join(present)}")
        vocab = list(words)
    else:
        vocab = present
    items = [Utterance(f, w, f.name.split("_nohash_")[0]) for w in vocab for f in sorted((version / w).glob("*.wav"))]
    lists = {name: version / f"{name}_list.txt" for name in ("validation", "testing")}
    if all(p.is_file() for p in lists.values()):
        listed = {name: set(p.read_text().split()) for name, p in lists.items()}
        rel = lambda u: f"{u.word}/{u.path.name}"
        test = [u for u in items if rel(u) in listed["testing"]]
        val = [u for u in items if rel(u) in listed["validation"]]
        train = [u for u in items if rel(u) not in listed["testing"] and rel(u) not in listed["validation"]]
        note = f"{version.name}: the dataset's own validation/testing lists"
    else:
        bucket = {u.speaker: _speaker_bucket(u.speaker) for u in items}
        test = [u for u in items if bucket[u.speaker] < 15]
        val = [u for u in items if 15 <= bucket[u.speaker] < 25]
        train = [u for u in items if bucket[u.speaker] >= 25]
        note = f"{version.name}: no split lists, so split by speaker hash (15 % test, 10 % val, no speaker in two splits)"
    return SpeechSplits(vocab, train, val, test, str(version), note, sorted({u.speaker for u in items}))


def _sc_versions(data_dir: Path) -> list[Path]:
    root = data_dir / SPEECH_DATASETS["speechcommands"].folder
    return sorted(root.glob("speech_commands_v0.0*")) if root.is_dir() else []


def _sc_items(version: Path) -> list[Utterance]:
    return [Utterance(f, d.name, f.name.split("_nohash_")[0], version.name)
            for d in sorted(version.iterdir()) if d.is_dir() and not d.name.startswith("_")
            for f in sorted(d.glob("*.wav"))]


def _sc_is_test(version: Path) -> Any:
    """A predicate for the test recordings of one Speech Commands version: its testing list, else test speakers."""
    listed = version / "testing_list.txt"
    if listed.is_file():
        names = set(listed.read_text().split())
        return lambda u: f"{u.path.parent.name}/{u.path.name}" in names
    return lambda u: _speaker_bucket(u.speaker) < 15


def an4_fold(speaker: str) -> int:
    """1..AN4_FOLDS, fixed by the speaker's name, so a speaker is in one fold only."""
    return _speaker_bucket(speaker) % AN4_FOLDS + 1


def load_an4_digits(data_dir: Path) -> list[Utterance]:
    """The AN4 strings as utterances of digit words ("oh" is 0)."""
    folder = data_dir / "an4-digits"
    table = folder / "transcripts.tsv"
    if not table.is_file():
        return []
    out = []
    for line in table.read_text().splitlines()[1:]:
        cols = line.split("\t")
        if len(cols) < 4:
            continue
        spoken = cols[2].split()
        if not spoken or any(w not in _SPOKEN_DIGIT for w in spoken):
            raise DataError(f"{table}: {cols[0]} has a word that is not a digit: {cols[2]!r}")
        out.append(Utterance(folder / cols[0], " ".join(_SPOKEN_DIGIT[w] for w in spoken), cols[3], "an4"))
    return out


def load_digits(data_dir: Path, val_split: float, seed: int, holdout_fold: int | None = None,
                holdout_speaker: str | None = None) -> SpeechSplits:
    """Every real digit source present, each corpus' test recordings kept out: FSDD's standard test split (or all of
    `holdout_speaker`'s recordings and none of them in training), the Speech Commands test speakers, and where
    `holdout_fold` is given, that AN4 speaker fold."""
    if holdout_fold is not None and not 1 <= holdout_fold <= AN4_FOLDS:
        raise DataError(f"--holdout-fold must be 1..{AN4_FOLDS}")
    fsdd = load_fsdd(data_dir, 0.0, seed, holdout_speaker)
    words_train = [Utterance(u.path, u.word, u.speaker, "fsdd") for u in fsdd.train]
    words_test = [Utterance(u.path, u.word, u.speaker, "fsdd") for u in fsdd.test]
    fillers, filler_test = [], []
    for version in _sc_versions(data_dir):
        is_test = _sc_is_test(version)
        for u in _sc_items(version):
            digit = _SPOKEN_DIGIT.get(u.word)
            item = Utterance(u.path, digit if digit is not None else u.word, u.speaker, "speechcommands")
            test = is_test(u)
            if digit is None:
                (filler_test if test else fillers).append(item)
            else:
                (words_test if test else words_train).append(item)
    train, val = _hold_out(words_train, val_split, seed)
    strings = load_an4_digits(data_dir)
    test = words_test
    if holdout_fold is not None:
        if not strings:
            raise DataError(f"--holdout-fold needs the AN4 digit strings in {data_dir / 'an4-digits'}")
        test = test + [u for u in strings if an4_fold(u.speaker) == holdout_fold]
        strings = [u for u in strings if an4_fold(u.speaker) != holdout_fold]
    sources = ["fsdd"] + [v.name for v in _sc_versions(data_dir)] + (["an4-digits"] if strings else [])
    note = f"sources: {', '.join(sources)}; {len(strings)} recorded strings, {len(fillers)} other words"
    if holdout_fold is not None:
        note += f"; AN4 speaker fold {holdout_fold} of {AN4_FOLDS} held out for testing"
    if holdout_speaker is not None:
        note += f"; FSDD {fsdd.note}"
    speakers = sorted({u.speaker for u in train + strings + test})
    return SpeechSplits([str(d) for d in range(10)], train + strings, val, test, str(data_dir), note, speakers,
                        fillers, filler_test)
