# Runtime shared by the segmentation (mmseg) configs.
default_scope = 'mmseg'
custom_imports = dict(imports=['nose_mm'], allow_failed_imports=False)
# Every nose_mm run: NoseRunner fits checkpoints strictly (nose_mm/engine/runner.py).
# The hooks every run has are in the schedules' default_hooks (mmseg keeps its
# default hooks there): results, divergence, random_state.
runner_type = 'NoseRunner'

env_cfg = dict(
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer')
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
tta_model = dict(type='SegTTAModel')
