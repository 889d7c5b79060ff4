"""Dapr's jobs API: ``POST|GET|DELETE /v1.0/jobs/{name}`` and the ``/v1.0-alpha1`` aliases
(services/jobs.py; the scheduler triggers ``POST /job/{name}`` on the app)."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from routers import schemas
from routers.http import json_response, no_content, read_message, services
from routers.table import RouteTable

routes = RouteTable(tags=["jobs"])

VERSIONS = ("v1.0", "v1.0-alpha1")
_SCHEDULE_ERRORS = {
    400: [
        "ERR_MALFORMED_REQUEST",
        "DAPR_SCHEDULER_JOB_NAME",
        "DAPR_SCHEDULER_JOB_NAME_EMPTY",
        "DAPR_SCHEDULER_SCHEDULE_EMPTY",
    ],
    409: ["DAPR_SCHEDULER_SCHEDULE_JOB"],
    500: ["DAPR_SCHEDULER_SCHEDULE_JOB"],
}


async def schedule_job(request: Request, name: str) -> Response:
    await services(request).jobs.schedule(name, await read_message(request))
    return no_content()


async def get_job(request: Request, name: str) -> Response:
    return json_response(await services(request).jobs.get(name))


async def delete_job(request: Request, name: str) -> Response:
    await services(request).jobs.delete(name)
    return no_content()


for _version in VERSIONS:
    _path, _suffix = f"/{_version}/jobs/{{name}}", "" if _version == "v1.0" else "_alpha1"
    routes.add(
        _path,
        schedule_job,
        ["POST"],
        operation_id=f"schedule_job{_suffix}",
        summary="Schedule a job",
        description="The job fires on its schedule (or once at dueTime) as POST /job/{name} on the app, "
        "once per tick across every sidecar of the app id. 204 when stored.",
        openapi_extra=schemas.json_body(schemas.ref(schemas.JobRequest)),
        responses={204: {"description": "Scheduled"}, **schemas.errors_doc(_SCHEDULE_ERRORS)},
        status_code=204,
        response_class=Response,
    )
    routes.add(
        _path,
        get_job,
        ["GET"],
        operation_id=f"get_job{_suffix}",
        summary="Get a job",
        description="The job as scheduled; a missing job answers 500 DAPR_SCHEDULER_GET_JOB, as daprd does.",
        responses={
            200: {"model": schemas.JobResponse, "description": "The job"},
            **schemas.errors_doc({400: ["DAPR_SCHEDULER_JOB_NAME_EMPTY"], 500: ["DAPR_SCHEDULER_GET_JOB"]}),
        },
        response_class=Response,
    )
    routes.add(
        _path,
        delete_job,
        ["DELETE"],
        operation_id=f"delete_job{_suffix}",
        summary="Delete a job",
        description="204 whether or not the job existed.",
        responses={
            204: {"description": "Deleted"},
            **schemas.errors_doc(
                {400: ["DAPR_SCHEDULER_JOB_NAME_EMPTY"], 500: ["DAPR_SCHEDULER_DELETE_JOB"]}
            ),
        },
        status_code=204,
        response_class=Response,
    )
