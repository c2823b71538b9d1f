"""The request schemas moved to :mod:`gateway.iss.schema`, shared with the gateway's own dispatch."""

from gateway.iss.schema import *  # noqa: F403
from gateway.iss.schema import Kind, Param, Params, Schema, array, boolean, integer, obj, string, validate

__all__ = ["Kind", "Param", "Params", "Schema", "array", "boolean", "integer", "obj", "string", "validate"]
