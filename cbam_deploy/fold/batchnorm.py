"""Fold every BatchNorm into the Conv2d / Linear that feeds it, before export.

Pairs are found in the ``torch.fx`` graph, not from attribute names, so this works on any
architecture, including an MLP applied twice (the shared ``fc`` of ``original``/``parallel``:
PyTorch's exporter leaves those BatchNorms unfused) and producers that reach the BatchNorm
through a no-op (Identity, Dropout in eval). The arithmetic is ``torch.nn.utils.fusion``'s.

BatchNorm subclasses are matched too (the tracer keeps every BatchNorm a leaf, so a subclass with
its own forward, like timm's ``BatchNormAct2d``, is seen where it is called instead of traced
through). One whose forward does more than normalise (an activation, a dropout) is not folded
here: replacing it with Identity would drop that. It is left to the exporter, which fuses an
eval-mode BatchNorm into its Conv; ``FoldReport.settle`` records that once the graph is checked.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field

import torch
from torch import fx, nn
from torch.nn.utils.fusion import fuse_conv_bn_eval, fuse_linear_bn_eval

from ..errors import UsageError

_BATCHNORMS = (nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d)
_ANY_BATCHNORM = nn.modules.batchnorm._BatchNorm
_NO_OPS = (nn.Identity, nn.Dropout, nn.Dropout1d, nn.Dropout2d, nn.Dropout3d)


@dataclass
class FoldReport:
    """Which BatchNorms were folded into which producer, which were not and why, and which the
    exporter fused instead (known once the exported graph is checked, see ``settle``)."""

    folded: list[tuple[str, str]] = field(default_factory=list)  # (producer, batchnorm)
    unfolded: dict[str, str] = field(default_factory=dict)  # batchnorm -> reason
    untraceable: str | None = None  # why torch.fx could not trace the model (then nothing is folded here)
    left_to_exporter: list[str] = field(default_factory=list)  # called in forward, not folded here
    exporter_fused: list[str] = field(default_factory=list)  # of those, fused by the exporter

    def notes(self) -> list[str]:
        """One line per reason (naming the BatchNorms it applies to); one line in all when fx could
        not trace the model."""
        if self.untraceable is not None:
            n = len(self.left_to_exporter)
            then = (f"the exporter fused all {n}" if self.exporter_fused else f"all {n} left to the exporter")
            return [f"BatchNorm folding skipped: {self.untraceable}; {then}"]
        by_reason: dict[str, list[str]] = {}
        for bn, why in self.unfolded.items():
            by_reason.setdefault(why, []).append(bn)
        lines = []
        for why, names in by_reason.items():
            shown = ", ".join(names[:3]) + (f" and {len(names) - 3} more" if len(names) > 3 else "")
            lines.append(f"{len(names)} BatchNorm{'s' if len(names) > 1 else ''} not folded ({shown}): {why}")
        if self.exporter_fused:
            lines.append(f"{len(self.exporter_fused)} BatchNorms fused into their Conv by the exporter instead")
        return lines

    def settle(self, graph_batchnorms: int) -> None:
        """After export: with no BatchNormalization node left in the graph, every BatchNorm that
        ran in forward but was not folded here was fused by the exporter."""
        if graph_batchnorms == 0:
            self.exporter_fused = list(self.left_to_exporter)
            for bn in self.exporter_fused:
                self.unfolded.pop(bn, None)

    def to_dict(self) -> dict[str, object]:
        return {
            "folded": len(self.folded),
            "pairs": [f"{p} <- {b}" for p, b in self.folded],
            "unfolded": self.unfolded,
            "untraceable": self.untraceable,
            "fused_by_exporter": self.exporter_fused,
        }


class _Tracer(fx.Tracer):
    """Keeps every BatchNorm (subclasses included) a leaf, so folding sees where each is called."""

    def is_leaf_module(self, m: nn.Module, module_qualified_name: str) -> bool:
        return isinstance(m, _ANY_BATCHNORM) or super().is_leaf_module(m, module_qualified_name)


def _plain_forward(bn: nn.Module) -> bool:
    """True when the module's forward is torch's own BatchNorm forward (nothing else happens in it)."""
    return type(bn).__module__.startswith("torch.") or type(bn).forward is _ANY_BATCHNORM.forward


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


def _trace(model: nn.Module, modules: dict[str, nn.Module], report: FoldReport) -> fx.Graph | None:
    try:
        return _Tracer().trace(model)
    except Exception as exc:  # fx cannot trace data-dependent control flow; say so once, fold nothing
        first = str(exc).splitlines()[0] if str(exc) else ""
        report.untraceable = f"torch.fx cannot trace the model ({type(exc).__name__}: {first})"
        report.left_to_exporter = [n for n, m in modules.items() if isinstance(m, _ANY_BATCHNORM)]
        return None


def _unfoldable(name: str, m: nn.Module, sites: list[fx.Node]) -> str | None:
    """Why the BatchNorm ``name`` cannot be folded whatever feeds it, or None."""
    if not sites:
        return "never called in forward"
    if m.running_mean is None or m.running_var is None:
        return "BatchNorm without running statistics (track_running_stats=False)"
    if not _plain_forward(m):
        return (f"{type(m).__name__} has its own forward (more than a BatchNorm, e.g. an activation): "
                "left to the exporter")
    return None


def _find_pairs(model: nn.Module, report: FoldReport) -> dict[str, str]:
    """bn target -> producer target, for pairs that are the same at every call site."""
    modules = dict(model.named_modules())
    graph = _trace(model, modules, report)
    if graph is None:
        return {}
    calls: dict[str, list[fx.Node]] = {}
    for node in graph.nodes:
        if node.op == "call_module":
            calls.setdefault(node.target, []).append(node)

    pairs: dict[str, str] = {}
    for name, m in modules.items():
        if not isinstance(m, _ANY_BATCHNORM):
            continue
        sites = calls.get(name, [])
        reason = _unfoldable(name, m, sites)
        if reason is None:
            producers = {_producer_node(site, modules) for site in sites}
            targets = {p.target if p is not None and p.op == "call_module" else None for p in producers}
            producer = next(iter(targets)) if len(targets) == 1 else None
            if producer is None or not _compatible(modules[producer], m):
                reason = "not fed directly by a Conv/Linear at every call"
            elif len(calls[producer]) != len(sites) or any(len(p.users) != 1 for p in producers):
                # Folding rewrites the producer's weights: every use of the producer must feed this BN.
                reason = f"its producer {producer!r} is also used without this BatchNorm"
            else:
                pairs[name] = producer
                continue
        report.unfolded[name] = reason
        if sites:
            report.left_to_exporter.append(name)
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
