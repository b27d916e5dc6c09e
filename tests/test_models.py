"""Models are plain modules built from their config; shapes hold for 28x28 and 32x32 inputs."""

import pytest
import torch

from digitkit.errors import DigitkitError
from digitkit.models.registry import build_model, config_to_dict, make_config


@pytest.mark.parametrize("name,channels,size", [("cnn", 1, 28), ("cnn", 3, 32), ("resnet", 1, 28), ("resnet", 3, 32)])
def test_forward_shapes(name, channels, size):
    cfg = make_config(name, {"in_channels": channels, "image_size": size, "num_classes": 7})
    model = build_model(name, cfg).eval()
    assert model(torch.zeros(3, channels, size, size)).shape == (3, 7)
    assert make_config(name, config_to_dict(cfg)) == cfg  # the dict stored in a checkpoint rebuilds the same config


def test_seed_sized_cnn_is_configurable():
    cfg = make_config("cnn", {"filters": [128, 192], "dense": 256, "dropout_conv": 0.3})
    model = build_model("cnn", cfg)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [128, 192]
    assert model.classifier[2].out_features == 256 and model.classifier[0].p == 0.3


def test_unknown_model_option():
    with pytest.raises(DigitkitError, match="no option"):
        make_config("cnn", {"depth": 3})


def test_resnet_stages_follow_widths_and_blocks():
    from digitkit.models.resnet import Residual

    cfg = make_config("resnet", {"stem": 16, "widths": [24, 32, 48], "blocks": [2, 0, 1]})
    model = build_model("resnet", cfg)
    stages = list(model.features)[1:]
    assert [type(m).__name__ for m in stages] == ["Sequential", "Residual", "Residual", "Sequential", "Sequential", "Residual"]
    assert [m.body[0][0].out_channels for m in stages if isinstance(m, Residual)] == [24, 24, 48]
    assert model(torch.zeros(2, 3, 32, 32)).shape == (2, 10)


@pytest.mark.parametrize("options,message", [
    ({"widths": [32, 64], "blocks": [1, 0, 1]}, "one blocks entry per stage"),
    ({"widths": [8, 8, 8, 8, 8, 8], "blocks": [0] * 6}, "below one pixel"),
])
def test_resnet_rejects_inconsistent_options(tmp_path, data_dir, options, message):
    from digitkit import api

    with pytest.raises(DigitkitError, match=message):
        api.train("cifar10", model="resnet", model_options=options, out=tmp_path / "r.safetensors", data_dir=data_dir,
                  limit=10, epochs=1)


@pytest.mark.parametrize("rnn,bidirectional", [("lstm", True), ("lstm", False), ("gru", True)])
def test_speech_training_on_a_cpu_computes_what_the_packed_batch_gives(rnn, bidirectional, monkeypatch):
    """A CPU trains the recurrent layers on the padded batch (4x faster backward than packed); outputs and gradients
    must be those of the packed batch, which evaluation and export use, for sequences of every length."""
    from digitkit.models.speech import SpeechConfig, SpeechRecognizer

    torch.manual_seed(0)
    model = SpeechRecognizer(SpeechConfig(rnn=rnn, bidirectional=bidirectional, dropout=0.0))
    feats = torch.randn(6, 200, 40)
    lengths = torch.tensor([200, 150, 37, 199, 4, 1])
    weight = torch.linspace(-1, 1, model.config.num_tokens)
    results = []
    pack = torch.nn.utils.rnn.pack_padded_sequence
    for train in (True, False):
        model.zero_grad()
        model.train(train)
        model.front.eval()  # batch norm alike in both passes
        unpacked = lambda *a, **k: pytest.fail("training on a CPU packed the batch")
        monkeypatch.setattr(torch.nn.utils.rnn, "pack_padded_sequence", unpacked if train else pack)
        log_probs, out_lengths = model(feats, lengths)
        valid = torch.arange(log_probs.shape[1])[None, :] < out_lengths[:, None]
        (log_probs * weight)[valid].sum().backward()
        results.append((log_probs[valid].detach(), [p.grad.clone() for p in model.rnn.parameters()]))
    (dense, dense_grads), (packed, packed_grads) = results
    assert torch.allclose(dense, packed, atol=1e-5)
    for a, b in zip(dense_grads, packed_grads):
        assert torch.allclose(a, b, atol=1e-5, rtol=1e-4)
