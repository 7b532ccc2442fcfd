from .launch import (build_runner, check_data_roots, finish_launch, load_config,
                     prepare_launch, setup_test_cfg, setup_train_cfg)

__all__ = ['build_runner', 'check_data_roots', 'finish_launch', 'load_config',
           'prepare_launch', 'setup_test_cfg', 'setup_train_cfg']
