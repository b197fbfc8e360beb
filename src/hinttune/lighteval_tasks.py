"""lighteval custom tasks, at the path lighteval users pass to ``--custom-tasks`` (the tasks
themselves live in ``hinttune.evaluation.lighteval_tasks``)."""

from hinttune.evaluation.lighteval_tasks import (  # noqa: F401
                                                 TASKS_TABLE,
                                                 lighteval_gold,
                                                 paper_prompt,
)
