"""The workflow catalog as clients see it."""

from __future__ import annotations

from api.schemas import ParameterOut, TaskTypeOut, WorkflowCatalogOut, WorkflowOut
from workflows.catalog import get_catalog


def describe() -> WorkflowCatalogOut:
    catalog = get_catalog()
    task_types = {}
    for name in catalog.task_types():
        entry = catalog.task_type(name)
        task_types[name] = TaskTypeOut(
            default_workflow=entry.default_workflow,
            workflows={
                wf.name: WorkflowOut(
                    description=wf.description,
                    output_kind=wf.output_kind,
                    parameters=[ParameterOut.model_validate(p.model_dump()) for p in wf.parameters()],
                )
                for wf in entry.workflows.values()
            },
        )
    return WorkflowCatalogOut(task_types=task_types)
