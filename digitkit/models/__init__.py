"""Models: plain `nn.Module`s, each built from a config dataclass that the checkpoint stores."""
