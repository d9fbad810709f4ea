"""Core protocol documents as HTTP responses, with their real OpenAPI schemas.

A handler returns ``wire_response(document)`` and is annotated
``-> Response[Document]``: the body is what the wire converter writes
(camelCase, ``None`` fields left out), and :class:`WireSchemaPlugin` gives the
OpenAPI schema the same shape, from the same attrs class. (msgspec would
encode an attrs instance by itself, with snake_case names and nulls: that is
why the converter writes the body first.)
"""

from __future__ import annotations

import typing
from typing import Any, TypeVar, cast

import attrs
from litestar import Response
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

from hotpatch_core import protocol
from hotpatch_core.wire import camel, unstructure

__all__ = ["WireSchemaPlugin", "wire_response"]

T = TypeVar("T")


def wire_response(document: T, status_code: int = 200) -> Response[T]:
    """Return ``document`` as the wire converter writes it."""
    # The content is the converter's JSON-ready form of T; Litestar encodes it as is.
    return Response(content=cast("T", unstructure(document)), status_code=status_code)


def _is_wire_document(kind: object) -> bool:
    return (
        isinstance(kind, type)
        and attrs.has(kind)
        and getattr(kind, "__module__", None) == protocol.__name__
    )


class WireSchemaPlugin(OpenAPISchemaPlugin):
    """Describe :mod:`hotpatch_core.protocol` documents as the converter writes them.

    Names are camelCase; an optional field is left out rather than null, so
    it is simply not required.
    """

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        """Whether ``value`` is a protocol document."""
        return _is_wire_document(value)

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        """Build the object schema of a protocol document, field by field."""
        kind = field_definition.type_
        hints = typing.get_type_hints(kind)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in attrs.fields(kind):
            annotation = FieldDefinition.from_annotation(hints[field.name])
            if annotation.is_optional:
                (inner,) = (arg for arg in annotation.args if arg is not type(None))
                annotation = FieldDefinition.from_annotation(inner)
            else:
                required.append(camel(field.name))
            schema = schema_creator.for_field_definition(annotation)
            for name, value in field.metadata.get("schema", {}).items():
                setattr(schema, name, value)  # constraints the field's validator enforces
            properties[camel(field.name)] = schema
        return Schema(
            type=OpenAPIType.OBJECT,
            title=kind.__name__,
            description=(kind.__doc__ or "").strip().split("\n\n")[0] or None,
            properties=properties,
            required=required or None,
        )
