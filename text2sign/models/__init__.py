"""Models: the text-conditioned video DiT, the text encoder and the weight EMA.

Import from the submodules (``text2sign.models.dit`` ...): this package stays import-light so
that ``text2sign.models.presets`` (used by config validation and job submission) needs no torch.
"""
