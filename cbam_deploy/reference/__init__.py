"""The reference task: a generated shapes dataset (``dataset``), training (``train``), shipped
checkpoints, held-out evaluation (``evaluate``). Submodules are imported where they are used."""
