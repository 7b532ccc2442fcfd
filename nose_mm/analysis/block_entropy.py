"""Entropy of each block's attention-branch and MLP-branch outputs (paper Fig. 1).

One forward pass of the full model over a calibration set; every token of
every image is one sample of a C-dim feature, and the Gaussian entropy
``sum_d log std_d`` is taken over all of them in float64 (see
:mod:`nose_mm.selection.entropy` and
:func:`nose_mm.selection.layer_statistics`, which computes it).
"""
from typing import Dict, List, Sequence

import torch

from nose_mm.selection.evaluators import layer_statistics

__all__ = ['block_entropies']


def block_entropies(adapter, batches: Sequence[torch.Tensor]) -> List[Dict[str, float]]:
    """Per-block entropies of the attention and MLP branch outputs.

    Args:
        adapter (LayerSkipAdapter): The model.
        batches (Sequence[Tensor]): Preprocessed image batches.

    Returns:
        list[dict]: ``{'block': i, 'attn_entropy': H, 'mlp_entropy': H,
        'attn_cosine': c}`` for every block with attention, ascending.
    """
    stats = layer_statistics(adapter, batches)
    return [dict(block=i, attn_entropy=stats['attn_entropy'][i],
                 mlp_entropy=stats['mlp_entropy'][i], attn_cosine=stats['attn_cosine'][i])
            for i in sorted(stats['attn_entropy'])]
