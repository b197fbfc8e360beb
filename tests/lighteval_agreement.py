"""Run inside an environment with lighteval: score given outputs with hinttune.evaluation.lighteval_tasks'
own avg@n metric and print one JSON list of scores (used by test_lighteval_tasks.py, which
compares them with ``hinttune eval``'s verdicts on the same outputs).

    python lighteval_agreement.py CASES.json   # [[benchmark, record, output], ...]
"""

import json
import sys

from lighteval.models.model_output import ModelResponse

from hinttune.evaluation import lighteval_tasks

cases = json.loads(open(sys.argv[1], encoding="utf-8").read())
tasks = {task.name: task for task in lighteval_tasks.TASKS_TABLE}
scores = []
for bench, record, output in cases:
    task = tasks[f"ht_{bench}"]
    doc = task.prompt_function(record, task.name)
    metric = task.metrics[0].sample_level_fn  # avg@n
    scores.append(float(metric.compute(doc=doc, model_response=ModelResponse(text=[output]))))
print(json.dumps(scores))
