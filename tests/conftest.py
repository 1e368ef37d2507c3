import os

import torch

# Test problems are tiny: one intra-op thread avoids thread-pool overhead that dominates
# small ops (and oversubscription when pytest shares the machine).
torch.set_num_threads(1)
os.environ.setdefault("WANDB_MODE", "offline")
os.environ.setdefault("WANDB_SILENT", "true")
