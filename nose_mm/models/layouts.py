"""Where a backbone family keeps its attention weights in a state dict (docs/design.md)."""
import re
from typing import Dict, Iterable, List, NamedTuple, Optional, Sequence, Tuple

__all__ = ['BlockLayout']


class BlockKey(NamedTuple):
    """A state-dict key that belongs to a block."""
    layer: int  # global layer index
    part: str  # first name under the block (``ln1``, ``attn``, ``ffn``...)


class BlockLayout:
    """How one backbone family names its blocks' state-dict keys.

    Args:
        name (str): Name of the layout (for messages).
        pattern (str): Regex of a block key after the prefix: (stage,) block, part.
        attention_parts (tuple[str]): Parts a pruned block no longer has.
        example (str): Key template for messages (``{prefix}``, ``{block}``).
        requires (str, optional): Regex (after the prefix) some key must match for the
            state dict to have this layout at all. Defaults to None.
        excludes (str, optional): Regex (after the prefix) no key may match: keys of
            another layout whose block keys look like these. Defaults to None.
    """

    def __init__(self, name: str, pattern: str, attention_parts: Tuple[str, ...],
                 example: str, requires: Optional[str] = None,
                 excludes: Optional[str] = None) -> None:
        self.name = name
        self._pattern = pattern
        self.attention_parts = attention_parts
        self.example = example
        self.requires = requires
        self.excludes = excludes
        self._staged = re.compile(pattern).groups == 3

    def _match(self, keys: Iterable[str], prefix: str) -> List[Tuple[str, int, int, str]]:
        keys = list(keys)
        for marker, wanted in ((self.requires, True), (self.excludes, False)):
            if marker is not None:
                regex = re.compile(re.escape(prefix) + marker)
                if any(regex.match(k) for k in keys) != wanted:
                    return []
        regex = re.compile(re.escape(prefix) + self._pattern)
        found = []
        for key in keys:
            m = regex.match(key)
            if m is not None:
                *stage, block, part = m.groups()  # no stage group: one stage
                found.append((key, int(stage[0]) if stage else 0, int(block), part))
        return found

    def depths(self, keys: Iterable[str], prefix: str = '') -> Tuple[int, ...]:
        """Blocks per stage found in ``keys`` (one stage for plain ViTs)."""
        per_stage: Dict[int, int] = {}
        for _, stage, block, _ in self._match(keys, prefix):
            per_stage[stage] = max(per_stage.get(stage, 0), block + 1)
        return tuple(per_stage.get(s, 0) for s in range(max(per_stage, default=-1) + 1))

    def block_keys(self, keys: Iterable[str], prefix: str = '',
                   depths: Optional[Sequence[int]] = None) -> Dict[str, BlockKey]:
        """Map each block key in ``keys`` to its global layer and part.

        Args:
            keys (Iterable[str]): State-dict keys.
            prefix (str): Prefix of the backbone keys. Defaults to ``''``.
            depths (Sequence[int], optional): Blocks per stage (None: read). Defaults to None.

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

    def key_shape(self, prefix: str = '') -> str:
        """The shape of a block key, for messages (``'backbone.layers.<i>.'``)."""
        block = '<s>.blocks.<j>' if self._staged else '<i>'
        return self.example.format(prefix=prefix, block=block) + '.'

    def describe(self, layer: int, prefix: str, depths: Sequence[int]) -> str:
        """Key names of ``layer``'s removable parts, for messages."""
        if self._staged:
            stage, block = 0, layer
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
