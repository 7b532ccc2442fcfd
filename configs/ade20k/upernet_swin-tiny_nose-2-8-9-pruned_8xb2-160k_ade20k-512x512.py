# UperNet with the NOSE-pruned Swin-T (blocks [2, 8, 9] without attention), the
# paper's transfer applied to Swin: the backbone is initialised from the pruned
# ImageNet-1k classification checkpoint (tools/prune.py output of
# ../imagenet/swin-tiny_nose-2-8-9_8xb256-400e_in1k-224px.py). A checkpoint whose
# removed layers differ from removed_layers is rejected with an error naming them.
_base_ = ['./upernet_swin-tiny_8xb2-160k_ade20k-512x512.py']
model = dict(backbone=dict(
    removed_layers=[2, 8, 9],
    init_cfg=dict(checkpoint='checkpoints/swin-tiny_nose-2-8-9-pruned_in1k.pth')))
