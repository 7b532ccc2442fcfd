# DeiT-Tiny baseline: the official DeiT recipe (300 epochs, batch 8 x 128).
# Use it to train a baseline or to evaluate the official checkpoint converted
# with tools/convert/deit_to_mmpretrain.py:
#   python tools/test.py configs/imagenet/deit-tiny_8xb128-300e_in1k-224px.py \
#       checkpoints/deit-tiny_in1k.pth
_base_ = ['../_base_/models/nose-deit-tiny.py', '../_base_/deit_in1k_300e.py']
