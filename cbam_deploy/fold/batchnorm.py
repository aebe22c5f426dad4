"""Fold every BatchNorm into the Conv2d / Linear that feeds it, before export.

Pairs are found in the ``torch.fx`` graph, not from attribute names, so this works on any
architecture, including an MLP applied twice (the shared ``fc`` of ``original``/``parallel``:
PyTorch's exporter leaves those BatchNorms unfused) and producers that reach the BatchNorm
through a no-op (Identity, Dropout in eval). The arithmetic is ``torch.nn.utils.fusion``'s.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from ..errors import UsageError

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_NO_OPS = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


@dataclass
class FoldReport:
    """Which BatchNorms were folded into which producer, and which could not be, and why."""

    folded: list[tuple[str, str]] = field(default_factory=list)  # (producer, batchnorm)
    unfolded: dict[str, str] = field(default_factory=dict)  # batchnorm -> reason

    def to_dict(self) -> dict[str, object]:
        return {
            "folded": len(self.folded),
            "pairs": [f"{p} <- {b}" for p, b in self.folded],
            "unfolded": self.unfolded,
        }


def _producer_node(bn_node: fx.Node, modules: dict[str, nn.Module]) -> fx.Node | None:
    """The call feeding ``bn_node``, skipping single-use no-op modules."""
    arg = bn_node.args[0] if bn_node.args else None
    while isinstance(arg, fx.Node) and arg.op == "call_module" and isinstance(modules.get(arg.target), _NO_OPS):
        if len(arg.users) != 1:
            return None
        arg = arg.args[0]
    return arg if isinstance(arg, fx.Node) else None


def _compatible(producer: nn.Module, bn: nn.Module) -> bool:
    if isinstance(producer, nn.Conv2d) and isinstance(bn, nn.BatchNorm2d):
        return True
    if isinstance(producer, nn.Conv1d) and isinstance(bn, nn.BatchNorm1d):
        return True
    if isinstance(producer, nn.Conv3d) and isinstance(bn, nn.BatchNorm3d):
        return True
    return isinstance(producer, nn.Linear) and isinstance(bn, nn.BatchNorm1d)


def _find_pairs(model: nn.Module, report: FoldReport) -> dict[str, str]:
    """bn target -> producer target, for pairs that are the same at every call site."""
    modules = dict(model.named_modules())
    try:
        graph = fx.symbolic_trace(model).graph
    except Exception as exc:  # fx cannot trace data-dependent control flow; say so, fold nothing
        reason = f"model could not be traced with torch.fx ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''})"
        for name, m in modules.items():
            if isinstance(m, _BATCHNORMS):
                report.unfolded[name] = reason
        return {}

    calls: dict[str, list[fx.Node]] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls.setdefault(node.target, []).append(node)

    pairs: dict[str, str] = {}
    for name, m in modules.items():
        if not isinstance(m, _BATCHNORMS):
            continue
        sites = calls.get(name, [])
        if not sites:
            report.unfolded[name] = "never called in forward"
            continue
        if m.running_mean is None or m.running_var is None:
            report.unfolded[name] = "BatchNorm without running statistics (track_running_stats=False)"
            continue
        producers = {_producer_node(site, modules) for site in sites}
        targets = {p.target if p is not None and p.op == "call_module" else None for p in producers}
        producer = next(iter(targets)) if len(targets) == 1 else None
        if producer is None or not _compatible(modules[producer], m):
            report.unfolded[name] = "not fed directly by a Conv/Linear at every call"
            continue
        # Folding rewrites the producer's weights: every use of the producer must feed this BN.
        producer_sites = calls[producer]
        if len(producer_sites) != len(sites) or any(len(p.users) != 1 for p in producers):
            report.unfolded[name] = f"its producer {producer!r} is also used without this BatchNorm"
            continue
        pairs[name] = producer
    return pairs


def _set_submodule(root: nn.Module, name: str, module: nn.Module) -> None:
    parent_name, _, attr = name.rpartition(".")
    setattr(root.get_submodule(parent_name) if parent_name else root, attr, module)


def fold_batchnorms(model: nn.Module) -> tuple[nn.Module, FoldReport]:
    """Return a folded copy of an eval-mode ``model`` (the original is untouched) and a report.

    Each folded BatchNorm is replaced by ``nn.Identity`` and its producer gets the folded weight and
    a bias (created where it had none). A model in training mode is refused: its BatchNorms use
    batch statistics, which cannot be folded.
    """
    training = [name or "<root>" for name, m in model.named_modules() if m.training]
    if training:
        raise UsageError(
            f"cannot fold BatchNorm of a model in training mode ({len(training)} modules training, "
            f"e.g. {training[0]!r}); call model.eval() first"
        )
    folded = copy.deepcopy(model)
    report = FoldReport()
    pairs = _find_pairs(folded, report)
    with torch.no_grad():
        for bn_name, producer_name in pairs.items():
            producer = folded.get_submodule(producer_name)
            bn = folded.get_submodule(bn_name)
            fuse = fuse_linear_bn_eval if isinstance(producer, nn.Linear) else fuse_conv_bn_eval
            _set_submodule(folded, producer_name, fuse(producer, bn))
            _set_submodule(folded, bn_name, nn.Identity())
            report.folded.append((producer_name, bn_name))
    return folded, report
