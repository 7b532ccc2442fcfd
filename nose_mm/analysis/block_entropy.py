"""Entropy of each block's attention-branch and MLP-branch outputs (paper Fig. 1)."""
from typing import Dict, List, Sequence

import torch

from nose_mm.selection.evaluators import layer_statistics

__all__ = ['block_entropies']


def block_entropies(adapter, batches: Sequence[torch.Tensor]) -> List[Dict[str, float]]:
    """Per-block entropies of the attention and MLP branch outputs.

    Args:
        adapter (FamilyAdapter): The model.
        batches (Sequence[Tensor]): Preprocessed image batches.

    Returns:
        list[dict]: ``{'block', 'attn_entropy', 'mlp_entropy', 'attn_cosine'}`` per block.
    """
    stats = layer_statistics(adapter, batches)
    return [dict(block=i, attn_entropy=stats['attn_entropy'][i],
                 mlp_entropy=stats['mlp_entropy'][i], attn_cosine=stats['attn_cosine'][i])
            for i in sorted(stats['attn_entropy'])]
