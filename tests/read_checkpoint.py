"""Read a checkpoint with whatever transformers this python has and print what a reader would
use (run by test_training_real.py under transformers 5 and 4 to compare):

    python read_checkpoint.py FOLDER
"""

import json
import sys

import torch
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

folder = sys.argv[1]
config = AutoConfig.from_pretrained(folder)
rope = getattr(config, "rope_theta", None) or (getattr(config, "rope_parameters", None) or {}).get("rope_theta")
tokenizer = AutoTokenizer.from_pretrained(folder)
ids = tokenizer.apply_chat_template([{"role": "user", "content": "What is 2+3?"}], add_generation_prompt=True)
ids = list(ids if isinstance(ids, list) else ids["input_ids"])
model = AutoModelForCausalLM.from_pretrained(folder, torch_dtype=torch.float32)
with torch.no_grad():
    logits = model(torch.tensor([ids])).logits[0, -1]
print(json.dumps({"rope_theta": rope, "eos": tokenizer.eos_token, "ids": ids,
                  "top": logits.topk(5).indices.tolist(), "max_logit": round(float(logits.max()), 3)}))
