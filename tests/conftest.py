import os

import torch

# Test problems are tiny: one intra-op thread avoids thread-pool overhead that dominates
# small ops (and oversubscription when pytest shares the machine).
torch.set_num_threads(1)
os.environ.setdefault("WANDB_MODE", "offline")
# eager kernels unless a test asks for the fused ones (tests/test_fused.py compares the two): compiling
# would cost seconds in every subprocess the CLI tests start
os.environ.setdefault("GENPRIOR_FUSED", "0")
os.environ.setdefault("WANDB_SILENT", "true")
