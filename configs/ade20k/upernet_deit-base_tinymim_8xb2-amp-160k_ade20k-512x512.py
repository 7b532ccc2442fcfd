# The authors' ADE20k recipe (TinyMIM's upernet_mae_base_12_512_slide_160k_ade20k, which
# the NOSE authors used): UperNet + Feature2Pyramid on DeiT-B in a BEiT-style block
# (NoseMAE), layer-wise lr decay 0.75, 160k iterations at 8 x 2, AMP, slide inference
# (crop 512, stride 341). The backbone starts from the ImageNet-1k DeiT-B converted by
# tools/convert/deit_to_mae.py (configs/ade20k/README.md, "The authors' recipe").
_base_ = [
    '../_base_/models/upernet_nose-mae.py',
    '../_base_/datasets/ade20k_512x512.py',
    '../_base_/schedules/seg_adamw_layer-decay_160k.py',
    '../_base_/seg_runtime.py',
]
train_dataloader = dict(batch_size=2)
