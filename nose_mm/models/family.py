"""Backbone families: everything nose_mm knows about one kind of backbone, in one place.

A family (a :class:`BackboneFamily` subclass, registered with
:func:`register_family`) lives in the module of its backbone
(``nose_mm/models/backbones/nose_*.py``) and declares:

* its backbone classes: the nose_mm backbone and the mmpretrain classes it
  accepts (:meth:`BackboneFamily.owns`);
* its state-dict layout (:class:`~nose_mm.models.layouts.BlockLayout`): which
  keys are a block's removable pre-norm and attention;
* how to recognise and convert timm / official checkpoints (the converter's
  key map) and how to recognise its converted checkpoints;
* what selection needs to run the network block by block (embedding, blocks,
  branches, readout), so :mod:`nose_mm.selection.adapters` has one adapter;
* its display names (``'DeiT-B'``, ``'Swin-T'``...).

Pruning, conversion, the benchmark's model names and selection ask this
registry and name no family. A new family is one module that subclasses
:class:`BackboneFamily`, plus its configs and tests.
"""
from collections import OrderedDict
from typing import Any, Callable, Dict, Iterable, List, Optional, Tuple, Type

from torch import Tensor, nn

from .layouts import BlockLayout

__all__ = ['BackboneFamily', 'register_family', 'families', 'get_family', 'family_of_module',
           'family_of_type', 'detect_source_family', 'family_of_state_dict', 'layout_of_state_dict',
           'undecided_families']

_FAMILIES: 'OrderedDict[str, BackboneFamily]' = OrderedDict()
StateDict = Dict[str, Tensor]


class BackboneFamily:
    """One backbone family. Subclass, set the attributes, register an instance.

    Attributes:
        name (str): Registry name (``'vit'``...), also the ``arch`` name prefix
            of families other than the default ViT one.
        backbone (type): The nose_mm backbone class (what converted
            checkpoints are built into).
        accepts (tuple[type]): Backbone classes the family handles (its
            nose_mm class and mmpretrain's), subclasses included...
        rejects (tuple[type]): ... except these (another family's subclasses).
        layout (BlockLayout): State-dict layout of the blocks.
        specialises (str, optional): A family whose checkpoints and modules
            look like this one's: when both recognise a file, this one wins.
        source_tag (str): ``meta['converted_from']`` of converted checkpoints.
        arch_prefix (str): Prefix of ``arch`` names (``'swin'`` ->
            ``'swin-tiny'``); ``''`` for the ViT family.
        display_prefix (str): Display prefix of custom archs (``'Swin'``).
        arch_names (dict): ``arch`` names (prefixed) -> display names.
    """

    name: str
    backbone: type
    accepts: Tuple[type, ...] = ()
    rejects: Tuple[type, ...] = ()
    layout: BlockLayout
    specialises: Optional[str] = None
    source_tag: str = ''
    arch_prefix: str = ''
    display_prefix: str = ''
    arch_names: Dict[str, str] = {}

    # ---- backbones ------------------------------------------------------------------
    def owns(self, backbone: Any) -> bool:
        """Whether ``backbone`` (a module or a class) belongs to this family."""
        cls = backbone if isinstance(backbone, type) else type(backbone)
        return issubclass(cls, self.accepts) and not issubclass(cls, self.rejects)

    def type_names(self) -> List[str]:
        """Names of the accepted classes (as configs write ``type``)."""
        return [cls.__name__ for cls in self.accepts]

    # ---- checkpoints ----------------------------------------------------------------
    def claims_source(self, state_dict: StateDict) -> bool:
        """Whether a timm / official state dict is of this family."""
        raise NotImplementedError

    def convert_source(self, state_dict: StateDict) -> 'OrderedDict[str, Tensor]':
        """Map a timm / official state dict onto nose_mm classifier keys."""
        raise NotImplementedError

    def claims_checkpoint(self, state_dict: StateDict, prefix: str) -> Optional[bool]:
        """Whether an mmpretrain-key state dict is of this family: True, False or None
        (the keys cannot tell). Defaults to "the layout's block keys are there"."""
        return bool(self.layout.depths(state_dict, prefix))

    # ---- selection: the network block by block --------------------------------------
    def blocks(self, backbone: nn.Module) -> List[nn.Module]:
        """The blocks in global layer order."""
        return list(backbone.layers)

    def check_readout(self, backbone: nn.Module, num_blocks: int) -> None:
        """Raise ValueError unless the head reads the last block's output alone."""

    def embed(self, backbone: nn.Module, inputs: Tensor) -> Tuple[Any, Any]:
        """Images to ``(state, context)``: block 0's input state and what the readout needs."""
        raise NotImplementedError

    def tokens(self, state: Any) -> Tensor:
        """The (B, N, C) tokens of a state."""
        return state

    def with_tokens(self, state: Any, tokens: Tensor) -> Any:
        """``state`` with its tokens replaced."""
        return tokens

    def attention_branch(self, block: nn.Module, state: Any) -> Tensor:
        """What block's attention sublayer adds to the tokens of ``state``."""
        raise NotImplementedError

    def mlp_branch(self, block: nn.Module, state: Any) -> Tensor:
        """What block's MLP sublayer adds to the tokens of ``state``."""
        raise NotImplementedError

    def run_block(self, block: nn.Module, state: Any) -> Any:
        """The block's own forward (removed blocks)."""
        return block(state)

    def exits(self, backbone: nn.Module) -> Dict[int, Callable[[Any], Any]]:
        """``{block index: step}`` turning that block's output state into the next block's
        input (e.g. patch merging); blocks not listed hand their output on as it is."""
        return {}

    def readout(self, backbone: nn.Module, state: Any, context: Any) -> Tensor:
        """The last block's output to the backbone's last output (what the neck reads)."""
        raise NotImplementedError

    def patch_map(self, backbone: nn.Module, state: Any, context: Any) -> Tensor:
        """A block's output state as a (B, C, H, W) patch feature map."""
        raise NotImplementedError

    # ---- selection on dense tasks: the backbone's own outputs ------------------------
    def output_blocks(self, backbone: nn.Module) -> List[int]:
        """The blocks (global index, ascending) after which the backbone's outputs
        (``out_indices``, in forward order) are taken (a segmentor's dense features)."""
        raise NotImplementedError(f'backbone family {self.name!r} does not declare its dense '
                                  f'outputs (output_blocks / output)')

    def output(self, backbone: nn.Module, index: int, state: Any, context: Any) -> Tensor:
        """The backbone's output taken after block ``index`` (one of :meth:`output_blocks`),
        from that block's output state before :meth:`exits`' step, as its forward returns it."""
        raise NotImplementedError(f'backbone family {self.name!r} does not declare its dense '
                                  f'outputs (output_blocks / output)')

    # ---- names ----------------------------------------------------------------------
    def arch_name(self, name: str) -> str:
        """The family's ``arch`` name of a preset or custom arch name."""
        return f'{self.arch_prefix}-{name}' if self.arch_prefix else name

    def display_name(self, arch_name: str) -> str:
        """Display name of an :meth:`arch_name` (``'Swin-T'``, ``'DeiT-III custom(...)'``)."""
        if arch_name in self.arch_names:
            return self.arch_names[arch_name]
        if self.arch_prefix and arch_name.startswith(self.arch_prefix + '-'):
            return f'{self.display_prefix} {arch_name[len(self.arch_prefix) + 1:]}'
        return arch_name

    def __repr__(self) -> str:
        return f'<backbone family {self.name!r}>'


def register_family(cls: Type[BackboneFamily]) -> Type[BackboneFamily]:
    """Class decorator: register an instance of ``cls`` under ``cls.name``."""
    if not (isinstance(cls, type) and issubclass(cls, BackboneFamily)):
        raise TypeError(f'{cls!r} is not a BackboneFamily subclass')
    _FAMILIES[cls.name] = cls()
    return cls


def families() -> List[BackboneFamily]:
    """The registered families, in registration order."""
    from . import backbones  # noqa: F401  (registers the built-in families)
    return list(_FAMILIES.values())


def get_family(name: str) -> BackboneFamily:
    """The family registered as ``name``.

    Raises:
        ValueError: No such family (the registered ones are named).
    """
    found = {f.name: f for f in families()}
    if name not in found:
        raise ValueError(f'unknown backbone family {name!r}; registered: {", ".join(found)}')
    return found[name]


def _most_specific(found: List[BackboneFamily]) -> List[BackboneFamily]:
    return [f for f in found if not any(g.specialises == f.name for g in found)]


def family_of_module(backbone: Any) -> Optional[BackboneFamily]:
    """The family owning ``backbone`` (a module or class), or None."""
    found = _most_specific([f for f in families() if f.owns(backbone)])
    return found[0] if len(found) == 1 else None


def family_of_type(type_name: Any) -> Optional[BackboneFamily]:
    """The family of a config's backbone ``type`` (``'mmpretrain.DeiT3'``...), or None."""
    if type_name is None:
        return None
    if not isinstance(type_name, str):
        type_name = getattr(type_name, '__name__', str(type_name))
    short = type_name.rsplit('.', 1)[-1]
    found = _most_specific([f for f in families() if short in f.type_names()])
    return found[0] if len(found) == 1 else None


def _one(found: Iterable[BackboneFamily], what: str) -> BackboneFamily:
    found = _most_specific(list(found))
    if len(found) > 1:
        raise ValueError(f'{what} looks like several backbone families '
                         f'({", ".join(f.name for f in found)}); cannot tell which')
    return found[0]


def detect_source_family(state_dict: StateDict) -> BackboneFamily:
    """The family of a timm / official state dict, read from its keys.

    Raises:
        ValueError: No family or several recognise it, naming the first keys.
    """
    found = [f for f in families() if f.claims_source(state_dict)]
    if not found:
        sample = list(state_dict)[:5]
        raise ValueError(f'unrecognised checkpoint layout (first keys: {sample}): not a timm / '
                         f'official state dict of a registered family '
                         f'({", ".join(f.name for f in families())})')
    return _one(found, 'the state dict')


def family_of_state_dict(state_dict: StateDict,
                         prefix: str = 'backbone.') -> Optional[BackboneFamily]:
    """The family of a state dict with nose_mm / mmpretrain keys under ``prefix``.

    Returns:
        BackboneFamily | None: The family; None when a family's keys are there
        but the keys cannot tell it from a more specific one.

    Raises:
        ValueError: No family's block keys under ``prefix``, or several.
    """
    layout_of_state_dict(state_dict, prefix)  # raises without block keys
    claims = [(f, f.claims_checkpoint(state_dict, prefix)) for f in families()]
    if any(c is None for _, c in claims):
        return None
    return _one((f for f, c in claims if c), f'the state dict (prefix {prefix!r})')


def undecided_families(state_dict: StateDict, prefix: str = 'backbone.') -> List[BackboneFamily]:
    """When :func:`family_of_state_dict` cannot tell: the families it could be."""
    claims = [(f, f.claims_checkpoint(state_dict, prefix)) for f in families()]
    unsure = [f for f, c in claims if c is None]
    return [f for f, c in claims if c is not False
            and (c is None or any(u.specialises == f.name for u in unsure))]


def layout_of_state_dict(state_dict: StateDict, prefix: str = 'backbone.') -> BlockLayout:
    """The block layout of a state dict with nose_mm keys under ``prefix``.

    Raises:
        ValueError: No family's block keys under ``prefix``, or keys of
            families with different layouts.
    """
    found = {id(f.layout): f.layout for f in families() if f.layout.depths(state_dict, prefix)}
    looked = ', '.join(sorted({f'"{f.layout.key_shape(prefix)}"'
                               for f in families()}))
    if not found:
        raise ValueError(f'no backbone block keys under prefix {prefix!r} (looked for {looked}): '
                         f'is the prefix {prefix!r} right?')
    if len(found) > 1:
        raise ValueError(f'the state dict holds block keys of several backbone layouts under '
                         f'prefix {prefix!r} ({looked}); give the prefix of one backbone')
    return next(iter(found.values()))
