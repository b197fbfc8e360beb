"""lighteval custom tasks, at the path lighteval users pass to ``--custom-tasks`` (the tasks
themselves live in ``hinttune.evaluation.lighteval_tasks``)."""

from hinttune.evaluation.lighteval_tasks import (TASKS_TABLE, lighteval_gold,  # noqa: F401
                                                 paper_prompt)
