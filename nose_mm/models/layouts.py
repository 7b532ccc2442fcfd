"""Where each backbone family keeps its attention weights in a state dict.

One place knows the key names of the removable parts (the pre-norm and the
attention of a block) for every supported family; the backbones' checkpoint
checks and the prune tool both ask it:

=========  ===============================================  ==================
family     block keys (``i``: global layer, ``s``/``j``)    removable parts
=========  ===============================================  ==================
``vit``    ``layers.{i}.*`` (ViT, DeiT, DeiT-III)           ``ln1``, ``attn``
``swin``   ``stages.{s}.blocks.{j}.*`` (Swin)               ``norm1``, ``attn``
=========  ===============================================  ==================

A Swin layer index is global in stage order: with depths ``(2, 2, 6, 2)``
block ``j`` of stage ``s`` is layer ``sum(depths[:s]) + j`` (0..11). A pruned
block keeps its second norm and FFN, so every block still has keys and the
depths can be read back from any (pruned or not) state dict.

No OpenMMLab imports: the tables are plain data.
"""
import re
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

__all__ = ['BlockLayout', 'VIT_LAYOUT', 'SWIN_LAYOUT', 'LAYOUTS', 'detect_layout']


class BlockKey(NamedTuple):
    """A state-dict key that belongs to a block."""
    layer: int  # global layer index
    part: str  # first name under the block (``ln1``, ``attn``, ``ffn``...)


class BlockLayout:
    """How one backbone family names its blocks' state-dict keys.

    Args:
        name (str): Family name, a key of :data:`LAYOUTS`.
        pattern (str): Regex matching a key (after the prefix) of a block;
            its groups are the stage (optional) and the block index, then
            the part name.
        attention_parts (tuple[str]): Parts a pruned block no longer has.
        example (str): Key template for messages, ``{prefix}`` and
            ``{block}`` filled in.
    """

    def __init__(self, name: str, pattern: str, attention_parts: Tuple[str, ...],
                 example: str) -> None:
        self.name = name
        self._pattern = pattern
        self.attention_parts = attention_parts
        self.example = example
        self._staged = re.compile(pattern).groups == 3

    def _match(self, keys: Iterable[str], prefix: str) -> List[Tuple[str, int, int, str]]:
        regex = re.compile(re.escape(prefix) + self._pattern)
        found = []
        for key in keys:
            m = regex.match(key)
            if m is None:
                continue
            if self._staged:
                found.append((key, int(m.group(1)), int(m.group(2)), m.group(3)))
            else:
                found.append((key, 0, int(m.group(1)), m.group(2)))
        return found

    def depths(self, keys: Iterable[str], prefix: str = '') -> Tuple[int, ...]:
        """Blocks per stage found in ``keys`` (one stage for plain ViTs)."""
        per_stage: Dict[int, int] = {}
        for _, stage, block, _ in self._match(keys, prefix):
            per_stage[stage] = max(per_stage.get(stage, 0), block + 1)
        if not per_stage:
            return ()
        return tuple(per_stage.get(s, 0) for s in range(max(per_stage) + 1))

    def block_keys(self, keys: Iterable[str], prefix: str = '',
                   depths: Optional[Sequence[int]] = None) -> Dict[str, BlockKey]:
        """Map each block key in ``keys`` to its global layer and part.

        Args:
            keys (Iterable[str]): State-dict keys.
            prefix (str): Prefix of the backbone keys. Defaults to ``''``.
            depths (Sequence[int], optional): Blocks per stage; None reads
                them from ``keys``. Defaults to None.

        Returns:
            dict: ``{key: BlockKey(layer, part)}`` for the block keys.
        """
        keys = list(keys)
        if depths is None:
            depths = self.depths(keys, prefix)
        offsets = [sum(depths[:s]) for s in range(len(depths))]
        out = {}
        for key, stage, block, part in self._match(keys, prefix):
            if stage < len(offsets) and block < depths[stage]:
                out[key] = BlockKey(offsets[stage] + block, part)
        return out

    def attention_keys(self, keys: Iterable[str], layer: int, prefix: str = '') -> List[str]:
        """Keys of layer ``layer``'s removable parts (pre-norm and attention)."""
        return [k for k, b in self.block_keys(keys, prefix).items()
                if b.layer == layer and b.part in self.attention_parts]

    def describe(self, layer: int, prefix: str, depths: Sequence[int]) -> str:
        """Key names of ``layer``'s removable parts, for messages."""
        if self._staged:
            stage = 0
            block = layer
            while stage < len(depths) - 1 and block >= depths[stage]:
                block -= depths[stage]
                stage += 1
            head = self.example.format(prefix=prefix, block=f'{stage}.blocks.{block}')
        else:
            head = self.example.format(prefix=prefix, block=layer)
        first, rest = self.attention_parts[0], self.attention_parts[1:]
        return f'"{head}.{first}.*" / ' + ' / '.join(f'"...{p}.*"' for p in rest)

    def __repr__(self) -> str:
        return f'BlockLayout({self.name!r})'


VIT_LAYOUT = BlockLayout('vit', r'layers\.(\d+)\.([A-Za-z0-9_]+)\.', ('ln1', 'attn'),
                         '{prefix}layers.{block}')
SWIN_LAYOUT = BlockLayout('swin', r'stages\.(\d+)\.blocks\.(\d+)\.([A-Za-z0-9_]+)\.',
                          ('norm1', 'attn'), '{prefix}stages.{block}')
LAYOUTS: Dict[str, BlockLayout] = {layout.name: layout for layout in (VIT_LAYOUT, SWIN_LAYOUT)}


def detect_layout(keys: Iterable[str], prefix: str = '') -> Optional[BlockLayout]:
    """The family whose block keys appear in ``keys`` under ``prefix``.

    Returns:
        BlockLayout | None: The layout, or None when no family's keys appear.

    Raises:
        ValueError: Keys of more than one family appear (ambiguous).
    """
    keys = list(keys)
    found = [layout for layout in LAYOUTS.values() if layout.depths(keys, prefix)]
    if len(found) > 1:
        raise ValueError(f'the state dict holds block keys of several backbone families '
                         f'({", ".join(layout.name for layout in found)}) under prefix '
                         f'{prefix!r}; give the prefix of one backbone')
    return found[0] if found else None
