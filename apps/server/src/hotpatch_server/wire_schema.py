"""Core documents as HTTP bodies, with their real OpenAPI schemas.

The device protocol's messages (:mod:`hotpatch_core.protocol`) and the
publisher API's answers (:mod:`hotpatch_core.publishing`) are core attrs
documents. A handler returns ``wire_response(document)`` and is annotated
``-> Response[Document]``: the body is what the wire converter writes
(camelCase, ``None`` fields left out). A handler that takes a document
declares ``data: Annotated[JsonObject, Body(), WireBody(Document)]`` and
calls :func:`read_body`: the converter reads it (a bad field is a 422 naming
it). :class:`WireSchemaPlugin` gives both the OpenAPI schema of the same
shape, from the same attrs class. (msgspec would encode and decode an attrs
instance by itself, with snake_case names and nulls: that is why the
converter does it.)
"""

from __future__ import annotations

import typing
from typing import Any, TypeVar, cast

import attrs
from litestar import Response
from litestar.openapi.spec import OpenAPIType, Schema
from litestar.plugins import OpenAPISchemaPlugin
from litestar.typing import FieldDefinition

import hotpatch_core
from hotpatch_core.errors import SchemaError
from hotpatch_core.wire import camel, structure, unstructure
from hotpatch_server.problems import Problem

__all__ = ["JsonObject", "WireBody", "WireSchemaPlugin", "read_body", "wire_response"]

T = TypeVar("T")
#: A JSON object as a request body arrives, before the wire converter reads it.
JsonObject = dict[str, object]


def wire_response(
    document: T, status_code: int = 200, headers: dict[str, str] | None = None
) -> Response[T]:
    """Return ``document`` as the wire converter writes it."""
    # The content is the converter's JSON-ready form of T; Litestar encodes it as is.
    content = cast("T", unstructure(document))
    return Response(content=content, status_code=status_code, headers=headers)


@attrs.frozen
class WireBody:
    """Marks a request body parameter as the JSON form of ``kind`` (for its schema)."""

    kind: type[Any]


def read_body(value: JsonObject, kind: type[T], *, known_fields_only: bool = False) -> T:
    """Read a request body as ``kind``, or raise a 422 problem naming the field at fault.

    With ``known_fields_only`` a field ``kind`` does not have is refused too
    (publisher bodies, where it is a typo; a device's newer fields are not).
    """
    if known_fields_only:
        known = {camel(field.name) for field in attrs.fields(cast("Any", kind)) if field.init}
        unknown = sorted(name for name in value if name not in known)
        if unknown:
            shown = unknown[0][:40]
            raise Problem(422, "invalid", f"unknown field {shown!r}", field=shown)
    try:
        return structure(value, kind)
    except SchemaError as exc:
        message = str(exc).removeprefix(f"{exc.field}: ") if exc.field else str(exc)
        raise Problem(422, "invalid", message, field=exc.field or None) from None


def _is_wire_document(kind: object) -> bool:
    """Whether ``kind`` is a core document (the wire converter writes every one)."""
    return (
        isinstance(kind, type)
        and attrs.has(kind)
        and str(getattr(kind, "__module__", "")).startswith(f"{hotpatch_core.__name__}.")
    )


class WireSchemaPlugin(OpenAPISchemaPlugin):
    """Describe core documents as the wire converter writes them.

    Names are camelCase; a field whose default is None may be left out (the
    converter writes an absent field rather than null), and every other
    field is required (an optional one without a default may be null).
    """

    @staticmethod
    def is_plugin_supported_type(value: Any) -> bool:
        """Whether ``value`` is a core document."""
        return _is_wire_document(value)

    def is_plugin_supported_field(self, field_definition: FieldDefinition) -> bool:
        """Whether the field is a core document, or a body marked :class:`WireBody`."""
        return _body_kind(field_definition) is not None or self.is_plugin_supported_type(
            field_definition.annotation
        )

    def to_openapi_schema(self, field_definition: FieldDefinition, schema_creator: Any) -> Schema:
        """Build the object schema of a core document, field by field."""
        kind = _body_kind(field_definition) or field_definition.type_
        hints = typing.get_type_hints(kind)
        properties: dict[str, Any] = {}
        required: list[str] = []
        for field in attrs.fields(kind):
            annotation = FieldDefinition.from_annotation(hints[field.name])
            nullable = False
            if annotation.is_optional:
                (inner,) = (arg for arg in annotation.args if arg is not type(None))
                annotation = FieldDefinition.from_annotation(inner)
                nullable = field.default is attrs.NOTHING  # written as null, not left out
            if field.default is attrs.NOTHING:
                required.append(camel(field.name))
            schema = schema_creator.for_field_definition(annotation)
            for name, value in field.metadata.get("schema", {}).items():
                setattr(schema, name, value)  # constraints the field's validator enforces
            if nullable:
                schema = Schema(one_of=[schema, Schema(type=OpenAPIType.NULL)])
            properties[camel(field.name)] = schema
        return Schema(
            type=OpenAPIType.OBJECT,
            title=kind.__name__,
            description=(kind.__doc__ or "").strip().split("\n\n")[0] or None,
            properties=properties,
            required=required or None,
        )


def _body_kind(field_definition: FieldDefinition) -> type[Any] | None:
    marks = [m for m in field_definition.metadata if isinstance(m, WireBody)]
    return marks[0].kind if marks else None
