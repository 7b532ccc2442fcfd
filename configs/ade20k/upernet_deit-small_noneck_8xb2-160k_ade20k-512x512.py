# mmseg's vit_deit-s16_upernet_8xb2-160k_ade20k-512x512 (no neck: UperNet reads the
# four 1/16-scale ViT feature maps directly) with a DeiT-Small NoseVisionTransformer
# backbone: the variant of mmseg's reference numbers quoted by the paper. The
# MultiLevelNeck variant is upernet_deit-small_mln_8xb2-160k_ade20k-512x512.py.
_base_ = ['./upernet_deit-small_mln_8xb2-160k_ade20k-512x512.py']
model = dict(neck=None)
