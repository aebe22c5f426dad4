"""The CBAM paper authors' code layout (Jongchan/attention-module, ``MODELS/``): a package whose
modules import each other relatively (``from .cbam import *``). Load a file of it as

    cbam-export --model examples/user_models/cbam_authors/model_resnet.py:ResidualNet \
        --model-kwargs '{"network_type": "ImageNet", "depth": 50, "num_classes": 1000, "att_type": "CBAM"}'
"""
